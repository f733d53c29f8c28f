package server_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"smartmeters/crypto"
	"smartmeters/db/dbtest"
	"smartmeters/server"
	"smartmeters/store"
)

// TestReportRegisterDecreased checks that a reading which would make a
// cumulative register go down is refused with 422 register-decreased and
// not stored, on both endpoints and both stores.
func TestReportRegisterDecreased(t *testing.T) {
	for _, b := range dbtest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			ts := newTestServer(t, b, nil)
			k := newKey(t, "ed25519")
			if r := register(t, ts, "cumulative", k); r.status != http.StatusCreated {
				t.Fatal(r.rawBody)
			}
			t0 := now.Add(-time.Hour).UnixMilli()
			at := func(sec, in, out int64) reportBody {
				return signed(t, k, crypto.Reading{WhIn: in, WhOut: out, Timestamp: t0 + sec*1000})
			}
			for _, body := range []reportBody{at(10, 100, 10), at(20, 200, 20)} {
				if r := postJSON(t, ts.public+"/reportReading", body); r.status != http.StatusCreated {
					t.Fatal(r.rawBody)
				}
			}
			for _, tt := range []struct {
				name string
				body reportBody
			}{
				{"WhInBelowPrevious", at(15, 99, 15)},
				{"WhOutBelowPrevious", at(15, 150, 9)},
				{"WhInAboveNext", at(15, 201, 15)},
				{"WhOutAboveNext", at(15, 150, 21)},
				{"AfterLastButLower", at(30, 199, 30)},
				{"BeforeFirstButHigher", at(5, 101, 5)},
			} {
				t.Run(tt.name, func(t *testing.T) {
					wantProblem(t, postJSON(t, ts.public+"/reportReading", tt.body), http.StatusUnprocessableEntity, "register-decreased")
				})
			}
			t.Run("Batch", func(t *testing.T) {
				// Out of order within the batch, but consistent: all stored;
				// then one that contradicts a reading earlier in the batch.
				r := postJSON(t, ts.public+"/reportReadings", []reportBody{at(40, 400, 40), at(30, 300, 30), at(35, 350, 35), at(45, 390, 45), at(15, 150, 15)})
				want := []int{201, 201, 201, 422, 201}
				results, _ := r.body["results"].([]any)
				if r.status != http.StatusOK || len(results) != len(want) {
					t.Fatalf("status %d: %s", r.status, r.rawBody)
				}
				for i, w := range want {
					res := results[i].(map[string]any)
					if res["status"] != float64(w) || (w == 422 && res["type"] != "urn:smartmeters:problem:register-decreased") {
						t.Errorf("result %d = %v, want %d", i, res, w)
					}
				}
			})
			if n := countReadings(t, ts.db); n != 6 {
				t.Fatalf("stored %d readings, want 6", n)
			}
		})
	}
}

// TestRegistersCumulativeAcrossServers runs two servers, each with its own
// connection pool, on one database, as two processes behind a load
// balancer would, and sends both at once readings of the same meters whose
// registers are random: each reading alone may fit what is stored, but two
// of them often cannot both be stored. Afterwards no meter's stored
// sequence goes down, every reading answered 201 is stored and every one
// answered 422 is not.
func TestRegistersCumulativeAcrossServers(t *testing.T) {
	for _, b := range dbtest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			db1 := b.OpenMigrated(t)
			st := store.New(db1)
			var publics []string
			var admin string
			for i := range 2 {
				pool := db1
				if i > 0 {
					pool = b.Open(t)
				}
				// The burst below starts with every key uncached; on a
				// Citus cluster sharing two cores, some of those first
				// lookups took over the default 2 s, and a 503 says
				// nothing of the registers this test is about.
				srv := newServer(t, testConfig(func(c *server.Config) {
					c.Ingest.BatchWait, c.Ingest.KeyLookupTimeout = time.Millisecond, 15*time.Second
				}), store.New(pool))
				pub := httptest.NewServer(checkedPublic(t, srv.PublicHandler()))
				t.Cleanup(pub.Close)
				publics = append(publics, pub.URL)
				if i == 0 {
					adm := httptest.NewServer(checkedAdmin(t, srv.AdminHandler()))
					t.Cleanup(adm.Close)
					admin = adm.URL
				}
			}
			ts := testServer{public: publics[0], admin: admin, store: st, db: db1}
			const meters, each = 4, 60
			type sent struct {
				body   reportBody
				status int
			}
			var all []*sent
			rng := rand.New(rand.NewPCG(1, 2))
			for m := range meters {
				k := newKey(t, "ed25519")
				if r := register(t, ts, fmt.Sprint("shared-", m), k); r.status != http.StatusCreated {
					t.Fatal(r.rawBody)
				}
				for range each {
					// Registers grow with time, give or take a few steps'
					// worth of noise, so that neighbours often disagree.
					step := rng.Int64N(200)
					r := crypto.Reading{
						Timestamp: now.Add(-time.Hour).UnixMilli() + step*1000,
						WhIn:      step*10 + rng.Int64N(40),
						WhOut:     step*2 + rng.Int64N(8),
					}
					all = append(all, &sent{body: signed(t, k, r)})
				}
			}
			rng.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
			var wg sync.WaitGroup
			sem := make(chan struct{}, 32)
			for i, s := range all {
				wg.Go(func() {
					sem <- struct{}{}
					defer func() { <-sem }()
					res, err := tryPostJSON(publics[i%2]+"/reportReading", s.body)
					if err != nil {
						t.Error(err)
						return
					}
					s.status = res.status
				})
			}
			wg.Wait()

			statuses := map[int]int{}
			for _, s := range all {
				statuses[s.status]++
			}
			t.Logf("answers: %v", statuses)
			if statuses[http.StatusUnprocessableEntity] == 0 || statuses[http.StatusCreated] < meters {
				t.Fatalf("answers %v: want both stored and refused readings", statuses)
			}
			type meterReading struct {
				meter int64
				crypto.Reading
			}
			stored := map[meterReading]bool{}
			meterOf := map[string]int64{}
			for _, s := range all {
				id, ok := meterOf[s.body.Base64PublicKey]
				if !ok {
					k, err := crypto.ParsePublicKey(s.body.Base64PublicKey, 2048)
					if err != nil {
						t.Fatal(err)
					}
					m, err := st.MeterByFingerprint(t.Context(), k.Fingerprint())
					if err != nil {
						t.Fatal(err)
					}
					id, meterOf[s.body.Base64PublicKey] = m.ID, m.ID
					rs, err := st.ReadingsBetween(t.Context(), id, 0, math.MaxInt64, 10*each)
					if err != nil {
						t.Fatal(err)
					}
					for i, r := range rs {
						stored[meterReading{id, r.Reading}] = true
						if i > 0 && (r.WhIn < rs[i-1].WhIn || r.WhOut < rs[i-1].WhOut) {
							t.Errorf("meter %d: register decreases from %+v to %+v", id, rs[i-1].Reading, r.Reading)
						}
					}
				}
				switch s.status {
				case http.StatusCreated, http.StatusOK:
					if !stored[meterReading{id, s.body.Reading}] {
						t.Errorf("reading %+v answered %d is not stored", s.body.Reading, s.status)
					}
				case http.StatusUnprocessableEntity:
					if stored[meterReading{id, s.body.Reading}] {
						t.Errorf("reading %+v answered 422 is stored", s.body.Reading)
					}
				case http.StatusConflict:
				default:
					t.Errorf("reading %+v: unexpected status %d", s.body.Reading, s.status)
				}
			}
		})
	}
}
