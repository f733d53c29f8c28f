package reporting

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/csv"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"smartmeters/server/api"
	"smartmeters/store"
)

// Export paging: rows are read exportPageRows at a time, and a page the
// client has not taken within exportStall cuts the download off.
const (
	exportPageRows = 1000
	exportStall    = 10 * time.Second
)

// handleExport writes the readings of a meter as a CSV file a third party
// can check offline (api's export format, `smartmeters verify`): GET
// /meters/{id}/export.csv?from=&to=. The file names the meter and its key
// history, each row the key that signed it; it ends with its row count,
// its SHA-256 and the server's signature of both. Without from and to it
// holds every reading; with either, those with from <= timestamp < to,
// which its range line states.
func (a *API) handleExport(c echo.Context) error {
	id, err := api.ParseMeterID(c.Param("id"))
	if err != nil {
		return err
	}
	q := queryParams{c: c}
	ranged := c.QueryParam("from") != "" || c.QueryParam("to") != ""
	from, to := q.time("from", minTime), q.time("to", endTime.Add(-time.Millisecond))
	if q.err != nil {
		return q.err
	}
	if ranged {
		if err := checkWindow(from, to); err != nil {
			return err
		}
	}
	ctx := c.Request().Context()
	ms, err := a.meterSummary(c, id)
	if err != nil {
		return err
	}
	history, err := a.store.MeterKeys(ctx, id)
	if err != nil {
		return err
	}
	keys := make(map[int]store.MeterKey, len(history))
	for _, k := range history {
		keys[k.Seq] = k
	}
	h := c.Response().Header()
	h.Set(echo.HeaderContentType, "text/csv; charset=utf-8")
	h.Set(echo.HeaderContentDisposition, fmt.Sprintf(`attachment; filename="meter-%d.csv"`, id))
	c.Response().WriteHeader(http.StatusOK)

	rc := http.NewResponseController(c.Response())
	_ = rc.SetWriteDeadline(time.Now().Add(exportStall))
	ew := newExportWriter(c.Response())
	ew.line(api.ExportVersionLine)
	ew.line(api.MeterLine(id, ms.Username))
	start, end := int64(0), int64(math.MaxInt64)
	if ranged {
		start, end = from.UnixMilli(), to.UnixMilli()
		ew.line(api.RangeLine(start, end))
	}
	for _, k := range history {
		ew.line(api.KeyLine(exportKey(k)))
	}
	ew.row(api.ExportColumns)
	meter := strconv.FormatInt(id, 10)
	row := make([]string, len(api.ExportColumns))
	var rows uint64
	// Page by page, so that no database connection is held while the
	// client reads: a client that stops reading holds only its own
	// connection, and is cut off once a page has waited exportStall.
	for from := start; ; {
		page, err := a.store.ReadingsBetween(ctx, id, from, end, exportPageRows)
		if err != nil {
			a.abortExport(c, id, rows, err)
		}
		// Each page must reach the client within exportStall.
		_ = rc.SetWriteDeadline(time.Now().Add(exportStall))
		for _, r := range page {
			k, ok := keys[r.KeySeq]
			if !ok {
				a.abortExport(c, id, rows, fmt.Errorf("reading at %d names key %d, which meter %d never had", r.Timestamp, r.KeySeq, id))
			}
			row = append(row[:0], meter, ms.Username, k.Algorithm, base64.StdEncoding.EncodeToString(k.PublicKey),
				strconv.FormatInt(r.Timestamp, 10),
				strconv.FormatInt(r.WhIn, 10),
				strconv.FormatInt(r.WhOut, 10),
				base64.StdEncoding.EncodeToString(r.Signature),
				r.ReceivedAt.UTC().Format(api.ExportTimeFormat),
			)
			ew.row(row)
			rows++
		}
		if err := ew.flush(); err != nil {
			a.abortExport(c, id, rows, err)
		}
		if len(page) < exportPageRows {
			break
		}
		from = page[len(page)-1].Timestamp + 1
	}
	var digest [sha256.Size]byte
	ew.sum.Sum(digest[:0])
	ew.line(api.EndLine(rows, hex.EncodeToString(digest[:])))
	sig, err := a.exportKey.SignExport(digest, rows)
	if err != nil {
		a.abortExport(c, id, rows, err)
	}
	pub := a.exportKey.Public()
	ew.line(api.SignatureLine(pub.Algorithm(), pub.Fingerprint().String(), base64.StdEncoding.EncodeToString(sig)))
	if err := ew.flush(); err != nil {
		a.abortExport(c, id, rows, err)
	}
	return nil
}

func exportKey(k store.MeterKey) api.ExportKey {
	return api.ExportKey{
		Seq:             k.Seq,
		Fingerprint:     k.Fingerprint.String(),
		Algorithm:       k.Algorithm,
		Base64PublicKey: base64.StdEncoding.EncodeToString(k.PublicKey),
		AddedAt:         k.AddedAt,
		RetiredAt:       k.RetiredAt,
	}
}

// exportWriter writes an export's lines with CRLF endings, hashing every
// byte it writes until the end line, and keeps the first write error.
type exportWriter struct {
	out io.Writer
	sum hash.Hash
	csv *csv.Writer
	err error
}

// hashingWriter passes bytes to an export writer's output and its hash.
type hashingWriter struct{ ew *exportWriter }

func (h hashingWriter) Write(p []byte) (int, error) {
	h.ew.sum.Write(p)
	return h.ew.out.Write(p)
}

func newExportWriter(out io.Writer) *exportWriter {
	ew := &exportWriter{out: out, sum: sha256.New()}
	ew.csv = csv.NewWriter(hashingWriter{ew})
	ew.csv.UseCRLF = true
	return ew
}

// line writes one frame line.
func (ew *exportWriter) line(s string) {
	ew.csv.Flush()
	if ew.err == nil {
		ew.err = ew.csv.Error()
	}
	if ew.err == nil {
		_, ew.err = io.WriteString(hashingWriter{ew}, s+"\r\n")
	}
}

// row writes one CSV record.
func (ew *exportWriter) row(fields []string) {
	if ew.err == nil {
		ew.err = ew.csv.Write(fields)
	}
}

// flush sends what is buffered and returns the first error so far.
func (ew *exportWriter) flush() error {
	ew.csv.Flush()
	if ew.err == nil {
		ew.err = ew.csv.Error()
	}
	return ew.err
}

// abortExport ends an export whose status is already sent: all that is
// left is to cut the body short, so that the client sees an incomplete
// file rather than a shorter one.
func (a *API) abortExport(c echo.Context, id int64, rows uint64, err error) {
	a.exportsCut.Inc()
	a.logger.WarnContext(c.Request().Context(), "export aborted", "meter", id, "rows", rows, "err", err)
	panic(http.ErrAbortHandler)
}

// handleSigningKey publishes the public key that signs exports: GET
// /signing-key.
func (a *API) handleSigningKey(c echo.Context) error {
	pub := a.exportKey.Public()
	return c.JSON(http.StatusOK, api.SigningKey{Algorithm: pub.Algorithm(), Base64PublicKey: pub.Base64(), Fingerprint: pub.Fingerprint().String()})
}
