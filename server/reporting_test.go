package server_test

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"smartmeters/crypto"
	"smartmeters/db/dbtest"
	"smartmeters/store"
)

// day is the day the reporting tests put their readings on; the pinned
// clock is at 08:00 the same day.
var day = time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)

// at returns the instant h:m on day.
func at(h, m int) time.Time {
	return day.Add(time.Duration(h)*time.Hour + time.Duration(m)*time.Minute)
}

// reg is a register pair at an instant, for seeding readings.
type reg struct {
	at      time.Time
	in, out int64
}

// seedMeter registers a meter and stores its signed readings directly,
// returning the meter's id.
func seedMeter(t *testing.T, ts testServer, username string, k *crypto.PrivateKey, regs ...reg) int64 {
	t.Helper()
	r := register(t, ts, username, k)
	if r.status != http.StatusCreated {
		t.Fatalf("register %s: %s", username, r.rawBody)
	}
	id := int64(r.body["id"].(float64))
	storeRegs(t, ts, id, k, regs...)
	return id
}

// storeRegs stores readings of meter id signed with its key k directly.
func storeRegs(t *testing.T, ts testServer, id int64, k *crypto.PrivateKey, regs ...reg) {
	t.Helper()
	if len(regs) == 0 {
		return
	}
	rs := make([]store.Reading, len(regs))
	for i, g := range regs {
		cr := crypto.Reading{WhIn: g.in, WhOut: g.out, Timestamp: g.at.UnixMilli()}
		sig, err := k.Sign(cr)
		if err != nil {
			t.Fatal(err)
		}
		rs[i] = store.Reading{MeterID: id, KeySeq: 1, Reading: cr, Signature: sig, ReceivedAt: g.at.Add(time.Second)}
	}
	if _, err := ts.store.InsertReadings(context.Background(), rs); err != nil {
		t.Fatal(err)
	}
}

// getJSON fetches path from the admin listener and decodes a 200 answer
// into v.
func getJSON(t *testing.T, ts testServer, path string, v any) {
	t.Helper()
	r := get(t, ts.admin+path)
	if r.status != http.StatusOK {
		t.Fatalf("GET %s: status %d: %s", path, r.status, r.rawBody)
	}
	if err := json.Unmarshal([]byte(r.rawBody), v); err != nil {
		t.Fatalf("GET %s: %v: %s", path, err, r.rawBody)
	}
}

func get(t *testing.T, u string) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	return do(t, req)
}

// bucket is a consumption bucket as the tests expect it; nil energies mean
// an incomplete bucket.
type bucket struct {
	Start    time.Time `json:"start"`
	WhIn     *float64  `json:"whIn"`
	WhOut    *float64  `json:"whOut"`
	Complete bool      `json:"complete"`
}

func wh(v float64) *float64 { return &v }

func complete(start time.Time, in, out float64) bucket {
	return bucket{Start: start, WhIn: wh(in), WhOut: wh(out), Complete: true}
}

func missing(start time.Time) bucket { return bucket{Start: start} }

