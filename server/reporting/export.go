package reporting

import (
	"encoding/base64"
	"encoding/csv"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"smartmeters/server/api"
)

// Export paging: rows are read exportPageRows at a time, and a page the
// client has not taken within exportStall cuts the download off.
const (
	exportPageRows = 1000
	exportStall    = 10 * time.Second
)

// handleExport streams every reading of a meter as CSV, row by row as the
// store returns them: GET /meters/{id}/export.csv.
func (a *API) handleExport(c echo.Context) error {
	id, err := api.ParseMeterID(c.Param("id"))
	if err != nil {
		return err
	}
	ms, err := a.meterSummary(c, id)
	if err != nil {
		return err
	}
	keys, err := a.meterKeyTimeline(c.Request().Context(), ms)
	if err != nil {
		return err
	}
	h := c.Response().Header()
	h.Set(echo.HeaderContentType, "text/csv; charset=utf-8")
	h.Set(echo.HeaderContentDisposition, fmt.Sprintf(`attachment; filename="meter-%d.csv"`, id))
	c.Response().WriteHeader(http.StatusOK)

	rc := http.NewResponseController(c.Response())
	w := csv.NewWriter(c.Response())
	if err := w.Write(api.ExportColumns); err != nil {
		return err
	}
	meter := []string{strconv.FormatInt(id, 10), ms.Username}
	row := make([]string, 0, len(api.ExportColumns))
	n := 0
	// Page by page, so that no database connection is held while the
	// client reads: a client that stops reading holds only its own
	// connection, and is cut off once a page has waited exportStall.
	for from := int64(0); ; {
		page, err := a.store.ReadingsBetween(c.Request().Context(), id, from, math.MaxInt64, exportPageRows)
		if err != nil {
			a.abortExport(c, id, n, err)
		}
		for _, r := range page {
			k := keys.keyFor(r)
			row = append(row[:0], meter...)
			row = append(row, k.algorithm, k.base64,
				strconv.FormatInt(r.Timestamp, 10),
				strconv.FormatInt(r.WhIn, 10),
				strconv.FormatInt(r.WhOut, 10),
				base64.StdEncoding.EncodeToString(r.Signature),
				r.ReceivedAt.Format(time.RFC3339Nano),
			)
			if err := w.Write(row); err != nil {
				a.abortExport(c, id, n, err)
			}
			n++
		}
		_ = rc.SetWriteDeadline(time.Now().Add(exportStall))
		w.Flush()
		if err := w.Error(); err != nil {
			a.abortExport(c, id, n, err)
		}
		if len(page) < exportPageRows {
			break
		}
		from = page[len(page)-1].Timestamp + 1
	}
	return nil
}

// abortExport ends an export whose status is already sent: all that is
// left is to cut the body short, so that the client sees an incomplete
// file rather than a shorter one.
func (a *API) abortExport(c echo.Context, id int64, rows int, err error) {
	a.logger.WarnContext(c.Request().Context(), "export aborted", "meter", id, "rows", rows, "err", err)
	panic(http.ErrAbortHandler)
}
