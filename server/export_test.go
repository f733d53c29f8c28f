package server_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"smartmeters/crypto"
	"smartmeters/db/dbtest"
	"smartmeters/server/api"
)

func TestExport(t *testing.T) {
	for _, b := range dbtest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			ts := newTestServer(t, b, nil)
			var regs []reg
			for i := range 1200 { // more than one flush
				regs = append(regs, reg{at(0, 0).Add(time.Duration(i) * time.Second), int64(i * 3), int64(i)})
			}
			for _, kt := range []crypto.KeyType{"ed25519", "ecdsa-p256", "rsa2048"} {
				t.Run(string(kt), func(t *testing.T) {
					id := seedMeter(t, ts, "exported-"+string(kt), testKeys(t)[kt], regs...)
					res, err := http.Get(fmt.Sprintf("%s/meters/%d/export.csv", ts.admin, id))
					if err != nil {
						t.Fatal(err)
					}
					defer res.Body.Close()
					if ct := res.Header.Get("Content-Type"); res.StatusCode != http.StatusOK || !strings.HasPrefix(ct, "text/csv") {
						t.Fatalf("status %d, Content-Type %q", res.StatusCode, ct)
					}
					body, err := io.ReadAll(res.Body)
					if err != nil {
						t.Fatal(err)
					}
					frame, rows := readExport(t, body)
					checkFrame(t, ts, body, frame, id, "exported-"+string(kt), len(regs))
					if !reflect.DeepEqual(rows[0], api.ExportColumns) {
						t.Fatalf("header %q, want %q", rows[0], api.ExportColumns)
					}
					if len(rows) != 1+len(regs) {
						t.Fatalf("%d rows, want %d", len(rows)-1, len(regs))
					}
					// Every row verifies with nothing but what the row says.
					for i, row := range rows[1:] {
						key, err := crypto.ParsePublicKey(row[3], 1024)
						if err != nil {
							t.Fatalf("row %d: %v", i, err)
						}
						var r crypto.Reading
						r.Timestamp, _ = strconv.ParseInt(row[4], 10, 64)
						r.WhIn, _ = strconv.ParseInt(row[5], 10, 64)
						r.WhOut, _ = strconv.ParseInt(row[6], 10, 64)
						sig, err := crypto.DecodeSignature(row[7])
						if err != nil {
							t.Fatalf("row %d: %v", i, err)
						}
						if err := key.Verify(r, sig); err != nil {
							t.Fatalf("row %d does not verify: %v", i, err)
						}
						if row[0] != fmt.Sprint(id) || row[1] != "exported-"+string(kt) || r.WhIn != regs[i].in {
							t.Fatalf("row %d = %q", i, row)
						}
						if _, err := api.ParseExportTime(row[8]); err != nil {
							t.Fatalf("row %d: received_at: %v", i, err)
						}
					}
				})
			}
		})
	}
}

// readExport splits an export into its frame lines (those opening with
// "# ") and its CSV records, header first, checking that every line ends
// with CRLF.
func readExport(t *testing.T, body []byte) (frame []string, records [][]string) {
	t.Helper()
	if len(body) == 0 || !bytes.HasSuffix(body, []byte("\r\n")) || bytes.Count(body, []byte("\n")) != bytes.Count(body, []byte("\r\n")) {
		t.Fatalf("export lines do not all end with CRLF: %.200q", body)
	}
	for _, line := range strings.Split(strings.TrimSuffix(string(body), "\r\n"), "\r\n") {
		if strings.HasPrefix(line, "# ") {
			frame = append(frame, line)
		}
	}
	r := csv.NewReader(bytes.NewReader(body))
	r.Comment = '#'
	records, err := r.ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	return frame, records
}

