package server_test

import (
	"encoding/csv"
	"fmt"
	"net/http"
	"reflect"
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
					rows, err := csv.NewReader(res.Body).ReadAll()
					if err != nil {
						t.Fatal(err)
					}
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
					}
				})
			}
		})
	}
}
