package server_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"smartmeters/buildinfo"
	"smartmeters/crypto"
	"smartmeters/db/dbtest"
	"smartmeters/server"
	"smartmeters/server/ingest"
	"smartmeters/store"
)

func TestReportReadings(t *testing.T) {
	for _, b := range dbtest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			ts := newTestServer(t, b, func(c *server.Config) { c.Ingest.MaxBatch = 10 })
			k1, k2 := newKey(t, "ed25519"), newKey(t, "ecdsa-p256")
			for i, k := range []*crypto.PrivateKey{k1, k2} {
				if r := register(t, ts, fmt.Sprint("batch-", i), k); r.status != http.StatusCreated {
					t.Fatal(r.rawBody)
				}
			}
			t0 := now.Add(-time.Hour).UnixMilli()
			first := signed(t, k1, crypto.Reading{WhIn: 10, WhOut: 0, Timestamp: t0})
			forged := signed(t, k2, crypto.Reading{WhIn: 10, WhOut: 0, Timestamp: t0})
			forged.Reading.WhIn = 11
			missing := signed(t, k2, crypto.Reading{WhIn: 1, WhOut: 1, Timestamp: t0 + 1})
			batch := []any{
				first, // stored
				signed(t, k2, crypto.Reading{WhIn: 5, WhOut: 1, Timestamp: t0}), // stored, another meter
				first, // the same reading again in the same batch
				signed(t, k1, crypto.Reading{WhIn: 11, WhOut: 0, Timestamp: t0}),                  // conflicts with the first
				signed(t, newKey(t, "ed25519"), crypto.Reading{WhIn: 1, WhOut: 1, Timestamp: t0}), // unknown key
				forged, // bad signature
				map[string]any{"base64PublicKey": missing.Base64PublicKey, "base64Signature": missing.Base64Signature,
					"reading": map[string]any{"whIn": 1, "timestamp": t0 + 1}}, // whOut missing
				signed(t, k1, crypto.Reading{WhIn: 12, WhOut: 0, Timestamp: now.Add(time.Hour).UnixMilli()}), // future
			}
			want := []struct {
				status int
				slug   string
			}{{201, "stored"}, {201, "stored"}, {200, "duplicate"}, {409, "reading-conflict"}, {403, "unknown-key"},
				{400, "invalid-signature"}, {400, "invalid-field"}, {422, "timestamp-in-future"}}
			r := postJSON(t, ts.public+"/reportReadings", batch)
			if r.status != http.StatusOK {
				t.Fatalf("status %d: %s", r.status, r.rawBody)
			}
			results, _ := r.body["results"].([]any)
			if len(results) != len(want) {
				t.Fatalf("%d results for %d readings: %s", len(results), len(want), r.rawBody)
			}
			for i, w := range want {
				res := results[i].(map[string]any)
				got := res["result"]
				if w.status >= 300 {
					got = strings.TrimPrefix(fmt.Sprint(res["type"]), "urn:smartmeters:problem:")
				}
				if res["status"] != float64(w.status) || got != w.slug {
					t.Errorf("result %d = %v, want %d %s", i, res, w.status, w.slug)
				}
			}
			if n := countReadings(t, ts.db); n != 2 {
				t.Fatalf("stored %d readings, want 2", n)
			}
			t.Run("ErrBatchTooLarge", func(t *testing.T) {
				big := make([]any, 11)
				for i := range big {
					big[i] = first
				}
				wantProblem(t, postJSON(t, ts.public+"/reportReadings", big), http.StatusRequestEntityTooLarge, "batch-too-large")
			})
			t.Run("ErrEmpty", func(t *testing.T) {
				wantProblem(t, post(t, ts.public+"/reportReadings", "application/json", `[]`), http.StatusBadRequest, "invalid-field")
			})
			t.Run("ErrNotArray", func(t *testing.T) {
				wantProblem(t, postJSON(t, ts.public+"/reportReadings", first), http.StatusBadRequest, "malformed-request")
			})
		})
	}
}