// checkFrame checks an export's frame: its version, the meter, its keys,
// and an end line whose row count and SHA-256 match and whose signature
// verifies with the key GET /signing-key publishes.
func checkFrame(t *testing.T, ts testServer, body []byte, frame []string, id int64, username string, rows int) {
	t.Helper()
	keys := frame[2:]
	if len(keys) > 0 && api.IsRangeLine(keys[0]) {
		keys = keys[1:]
	}
	if len(keys) < 3 || frame[0] != api.ExportVersionLine || frame[1] != api.MeterLine(id, username) || !strings.HasPrefix(keys[0], "# key,1,") {
		t.Fatalf("frame %q", frame)
	}
	end, sigLine := frame[len(frame)-2], frame[len(frame)-1]
	n, digest, err := api.ParseEndLine(end)
	if err != nil {
		t.Fatal(err)
	}
	signed := body[:bytes.Index(body, []byte(end))]
	sum := sha256.Sum256(signed)
	if n != uint64(rows) || digest != hex.EncodeToString(sum[:]) {
		t.Fatalf("end line %q: want %d rows and SHA-256 %x", end, rows, sum)
	}
	var sk api.SigningKey
	getJSON(t, ts, api.PathSigningKey, &sk)
	pub, err := crypto.ParsePublicKey(sk.Base64PublicKey, 2048)
	if err != nil {
		t.Fatal(err)
	}
	alg, fp, b64, err := api.ParseSignatureLine(sigLine)
	if err != nil || alg != pub.Algorithm() || fp != pub.Fingerprint().String() || fp != sk.Fingerprint {
		t.Fatalf("signature line %q (%v): want key %s", sigLine, err, sk.Fingerprint)
	}
	sig, err := crypto.DecodeSignature(b64)
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.VerifyExport(sum, n, sig); err != nil {
		t.Fatalf("the server's signature does not verify: %v", err)
	}
}

// TestExportRange exports the readings in [from, to): the file says so in
// its range line, holds exactly those rows, and is signed like a whole one.
func TestExportRange(t *testing.T) {
	for _, b := range dbtest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			ts := newTestServer(t, b, nil)
			var regs []reg
			for i := range 10 {
				regs = append(regs, reg{at(0, i), int64(i * 10), 0})
			}
			id := seedMeter(t, ts, "ranged", newKey(t, "ed25519"), regs...)
			for _, tt := range []struct {
				name      string
				query     string
				rangeLine string // "" for none
				want      []int64
			}{
				{"Whole", "", "", []int64{0, 10, 20, 30, 40, 50, 60, 70, 80, 90}},
				{"FromTo", "?from=" + at(0, 3).Format(time.RFC3339) + "&to=" + at(0, 6).Format(time.RFC3339),
					api.RangeLine(at(0, 3).UnixMilli(), at(0, 6).UnixMilli()), []int64{30, 40, 50}},
				{"FromOnly", fmt.Sprintf("?from=%d", at(0, 8).UnixMilli()),
					api.RangeLine(at(0, 8).UnixMilli(), time.Date(9999, 12, 31, 23, 59, 59, 999e6, time.UTC).UnixMilli()), []int64{80, 90}},
				{"Empty", "?from=" + at(2, 0).Format(time.RFC3339) + "&to=" + at(3, 0).Format(time.RFC3339),
					api.RangeLine(at(2, 0).UnixMilli(), at(3, 0).UnixMilli()), nil},
			} {
				t.Run(tt.name, func(t *testing.T) {
					r := get(t, fmt.Sprintf("%s/meters/%d/export.csv%s", ts.admin, id, tt.query))
					if r.status != http.StatusOK {
						t.Fatalf("status %d: %s", r.status, r.rawBody)
					}
					body := []byte(r.rawBody)
					frame, records := readExport(t, body)
					checkFrame(t, ts, body, frame, id, "ranged", len(tt.want))
					if got := slices.ContainsFunc(frame, api.IsRangeLine); got != (tt.rangeLine != "") || (got && frame[2] != tt.rangeLine) {
						t.Errorf("frame %q, want range line %q", frame, tt.rangeLine)
					}
					var got []int64
					for _, row := range records[1:] {
						n, _ := strconv.ParseInt(row[5], 10, 64)
						got = append(got, n)
					}
					if !slices.Equal(got, tt.want) {
						t.Errorf("wh_in of the rows %v, want %v", got, tt.want)
					}
				})
			}
			wantProblem(t, get(t, fmt.Sprintf("%s/meters/%d/export.csv?from=%d&to=%d", ts.admin, id, at(1, 0).UnixMilli(), at(0, 0).UnixMilli())),
				http.StatusBadRequest, "invalid-parameter")
		})
	}
}