func TestConsumption(t *testing.T) {
	tests := []struct {
		name      string
		regs      []reg
		query     string
		want      []bucket
		wantTotal [2]float64
	}{{
		// 00:15 interpolates to 1100 and 00:30 to 1400: 300 Wh exactly.
		name:  "StraddlingAndMissingEdges",
		regs:  []reg{{at(0, 10), 1000, 0}, {at(0, 40), 1600, 30}, {at(1, 0), 2000, 30}},
		query: "from=" + at(0, 0).Format(time.RFC3339) + "&to=" + at(1, 30).Format(time.RFC3339) + "&bucket=15m",
		want: []bucket{
			missing(at(0, 0)), // nothing at or before 00:00
			complete(at(0, 15), 300, 15),
			complete(at(0, 30), 300, 10),
			complete(at(0, 45), 300, 0),
			missing(at(1, 0)), // nothing at or after 01:15
			missing(at(1, 15)),
		},
		wantTotal: [2]float64{900, 25},
	}, {
		name:      "ReadingsOnTheEdges",
		regs:      []reg{{at(0, 0), 0, 0}, {at(1, 0), 100, 7}, {at(2, 0), 300, 7}},
		query:     fmt.Sprintf("from=%d&to=%d&bucket=1h", at(0, 0).UnixMilli(), at(2, 0).UnixMilli()),
		want:      []bucket{complete(at(0, 0), 100, 7), complete(at(1, 0), 200, 0)},
		wantTotal: [2]float64{100 + 200, 7},
	}, {
		// The readings that bracket the window lie outside it.
		name:      "BracketedFromOutside",
		regs:      []reg{{at(0, 0).Add(-10 * time.Minute), 0, 0}, {at(0, 20), 300, 60}},
		query:     "from=" + at(0, 0).Format(time.RFC3339) + "&to=" + at(0, 15).Format(time.RFC3339) + "&bucket=15m",
		want:      []bucket{complete(at(0, 0), 150, 30)},
		wantTotal: [2]float64{150, 30},
	}, {
		name:      "WindowWidenedToWholeBuckets",
		regs:      []reg{{at(0, 0), 0, 0}, {at(2, 0), 2400, 0}},
		query:     "from=" + at(0, 20).Format(time.RFC3339) + "&to=" + at(0, 50).Format(time.RFC3339) + "&bucket=1h",
		want:      []bucket{complete(at(0, 0), 1200, 0)},
		wantTotal: [2]float64{1200, 0},
	}, {
		name:  "NoReadings",
		query: "from=" + at(0, 0).Format(time.RFC3339) + "&to=" + at(1, 0).Format(time.RFC3339) + "&bucket=1h",
		want:  []bucket{missing(at(0, 0))},
	}, {
		name:  "OnlyBefore",
		regs:  []reg{{at(0, 0), 0, 0}, {at(0, 30), 10, 0}},
		query: "from=" + at(1, 0).Format(time.RFC3339) + "&to=" + at(2, 0).Format(time.RFC3339) + "&bucket=1d",
		want:  []bucket{missing(day)},
	}}
	for _, b := range dbtest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			ts := newTestServer(t, b, nil)
			for i, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					id := seedMeter(t, ts, fmt.Sprint("consumer-", i), newKey(t, "ed25519"), tt.regs...)
					var got struct {
						Buckets []bucket `json:"buckets"`
						Total   struct {
							WhIn  float64 `json:"whIn"`
							WhOut float64 `json:"whOut"`
						} `json:"total"`
					}
					getJSON(t, ts, fmt.Sprintf("/meters/%d/consumption?%s", id, tt.query), &got)
					if !reflect.DeepEqual(got.Buckets, tt.want) {
						t.Errorf("buckets\n got %s\nwant %s", show(got.Buckets), show(tt.want))
					}
					if total := [2]float64{got.Total.WhIn, got.Total.WhOut}; total != tt.wantTotal {
						t.Errorf("total %v, want %v", total, tt.wantTotal)
					}
				})
			}
		})
	}
}

func show(bs []bucket) string {
	s := ""
	for _, b := range bs {
		if b.Complete {
			s += fmt.Sprintf("[%s %g %g] ", b.Start.Format("15:04"), *b.WhIn, *b.WhOut)
		} else {
			s += fmt.Sprintf("[%s missing] ", b.Start.Format("15:04"))
		}
	}
	return s
}

