package server_test

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"smartmeters/db/dbtest"
)

// TestFleetCalendar asks the fleet and a meter for days of Europe/Berlin
// across the night its clocks go forward (a day of 23 hours), for
// calendar months, and for the same as CSV, with the readings partly
// rolled up and then all of them: every answer is the same and exact.
func TestFleetCalendar(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range dbtest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			ts := newTestServer(t, b, nil)
			// 100 Wh in and 10 Wh out every half hour, from 27 March 22:00
			// UTC to 1 April 22:00 UTC: 200 and 20 Wh an hour.
			start := time.Date(2026, 3, 27, 22, 0, 0, 0, time.UTC)
			var regs []reg
			for i := range 5*48 + 1 {
				regs = append(regs, reg{start.Add(time.Duration(i) * 30 * time.Minute), int64(100 * i), int64(10 * i)})
			}
			half := len(regs) / 2
			k := newKey(t, "ed25519")
			id := seedMeter(t, ts, "berlin", k, regs[:half]...)
			if _, err := ts.store.FollowRollups(context.Background()); err != nil {
				t.Fatal(err)
			}
			storeRegs(t, ts, id, k, regs[half:]...) // these stay queued

			day := func(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, berlin) }
			window := "&from=" + url.QueryEscape(day(2026, 3, 28).Format(time.RFC3339)) + "&to=" + url.QueryEscape(day(2026, 3, 31).Format(time.RFC3339))
			wantDays := []fleetRow{
				row(day(2026, 3, 28), day(2026, 3, 29), 24*200, 24*20),
				row(day(2026, 3, 29), day(2026, 3, 30), 23*200, 23*20), // 02:00 is 03:00
				row(day(2026, 3, 30), day(2026, 3, 31), 24*200, 24*20),
			}
			// March from 27 March 22:00 UTC: 98 hours; April to 1 April
			// 22:00 UTC: 22 hours.
			wantMonths := []fleetRow{
				row(time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC), 98*200, 98*20),
				row(time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC), 22*200, 22*20),
			}
			months := "&from=2026-03-15T00:00:00Z&to=2026-04-15T00:00:00Z"
			check := func(when string) {
				t.Helper()
				if got := fleetRows(t, ts, "/fleet?bucket=1d&tz=Europe/Berlin"+window); !reflect.DeepEqual(got, wantDays) {
					t.Errorf("%s: fleet days of Berlin: %v, want %v", when, got, wantDays)
				}
				if got := consumptionRows(t, ts, fmt.Sprintf("/meters/%d/consumption?bucket=1d&tz=Europe/Berlin", id)+window); !reflect.DeepEqual(got, wantDays) {
					t.Errorf("%s: the meter's days of Berlin: %v, want %v", when, got, wantDays)
				}
				if got := fleetRows(t, ts, "/fleet?bucket=1mo"+months); !reflect.DeepEqual(got, wantMonths) {
					t.Errorf("%s: fleet months: %v, want %v", when, got, wantMonths)
				}
				if got := csvRows(t, ts, "/fleet/consumption.csv?bucket=1d&tz=Europe/Berlin"+window); !reflect.DeepEqual(got, wantDays) {
					t.Errorf("%s: fleet CSV: %v, want %v", when, got, wantDays)
				}
			}
			check("half rolled up")
			if _, err := ts.store.FollowRollups(context.Background()); err != nil {
				t.Fatal(err)
			}
			check("all rolled up")

			for _, path := range []string{
				"/fleet?bucket=1d&tz=Mars/Olympus", "/fleet?bucket=1d&tz=Local", "/fleet?bucket=2mo",
				"/fleet/consumption.csv?tz=Nowhere", fmt.Sprintf("/meters/%d/consumption?bucket=1mo&tz=%%2B01:00", id),
				"/fleet?bucket=1d&from=2026-01-01T00:00:00Z&to=2090-01-01T00:00:00Z",
			} {
				wantProblem(t, get(t, ts.admin+path), http.StatusBadRequest, "invalid-parameter")
			}
		})
	}
}

// fleetRow is a bucket of energy as the tests compare them.
type fleetRow struct {
	start, end  time.Time
	whIn, whOut int64
}

func row(start, end time.Time, in, out int64) fleetRow {
	return fleetRow{start.UTC(), end.UTC(), in, out}
}

func (r fleetRow) String() string {
	return fmt.Sprintf("[%s, %s) %d/%d", r.start.Format(time.RFC3339), r.end.Format(time.RFC3339), r.whIn, r.whOut)
}

func fleetRows(t *testing.T, ts testServer, path string) []fleetRow {
	t.Helper()
	var got struct {
		Energy struct {
			Buckets []struct {
				Start, End  time.Time
				WhIn, WhOut int64
			} `json:"buckets"`
		} `json:"energy"`
	}
	getJSON(t, ts, path, &got)
	var out []fleetRow
	for _, b := range got.Energy.Buckets {
		out = append(out, row(b.Start, b.End, b.WhIn, b.WhOut))
	}
	return out
}

func consumptionRows(t *testing.T, ts testServer, path string) []fleetRow {
	t.Helper()
	var got struct {
		Buckets []struct {
			Start, End  time.Time
			WhIn, WhOut int64
		} `json:"buckets"`
	}
	getJSON(t, ts, path, &got)
	var out []fleetRow
	for _, b := range got.Buckets {
		out = append(out, row(b.Start, b.End, b.WhIn, b.WhOut))
	}
	return out
}

func csvRows(t *testing.T, ts testServer, path string) []fleetRow {
	t.Helper()
	r := get(t, ts.admin+path)
	if r.status != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, r.status, r.rawBody)
	}
	recs, err := csv.NewReader(strings.NewReader(r.rawBody)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) == 0 || strings.Join(recs[0], ",") != "start,end,wh_in,wh_out,partial" {
		t.Fatalf("GET %s: header %q", path, recs)
	}
	var out []fleetRow
	for _, rec := range recs[1:] {
		start, err1 := time.Parse(time.RFC3339, rec[0])
		end, err2 := time.Parse(time.RFC3339, rec[1])
		in, err3 := strconv.ParseInt(rec[2], 10, 64)
		outWh, err4 := strconv.ParseInt(rec[3], 10, 64)
		if err := errors.Join(err1, err2, err3, err4); err != nil {
			t.Fatalf("GET %s: row %q: %v", path, rec, err)
		}
		out = append(out, row(start, end, in, outWh))
	}
	return out
}
