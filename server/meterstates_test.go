package server_test

import (
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"smartmeters/crypto"
	"smartmeters/db/dbtest"
	"smartmeters/server"
)

// seedStates registers one meter in each state as of now with a 60 s
// silence threshold: reporting, silent after an old reading, silent with
// none, rejected (its own reading refused just now) and revoked.
func seedStates(t *testing.T, ts testServer) {
	t.Helper()
	seedMeter(t, ts, "live", newKey(t, "ed25519"), reg{now.Add(-30 * time.Second), 10, 1})
	seedMeter(t, ts, "old", newKey(t, "ed25519"), reg{now.Add(-2 * time.Hour), 10, 1})
	seedMeter(t, ts, "never", newKey(t, "ed25519"))
	bad := newKey(t, "ed25519")
	seedMeter(t, ts, "bad", bad, reg{now.Add(-20 * time.Second), 10, 1})
	ahead := signed(t, bad, crypto.Reading{WhIn: 30, Timestamp: now.Add(time.Hour).UnixMilli()})
	wantProblem(t, postJSON(t, ts.public+"/reportReading", ahead), http.StatusUnprocessableEntity, "timestamp-in-future")
	gone := seedMeter(t, ts, "gone", newKey(t, "ed25519"), reg{now.Add(-10 * time.Second), 10, 1})
	if r := postJSON(t, fmt.Sprintf("%s/meters/%d/revoke", ts.admin, gone), map[string]string{"reason": "stolen"}); r.status != http.StatusOK {
		t.Fatal(r.rawBody)
	}
}

// TestMeterStates filters the meter list by state, page by page, and
// checks that /fleet and the smartmeters_meters gauge count the same
// states; --silent-after moves the threshold.
func TestMeterStates(t *testing.T) {
	for _, b := range dbtest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			ts := newTestServer(t, b, nil)
			seedStates(t, ts)
			for _, tt := range []struct {
				query string
				want  []string
			}{
				{"", []string{"live", "old", "never", "bad", "gone"}},
				{"state=reporting", []string{"live"}},
				{"state=silent", []string{"old", "never"}},
				{"state=rejected", []string{"bad"}},
				{"state=revoked", []string{"gone"}},
				{"state=silent&window=3h", []string{"never"}},
				{"state=silent&username=o", []string{"old"}},
				{"sort=state", []string{"old", "never", "bad", "gone", "live"}},
				{"sort=state&username=o", []string{"old"}},
				{"sort=state&state=reporting", []string{"live"}},
				{"sort=id", []string{"live", "old", "never", "bad", "gone"}},
			} {
				t.Run(tt.query, func(t *testing.T) {
					// Pages of one, so that a page is filled across store pages.
					if got := listAll(t, ts, "/meters?limit=1&"+tt.query); !reflect.DeepEqual(got, tt.want) {
						t.Errorf("GET /meters?%s: %q, want %q", tt.query, got, tt.want)
					}
				})
			}
			for _, bad := range []string{"state=asleep", "sort=name", "sort=state&afterState=asleep"} {
				wantProblem(t, get(t, ts.admin+"/meters?"+bad), http.StatusBadRequest, "invalid-parameter")
			}

			var fleet struct {
				Registered int64 `json:"metersRegistered"`
				Reporting  int64 `json:"metersReporting"`
				Silent     int64 `json:"metersSilent"`
				Revoked    int64 `json:"metersRevoked"`
			}
			getJSON(t, ts, "/fleet", &fleet)
			// "bad" has a reading within the minute: the store counts it reporting.
			if fleet.Registered != 5 || fleet.Reporting != 2 || fleet.Silent != 2 || fleet.Revoked != 1 {
				t.Errorf("/fleet counts %+v, want 5 registered, 2 reporting, 2 silent, 1 revoked", fleet)
			}
			metrics := get(t, ts.admin+"/metrics").rawBody
			for _, want := range []string{
				`smartmeters_meters{state="registered"} 5`, `smartmeters_meters{state="reporting"} 2`,
				`smartmeters_meters{state="silent"} 2`, `smartmeters_meters{state="revoked"} 1`,
			} {
				if !strings.Contains(metrics, want+"\n") {
					t.Errorf("/metrics lacks %q", want)
				}
			}
		})
	}
}

// TestSilentAfter moves the threshold with the configuration: with three
// hours, the meter last heard of two hours ago is reporting.
func TestSilentAfter(t *testing.T) {
	ts := newTestServer(t, dbtest.SQLite(t), func(c *server.Config) { c.SilentAfter = 3 * time.Hour })
	seedStates(t, ts)
	if got, want := listAll(t, ts, "/meters?state=silent"), []string{"never"}; !reflect.DeepEqual(got, want) {
		t.Errorf("silent after 3h: %q, want %q", got, want)
	}
	res, err := http.Get(ts.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if !strings.Contains(string(body), `smartmeters_meters{state="silent"} 1`+"\n") {
		t.Errorf("smartmeters_meters with --silent-after 3h:\n%s", body)
	}
}

// listAll follows a meter list's pages from path and returns the usernames.
func listAll(t *testing.T, ts testServer, path string) []string {
	t.Helper()
	var names []string
	for next := path; ; {
		var p struct {
			Meters []struct {
				Username string `json:"username"`
			} `json:"meters"`
			Next      *int64 `json:"next"`
			NextState string `json:"nextState"`
		}
		getJSON(t, ts, next, &p)
		for _, m := range p.Meters {
			names = append(names, m.Username)
		}
		if p.Next == nil {
			return names
		}
		next = fmt.Sprintf("%s&after=%d", path, *p.Next)
		if p.NextState != "" {
			next += "&afterState=" + p.NextState
		}
	}
}