func TestFleet(t *testing.T) {
	for _, b := range dbtest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			ts := newTestServer(t, b, nil)
			seedMeter(t, ts, "a", newKey(t, "ed25519"),
				reg{at(0, 10), 1000, 0}, reg{at(0, 40), 1600, 30}, reg{at(1, 0), 2000, 30})
			// One segment over the whole hour: 150 Wh in each quarter.
			seedMeter(t, ts, "b", newKey(t, "ed25519"), reg{at(0, 0), 0, 0}, reg{at(1, 0), 600, 0})
			seedMeter(t, ts, "c", newKey(t, "ed25519"), reg{now.Add(-30 * time.Second), 5, 5})
			seedMeter(t, ts, "d", newKey(t, "ed25519"))

			var got struct {
				MetersRegistered int64            `json:"metersRegistered"`
				MetersReporting  int64            `json:"metersReporting"`
				ReportingWindow  string           `json:"reportingWindow"`
				Rejected         map[string]int64 `json:"rejected"`
				Energy           struct {
					Bucket  string `json:"bucket"`
					Buckets []struct {
						Start   time.Time `json:"start"`
						WhIn    float64   `json:"whIn"`
						WhOut   float64   `json:"whOut"`
						WattsIn float64   `json:"wattsIn"`
					} `json:"buckets"`
				} `json:"energy"`
			}
			getJSON(t, ts, "/fleet?bucket=15m&from="+url.QueryEscape(at(0, 0).Format(time.RFC3339))+
				"&to="+url.QueryEscape(at(1, 0).Format(time.RFC3339)), &got)
			if got.MetersRegistered != 4 || got.MetersReporting != 1 || got.ReportingWindow != "1m0s" {
				t.Errorf("registered %d, reporting %d in %s; want 4, 1 in 1m0s",
					got.MetersRegistered, got.MetersReporting, got.ReportingWindow)
			}
			if got.Rejected == nil {
				t.Error("rejected is null, want an object")
			}
			// a: 100 (00:10-00:15), 300, 200+100, 300; b: 150 each.
			wantIn := []float64{250, 450, 450, 450}
			wantOut := []float64{5, 15, 10, 0}
			if len(got.Energy.Buckets) != len(wantIn) {
				t.Fatalf("%d buckets, want %d: %+v", len(got.Energy.Buckets), len(wantIn), got.Energy.Buckets)
			}
			for i, eb := range got.Energy.Buckets {
				if !eb.Start.Equal(at(0, 15*i)) || eb.WhIn != wantIn[i] || eb.WhOut != wantOut[i] || eb.WattsIn != 4*wantIn[i] {
					t.Errorf("bucket %d = %+v, want start %s in %g out %g", i, eb, at(0, 15*i), wantIn[i], wantOut[i])
				}
			}

			var def struct {
				Energy struct {
					Bucket  string    `json:"bucket"`
					From    time.Time `json:"from"`
					To      time.Time `json:"to"`
					Buckets []any     `json:"buckets"`
				} `json:"energy"`
			}
			getJSON(t, ts, "/fleet", &def)
			if def.Energy.Bucket != "5m" || !def.Energy.To.Equal(now) || len(def.Energy.Buckets) != 12 {
				t.Errorf("default energy window: %s buckets to %s, %d of them; want 5m to %s, 12",
					def.Energy.Bucket, def.Energy.To, len(def.Energy.Buckets), now)
			}
		})
	}
}

func TestMeters(t *testing.T) {
	for _, b := range dbtest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			ts := newTestServer(t, b, nil)
			ids := map[string]int64{}
			for _, name := range []string{"al_ice", "alxice", "al.x", "bob", "Alice"} {
				ids[name] = seedMeter(t, ts, name, newKey(t, "ed25519"))
			}
			live := seedMeter(t, ts, "live", newKey(t, "ed25519"),
				reg{now.Add(-time.Hour), 10, 1}, reg{now.Add(-30 * time.Second), 20, 2})

			type page struct {
				Meters []struct {
					ID          int64  `json:"id"`
					Username    string `json:"username"`
					State       string `json:"state"`
					LastReading *struct {
						Timestamp time.Time `json:"timestamp"`
						WhIn      int64     `json:"whIn"`
						WhOut     int64     `json:"whOut"`
					} `json:"lastReading"`
				} `json:"meters"`
				Next *int64 `json:"next"`
			}
			names := func(p page) []string {
				var out []string
				for _, m := range p.Meters {
					out = append(out, m.Username)
				}
				return out
			}
			prefixes := []struct {
				prefix string
				want   []string
			}{
				{"al_", []string{"al_ice"}}, // _ is no wildcard
				{"al.", []string{"al.x"}},   // nor is .
				{"al", []string{"al_ice", "alxice", "al.x"}},
				{"Al", []string{"Alice"}}, // case-sensitive
				{"zed", nil},
			}
			for _, tt := range prefixes {
				var p page
				getJSON(t, ts, "/meters?username="+url.QueryEscape(tt.prefix), &p)
				if got := names(p); !reflect.DeepEqual(got, tt.want) {
					t.Errorf("prefix %q: %q, want %q", tt.prefix, got, tt.want)
				}
			}

			var all []string
			path := "/meters?limit=4"
			for {
				var p page
				getJSON(t, ts, path, &p)
				all = append(all, names(p)...)
				if p.Next == nil {
					break
				}
				path = fmt.Sprintf("/meters?limit=4&after=%d", *p.Next)
			}
			if want := []string{"al_ice", "alxice", "al.x", "bob", "Alice", "live"}; !reflect.DeepEqual(all, want) {
				t.Errorf("paged list %q, want %q", all, want)
			}

			var p page
			getJSON(t, ts, "/meters?username=live", &p)
			m := p.Meters[0]
			if m.State != "reporting" || m.LastReading == nil || m.LastReading.WhIn != 20 ||
				!m.LastReading.Timestamp.Equal(now.Add(-30*time.Second)) {
				t.Errorf("live meter: %+v", m)
			}
			getJSON(t, ts, "/meters?username=live&window=10s", &p)
			if p.Meters[0].State != "silent" {
				t.Errorf("state with a 10s window %q, want silent", p.Meters[0].State)
			}

			var one struct {
				ID          int64  `json:"id"`
				State       string `json:"state"`
				LastReading *struct {
					WhOut int64 `json:"whOut"`
				} `json:"lastReading"`
			}
			getJSON(t, ts, fmt.Sprintf("/meters/%d", live), &one)
			if one.ID != live || one.State != "reporting" || one.LastReading == nil || one.LastReading.WhOut != 2 {
				t.Errorf("GET /meters/%d: %+v", live, one)
			}
			getJSON(t, ts, fmt.Sprintf("/meters/%d", ids["bob"]), &one)
			if one.State != "silent" || one.LastReading != nil {
				t.Errorf("meter without readings: %+v", one)
			}
		})
	}
}