// TestGroupCommitConcurrent sends many single reports at once, twice: every
// one is stored exactly once and every resend is a duplicate, whatever
// batches the group commit formed.
func TestGroupCommitConcurrent(t *testing.T) {
	for _, cfg := range []struct {
		batchMax  int
		batchWait time.Duration
	}{
		{1000, 5 * time.Millisecond},
		{1, 0},
	} {
		for _, b := range dbtest.Backends(t) {
			t.Run(fmt.Sprintf("%s/batch-max=%d", b.Name, cfg.batchMax), func(t *testing.T) {
				ts := newTestServer(t, b, func(c *server.Config) { c.Ingest.BatchMax, c.Ingest.BatchWait = cfg.batchMax, cfg.batchWait })
				const meters, each = 8, 10
				var bodies []reportBody
				for m := range meters {
					k := newKey(t, "ed25519")
					if r := register(t, ts, fmt.Sprint("gc-", cfg.batchMax, "-", m), k); r.status != http.StatusCreated {
						t.Fatal(r.rawBody)
					}
					for i := range each {
						bodies = append(bodies, signed(t, k, crypto.Reading{WhIn: int64(each - i), Timestamp: now.Add(-time.Duration(i) * time.Second).UnixMilli()}))
					}
				}
				for _, want := range []int{http.StatusCreated, http.StatusOK} {
					var wg sync.WaitGroup
					statuses := make([]int, len(bodies))
					for i, body := range bodies {
						wg.Go(func() {
							res, err := tryPostJSON(ts.public+"/reportReading", body)
							if err != nil {
								t.Error(err)
							}
							statuses[i] = res.status
						})
					}
					wg.Wait()
					for i, s := range statuses {
						if s != want {
							t.Fatalf("report %d: status %d, want %d", i, s, want)
						}
					}
				}
				if n := countReadings(t, ts.db); n != meters*each {
					t.Fatalf("stored %d, want %d", n, meters*each)
				}
			})
		}
	}
}

// poisonedReadings refuses any batch that holds a poisoned reading, as a
// database refuses a statement when one row violates a constraint, and
// passes the others to next.
type poisonedReadings struct {
	next   ingest.ReadingStore
	poison int64 // timestamp of the reading that fails its batch
}

func (f poisonedReadings) InsertReadings(ctx context.Context, rs []store.Reading) ([]store.Outcome, error) {
	for _, r := range rs {
		if r.Timestamp == f.poison {
			return nil, errors.New("simulated constraint violation")
		}
	}
	return f.next.InsertReadings(ctx, rs)
}

// TestGroupCommitFailingBatch shows that one reading the store refuses
// fails only itself: the others in its batch are stored and acknowledged,
// and the refused one is answered 503, never 2xx.
func TestGroupCommitFailingBatch(t *testing.T) {
	conn := dbtest.SQLite(t).OpenMigrated(t)
	st := store.New(conn)
	poison := now.Add(-time.Minute).UnixMilli()
	stores := server.StoresOf(st)
	stores.Readings = poisonedReadings{st, poison}
	srv := newServerOver(t, testConfig(func(c *server.Config) {
		c.Ingest.BatchMax, c.Ingest.BatchWait, c.Ingest.Committers = 16, 200*time.Millisecond, 1
	}), stores)
	pub := httptest.NewServer(checkedPublic(t, srv.PublicHandler()))
	t.Cleanup(pub.Close)
	adm := httptest.NewServer(checkedAdmin(t, srv.AdminHandler()))
	t.Cleanup(adm.Close)
	ts := testServer{public: pub.URL, admin: adm.URL, store: st, db: conn}

	k := newKey(t, "ed25519")
	if r := register(t, ts, "poisoned", k); r.status != http.StatusCreated {
		t.Fatal(r.rawBody)
	}
	var wg sync.WaitGroup
	statuses := make(map[int64]int)
	var mu sync.Mutex
	for i := range 16 {
		ts := poison - int64(i)*1000
		body := signed(t, k, crypto.Reading{WhIn: 100 - int64(i), Timestamp: ts})
		wg.Go(func() {
			res, err := tryPostJSON(pub.URL+"/reportReading", body)
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			statuses[ts] = res.status
			mu.Unlock()
		})
	}
	wg.Wait()
	for ts, s := range statuses {
		want := http.StatusCreated
		if ts == poison {
			want = http.StatusServiceUnavailable
		}
		if s != want {
			t.Errorf("reading at %d: status %d, want %d", ts, s, want)
		}
	}
	if n := countReadings(t, ts.db); n != 15 {
		t.Fatalf("stored %d, want 15", n)
	}
}