func TestMeterReadings(t *testing.T) {
	for _, b := range dbtest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			ts := newTestServer(t, b, nil)
			var regs []reg
			for i := range 5 {
				regs = append(regs, reg{at(1, 10*i), int64(100 * i), 0})
			}
			id := seedMeter(t, ts, "pager", newKey(t, "ed25519"), regs...)
			type page struct {
				Order    string `json:"order"`
				Readings []struct {
					Timestamp       time.Time `json:"timestamp"`
					WhIn            int64     `json:"whIn"`
					Base64Signature string    `json:"base64Signature"`
				} `json:"readings"`
				Next *time.Time `json:"next"`
			}
			// [01:00, 01:40) holds four readings; pages of three, followed
			// through next in the body and through the Link header.
			for _, tt := range []struct {
				order string
				bound string // the parameter next stands for
				want  []int64
			}{
				{"", "from", []int64{0, 100, 200, 300}},
				{"asc", "from", []int64{0, 100, 200, 300}},
				{"desc", "to", []int64{300, 200, 100, 0}},
			} {
				t.Run("order="+tt.order, func(t *testing.T) {
					q := url.Values{"from": {at(1, 0).Format(time.RFC3339)}, "to": {at(1, 40).Format(time.RFC3339)}, "limit": {"3"}}
					if tt.order != "" {
						q.Set("order", tt.order)
					}
					byNext := fmt.Sprintf("/meters/%d/readings?%s", id, q.Encode())
					byLink := byNext
					var got, gotLinked []int64
					for pages := 0; byNext != "" || byLink != ""; pages++ {
						if pages > 3 {
							t.Fatal("paging does not end")
						}
						if byNext != "" {
							var p page
							getJSON(t, ts, byNext, &p)
							if want := cmp.Or(tt.order, "asc"); p.Order != want {
								t.Errorf("order %q, want %q", p.Order, want)
							}
							for _, r := range p.Readings {
								if r.Base64Signature == "" {
									t.Errorf("reading at %s has no signature", r.Timestamp)
								}
								got = append(got, r.WhIn)
							}
							byNext = ""
							if p.Next != nil {
								q.Set(tt.bound, p.Next.Format(time.RFC3339Nano))
								byNext = fmt.Sprintf("/meters/%d/readings?%s", id, q.Encode())
							}
						}
						if byLink != "" {
							r := get(t, ts.admin+byLink)
							var p page
							if err := json.Unmarshal([]byte(r.rawBody), &p); err != nil || r.status != http.StatusOK {
								t.Fatalf("GET %s: %d %s", byLink, r.status, r.rawBody)
							}
							for _, r := range p.Readings {
								gotLinked = append(gotLinked, r.WhIn)
							}
							byLink = ""
							if link := r.header.Get("Link"); link != "" {
								target, ok := strings.CutSuffix(link, `>; rel="next"`)
								if !strings.HasPrefix(target, "</meters/") || !ok {
									t.Fatalf("Link %q, want </meters/…>; rel=\"next\"", link)
								}
								byLink = target[1:]
							}
							if (p.Next == nil) != (byLink == "") {
								t.Errorf("next %v but Link %q", p.Next, r.header.Get("Link"))
							}
						}
					}
					if !reflect.DeepEqual(got, tt.want) || !reflect.DeepEqual(gotLinked, tt.want) {
						t.Errorf("paged readings %v by next, %v by Link; want %v", got, gotLinked, tt.want)
					}
				})
			}
			wantProblem(t, get(t, fmt.Sprintf("%s/meters/%d/readings?order=newest", ts.admin, id)), http.StatusBadRequest, "invalid-parameter")
		})
	}
}

func TestReportingBadInput(t *testing.T) {
	ts := newTestServer(t, dbtest.SQLite(t), nil)
	id := seedMeter(t, ts, "m", newKey(t, "ed25519"))
	tests := []struct {
		name, path string
		status     int
		slug       string
	}{
		{"ErrBucket", fmt.Sprintf("/meters/%d/consumption?bucket=2h", id), 400, "invalid-parameter"},
		{"ErrFrom", fmt.Sprintf("/meters/%d/consumption?from=yesterday", id), 400, "invalid-parameter"},
		{"ErrToBeforeFrom", fmt.Sprintf("/meters/%d/readings?from=2000&to=1000", id), 400, "invalid-parameter"},
		{"ErrTooManyBuckets", fmt.Sprintf("/meters/%d/consumption?bucket=1m&from=0", id), 400, "invalid-parameter"},
		{"ErrLimitZero", "/meters?limit=0", 400, "invalid-parameter"},
		{"ErrLimitHuge", "/meters?limit=1001", 400, "invalid-parameter"},
		{"ErrAfter", "/meters?after=x", 400, "invalid-parameter"},
		{"ErrUsernameNotUTF8", "/meters?username=%C3", 400, "invalid-parameter"},
		{"ErrUsernameSpace", "/meters?username=a%20b", 400, "invalid-parameter"},
		{"ErrWindow", "/fleet?window=forever", 400, "invalid-parameter"},
		{"ErrFleetBucket", "/fleet?bucket=7m", 400, "invalid-parameter"},
		{"ErrUnknownMeter", "/meters/999", 404, "not-found"},
		{"ErrMeterIDNotNumber", "/meters/abc/consumption", 404, "not-found"},
		{"ErrUnknownMeterReadings", "/meters/999/readings", 404, "not-found"},
		{"ErrUnknownMeterExport", "/meters/999/export.csv", 404, "not-found"},
		// Times JSON cannot write: past the year 9999, before the year 1,
		// or a default window that reaches there.
		{"ErrFromYear10000", fmt.Sprintf("/meters/%d/readings?from=253402300800000", id), 400, "invalid-parameter"},
		{"ErrToYear10000", fmt.Sprintf("/meters/%d/consumption?to=253402300800000", id), 400, "invalid-parameter"},
		{"ErrFleetToYear10000", "/fleet?to=253402300800000", 400, "invalid-parameter"},
		{"ErrFleetFromNegative", "/fleet?from=-62135596800001&to=0", 400, "invalid-parameter"},
		{"ErrDefaultFromBeforeYear1", fmt.Sprintf("/meters/%d/readings?to=-62135596800000", id), 400, "invalid-parameter"},
		{"ErrMinInt", fmt.Sprintf("/meters/%d/consumption?from=-9223372036854775808", id), 400, "invalid-parameter"},
		{"ErrMaxInt", "/fleet?to=9223372036854775807", 400, "invalid-parameter"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantProblem(t, get(t, ts.admin+tt.path), tt.status, tt.slug)
		})
	}
}