func TestKeyCacheLearnsRegistration(t *testing.T) {
	ts := newTestServer(t, dbtest.SQLite(t), func(c *server.Config) { c.Ingest.UnknownKeyTTL = time.Hour })
	k := newKey(t, "ed25519")
	body := signed(t, k, crypto.Reading{WhIn: 1, Timestamp: now.UnixMilli()})
	wantProblem(t, postJSON(t, ts.public+"/reportReading", body), http.StatusForbidden, "unknown-key")
	// The key is now remembered as unknown; registering it must end that at once.
	if r := register(t, ts, "late", k); r.status != http.StatusCreated {
		t.Fatal(r.rawBody)
	}
	if r := postJSON(t, ts.public+"/reportReading", body); r.status != http.StatusCreated {
		t.Fatalf("after registration: %d %s", r.status, r.rawBody)
	}
}

func TestMetrics(t *testing.T) {
	ts := newTestServer(t, dbtest.SQLite(t), nil)
	k := newKey(t, "ed25519")
	if r := register(t, ts, "metered", k); r.status != http.StatusCreated {
		t.Fatal(r.rawBody)
	}
	body := signed(t, k, crypto.Reading{WhIn: 1, Timestamp: now.UnixMilli()})
	postJSON(t, ts.public+"/reportReading", body)
	postJSON(t, ts.public+"/reportReading", body)
	postJSON(t, ts.public+"/reportReading", signed(t, newKey(t, "ed25519"), body.Reading))
	req, _ := http.NewRequest(http.MethodGet, ts.admin+"/metrics", nil)
	r := do(t, req)
	for _, line := range []string{
		`smartmeters_readings_received_total{transport="http"} 3`,
		"smartmeters_readings_stored_total 1",
		"smartmeters_readings_duplicate_total 1",
		`smartmeters_readings_rejected_total{reason="unknown-key"} 1`,
		"smartmeters_commit_batch_size_count 2",
		`smartmeters_verify_seconds_count{algorithm="ed25519"} 2`,
		// The registered key is looked up once, then remembered; so is
		// the unknown one.
		"smartmeters_key_cache_misses_total 2",
		"smartmeters_key_cache_hits_total 1",
		`smartmeters_http_request_seconds_count{code="201",route="/reportReading"} 1`,
	} {
		if !strings.Contains(r.rawBody, line+"\n") {
			t.Errorf("/metrics lacks %q", line)
		}
	}
	req, _ = http.NewRequest(http.MethodGet, ts.public+"/metrics", nil)
	wantProblem(t, do(t, req), http.StatusNotFound, "not-found")
}

// TestMetricsFromStart checks what /metrics says before anything happened,
// and how requests that match no route are counted: every rejection
// reason is there at 0 (so that rate() is 0, not nothing), the build is
// named, and made-up paths count under route="unmatched", never under
// their own names.
func TestMetricsFromStart(t *testing.T) {
	ts := newTestServer(t, dbtest.SQLite(t), nil)
	r := do(t, mustRequest(t, http.MethodGet, ts.admin+"/metrics"))
	for _, k := range ingest.RejectionReasons {
		if line := fmt.Sprintf("smartmeters_readings_rejected_total{reason=%q} 0\n", k.Slug); !strings.Contains(r.rawBody, line) {
			t.Errorf("/metrics lacks %q", line)
		}
	}
	if line := fmt.Sprintf("smartmeters_build_info{goversion=%q,version=%q} 1\n", runtime.Version(), buildinfo.Version()); !strings.Contains(r.rawBody, line) {
		t.Errorf("/metrics lacks %q:\n%s", line, grepLines(r.rawBody, "build_info"))
	}

	for _, u := range []string{ts.public + "/made-up-1", ts.public + "/made-up-2", ts.admin + "/made-up-3"} {
		do(t, mustRequest(t, http.MethodGet, u))
	}
	r = do(t, mustRequest(t, http.MethodGet, ts.admin+"/metrics"))
	if line := `smartmeters_http_request_seconds_count{code="404",route="unmatched"} 3` + "\n"; !strings.Contains(r.rawBody, line) {
		t.Errorf("/metrics lacks %q:\n%s", line, grepLines(r.rawBody, "http_request_seconds_count"))
	}
	if strings.Contains(r.rawBody, "made-up") {
		t.Errorf("a made-up path is a label value:\n%s", grepLines(r.rawBody, "made-up"))
	}
}