// TestLargeRegisters apportions registers near 2^60 Wh, where a float64
// cannot tell one Wh from the next: consumption and the fleet must both
// give 1 Wh in and 1000 Wh out a minute, on both stores.
func TestLargeRegisters(t *testing.T) {
	for _, b := range dbtest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			ts := newTestServer(t, b, nil)
			base := int64(1) << 60
			id := seedMeter(t, ts, "big", newKey(t, "ed25519"),
				reg{at(0, 0), base, base}, reg{at(0, 3), base + 3, base + 3000})
			window := fmt.Sprintf("bucket=1m&from=%d&to=%d", at(0, 0).UnixMilli(), at(0, 3).UnixMilli())
			var cons struct {
				Buckets []struct{ WhIn, WhOut *int64 }
				Total   struct{ WhIn, WhOut int64 }
			}
			getJSON(t, ts, fmt.Sprintf("/meters/%d/consumption?%s", id, window), &cons)
			var fleet struct {
				Energy struct{ Buckets []struct{ WhIn, WhOut int64 } }
			}
			getJSON(t, ts, "/fleet?"+window, &fleet)
			if len(cons.Buckets) != 3 || len(fleet.Energy.Buckets) != 3 {
				t.Fatalf("%d and %d buckets, want 3", len(cons.Buckets), len(fleet.Energy.Buckets))
			}
			for i := range 3 {
				c, f := cons.Buckets[i], fleet.Energy.Buckets[i]
				if c.WhIn == nil || *c.WhIn != 1 || *c.WhOut != 1000 || f.WhIn != 1 || f.WhOut != 1000 {
					t.Errorf("minute %d: consumption %v/%v, fleet %d/%d; want 1/1000", i, c.WhIn, c.WhOut, f.WhIn, f.WhOut)
				}
			}
			if cons.Total.WhIn != 3 || cons.Total.WhOut != 3000 {
				t.Errorf("total %+v, want 3/3000", cons.Total)
			}
		})
	}
}

// TestForgeriesAreNotTheMeters sends reports with a meter's public key and
// bad signatures: they are counted against the key, apart, and the meter
// stays as its own readings left it. A refusal of a reading the meter did
// sign is its own.
func TestForgeriesAreNotTheMeters(t *testing.T) {
	ts := newTestServer(t, dbtest.SQLite(t), nil)
	k := newKey(t, "ed25519")
	id := seedMeter(t, ts, "victim", k, reg{now.Add(-10 * time.Second), 10, 0})
	for i := range int64(4) {
		body := signed(t, k, crypto.Reading{WhIn: 20 + i, Timestamp: now.Add(-5 * time.Second).UnixMilli()})
		body.Reading.WhIn++ // no longer what was signed
		wantProblem(t, postJSON(t, ts.public+"/reportReading", body), http.StatusBadRequest, "invalid-signature")
	}
	var m struct {
		State             string          `json:"state"`
		LastRejection     json.RawMessage `json:"lastRejection"`
		InvalidSignatures *struct {
			Count  int64     `json:"count"`
			LastAt time.Time `json:"lastAt"`
		} `json:"invalidSignatures"`
	}
	getJSON(t, ts, fmt.Sprintf("/meters/%d", id), &m)
	if m.State != "reporting" || string(m.LastRejection) != "null" {
		t.Errorf("after forgeries: state %s, lastRejection %s; want reporting and null", m.State, m.LastRejection)
	}
	if m.InvalidSignatures == nil || m.InvalidSignatures.Count != 4 || !m.InvalidSignatures.LastAt.Equal(now) {
		t.Errorf("invalidSignatures %+v, want 4 at %s", m.InvalidSignatures, now)
	}
	// A reading the meter signed, refused: its own rejection.
	ahead := signed(t, k, crypto.Reading{WhIn: 30, Timestamp: now.Add(time.Hour).UnixMilli()})
	wantProblem(t, postJSON(t, ts.public+"/reportReading", ahead), http.StatusUnprocessableEntity, "timestamp-in-future")
	getJSON(t, ts, fmt.Sprintf("/meters/%d", id), &m)
	if m.State != "rejected" || !strings.Contains(string(m.LastRejection), "timestamp-in-future") {
		t.Errorf("after its own refused reading: state %s, lastRejection %s", m.State, m.LastRejection)
	}
}
