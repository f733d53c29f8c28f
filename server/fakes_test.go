package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"smartmeters/crypto"
	"smartmeters/db/dbtest"
	"smartmeters/server"
	"smartmeters/store"
)

// errDown is what the failing fakes answer by default: a store that
// cannot be reached (store.Unavailable), which is answered 503. errFault
// is a store that answers with something the code did not expect, which
// is answered 500.
var (
	errDown  error = &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	errFault       = errors.New(`sql: Scan error on column index 0, name "id": converting NULL to int64 is unsupported`)
)

// The fakes below stand for a store that fails, each as the narrow
// interface its consumer declares, so that every error path of the
// handlers is tested without a database.

type downKeys struct{}

func (downKeys) MeterByFingerprint(context.Context, crypto.Fingerprint) (store.Meter, error) {
	return store.Meter{}, errDown
}

type downReadings struct{}

func (downReadings) InsertReadings(context.Context, []store.Reading) ([]store.Outcome, error) {
	return nil, errDown
}

type downHealth struct{}

func (downHealth) Ping(context.Context) error { return errDown }

type downRegistry struct{ err error }

func (d downRegistry) CreateMeter(context.Context, *store.Meter) error { return d.err }
func (d downRegistry) MeterByID(context.Context, int64) (store.Meter, error) {
	return store.Meter{}, d.err
}
func (d downRegistry) RevokeKey(context.Context, int64, string, time.Time) (store.KeyEvent, error) {
	return store.KeyEvent{}, d.err
}
func (d downRegistry) ReplaceKey(context.Context, int64, store.NewKey, string, time.Time) (store.KeyEvent, error) {
	return store.KeyEvent{}, d.err
}
func (d downRegistry) MeterKeys(context.Context, int64) ([]store.MeterKey, error) { return nil, d.err }
func (d downRegistry) KeyEvents(context.Context, int64) ([]store.KeyEvent, error) { return nil, d.err }

type downReporting struct{ err error }

func (d downReporting) ListMeters(context.Context, store.MeterFilter) ([]store.MeterSummary, error) {
	return nil, d.err
}
func (d downReporting) MeterSummaryByID(context.Context, int64) (store.MeterSummary, error) {
	return store.MeterSummary{}, d.err
}
func (d downReporting) MeterKeys(context.Context, int64) ([]store.MeterKey, error) { return nil, d.err }
func (d downReporting) ReadingsBetween(context.Context, int64, int64, int64, int) ([]store.Reading, error) {
	return nil, d.err
}
func (d downReporting) NewestReadingsBetween(context.Context, int64, int64, int64, int) ([]store.Reading, error) {
	return nil, d.err
}
func (d downReporting) RegisterSeries(context.Context, int64, int64, int64) ([]crypto.Reading, error) {
	return nil, d.err
}
func (d downReporting) CountMeterStates(context.Context, time.Time) (store.MeterCounts, error) {
	return store.MeterCounts{}, d.err
}
func (d downReporting) EachRegisterBetween(context.Context, int64, int64, func(int64, crypto.Reading) error) error {
	return d.err
}
func (d downReporting) RegistersAround(context.Context, int64, []int64) ([]crypto.Reading, error) {
	return nil, d.err
}
func (d downReporting) FleetEnergy(context.Context, []int64) ([][2]int64, error) { return nil, d.err }

// TestStoreFailures serves over stores that fail and checks each answer:
// a reading is 503 unavailable with Retry-After (nothing was stored, so a
// retry is safe), alone or in a batch; /readyz is 503 and /healthz 200;
// the admin API answers a store that cannot be reached 503 with
// Retry-After, as reports are, and a failure it did not expect 500 with a
// body that says only "internal error".
func TestStoreFailures(t *testing.T) {
	st := store.New(dbtest.SQLite(t).OpenMigrated(t))
	k := newKey(t, "ed25519")
	m := store.Meter{Username: "m", PublicKey: k.Public().DER(), Fingerprint: k.Public().Fingerprint(), Algorithm: k.Public().Algorithm(), RegisteredAt: now}
	if err := st.CreateMeter(t.Context(), &m); err != nil {
		t.Fatal(err)
	}
	reading := signed(t, k, crypto.Reading{WhIn: 1, WhOut: 2, Timestamp: now.Add(-time.Minute).UnixMilli()})

	for _, tt := range []struct {
		name  string
		fake  func(*server.Stores)
		check func(t *testing.T, pub, adm string)
	}{
		{"KeyLookup", func(s *server.Stores) { s.Keys = downKeys{} }, func(t *testing.T, pub, _ string) {
			r := postJSON(t, pub+"/reportReading", reading)
			wantProblem(t, r, http.StatusServiceUnavailable, "unavailable")
			wantRetryAfterSet(t, pub, reading)
		}},
		{"Commit", func(s *server.Stores) { s.Readings = downReadings{} }, func(t *testing.T, pub, _ string) {
			wantProblem(t, postJSON(t, pub+"/reportReading", reading), http.StatusServiceUnavailable, "unavailable")
			wantRetryAfterSet(t, pub, reading)
			res, err := http.Post(pub+"/reportReadings", "application/json", jsonReader(t, []reportBody{reading}))
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != http.StatusOK || res.Header.Get("Retry-After") == "" {
				t.Fatalf("batch with a failed commit: %d, Retry-After %q; want 200 with Retry-After", res.StatusCode, res.Header.Get("Retry-After"))
			}
		}},
		{"Readyz", func(s *server.Stores) { s.Health = downHealth{} }, func(t *testing.T, pub, adm string) {
			for _, base := range []string{pub, adm} {
				wantProblem(t, do(t, mustRequest(t, http.MethodGet, base+"/readyz")), http.StatusServiceUnavailable, "unavailable")
				if r := do(t, mustRequest(t, http.MethodGet, base+"/healthz")); r.status != http.StatusOK {
					t.Fatalf("/healthz while the store is down: %d", r.status)
				}
			}
		}},
		{"RegistryDown", func(s *server.Stores) { s.Registry = downRegistry{errDown} }, func(t *testing.T, _, adm string) {
			for _, r := range registryCalls(t, adm) {
				wantUnavailable(t, r)
			}
		}},
		{"RegistryFault", func(s *server.Stores) { s.Registry = downRegistry{errFault} }, func(t *testing.T, _, adm string) {
			for _, r := range registryCalls(t, adm) {
				wantInternal(t, r)
			}
		}},
		{"ReportingDown", func(s *server.Stores) { s.Reporting = downReporting{errDown} }, func(t *testing.T, _, adm string) {
			for _, path := range reportingPaths {
				wantUnavailable(t, do(t, mustRequest(t, http.MethodGet, adm+path)))
			}
		}},
		{"ReportingFault", func(s *server.Stores) { s.Reporting = downReporting{errFault} }, func(t *testing.T, _, adm string) {
			for _, path := range reportingPaths {
				wantInternal(t, do(t, mustRequest(t, http.MethodGet, adm+path)))
			}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			stores := server.StoresOf(st)
			tt.fake(&stores)
			srv := newServerOver(t, testConfig(nil), stores)
			pub := httptest.NewServer(checkedPublic(t, srv.PublicHandler()))
			t.Cleanup(pub.Close)
			adm := httptest.NewServer(checkedAdmin(t, srv.AdminHandler()))
			t.Cleanup(adm.Close)
			tt.check(t, pub.URL, adm.URL)
		})
	}
}

// reportingPaths are admin routes that read through the reporting store.
var reportingPaths = []string{"/meters", "/meters/1", "/meters/1/readings", "/meters/1/consumption", "/fleet", "/meters/1/export.csv"}

// registryCalls makes a call of each admin route that goes through the
// registry store and returns the answers.
func registryCalls(t *testing.T, adm string) []response {
	t.Helper()
	k := newKey(t, "ed25519")
	return []response{
		postJSON(t, adm+"/register", map[string]string{"username": "other", "base64PublicKey": k.Public().Base64()}),
		postJSON(t, adm+"/meters/1/revoke", map[string]string{"reason": "stolen"}),
		postJSON(t, adm+"/meters/1/key", map[string]string{"reason": "swap", "base64PublicKey": k.Public().Base64()}),
		do(t, mustRequest(t, http.MethodGet, adm+"/meters/1/keys")),
	}
}

// wantUnavailable fails unless r is a 503 unavailable with Retry-After.
func wantUnavailable(t *testing.T, r response) {
	t.Helper()
	wantProblem(t, r, http.StatusServiceUnavailable, "unavailable")
	if r.header.Get("Retry-After") == "" {
		t.Fatal("503 without Retry-After")
	}
}

// wantRetryAfterSet fails unless a report of body is answered with a
// Retry-After header.
func wantRetryAfterSet(t *testing.T, pub string, body reportBody) {
	t.Helper()
	res, err := http.Post(pub+"/reportReading", "application/json", jsonReader(t, body))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.Header.Get("Retry-After") == "" {
		t.Fatalf("%d without Retry-After", res.StatusCode)
	}
}

// wantInternal fails unless r is a 500 that tells nothing of the cause.
func wantInternal(t *testing.T, r response) {
	t.Helper()
	wantProblem(t, r, http.StatusInternalServerError, "internal")
	if r.body["detail"] != "internal error" {
		t.Fatalf("500 detail %q, want only \"internal error\"", r.body["detail"])
	}
}

// halfCommits is a store whose first commit of several readings stores
// only the first half and fails for the rest, as a cluster does when one
// shard's worker is down: those outcomes are final, the rest undecided.
type halfCommits struct {
	*store.Store
	failed bool
}

func (h *halfCommits) InsertReadings(ctx context.Context, rs []store.Reading) ([]store.Outcome, error) {
	if h.failed || len(rs) < 2 {
		return h.Store.InsertReadings(ctx, rs)
	}
	h.failed = true
	done, err := h.Store.InsertReadings(ctx, rs[:len(rs)/2])
	if err != nil {
		return nil, err
	}
	out := make([]store.Outcome, len(rs))
	copy(out, done)
	return out, errDown
}

// TestPartialCommit sends a batch whose commit stores part of it and
// fails for the rest: the readings already stored are answered stored,
// not retried into duplicates, and the rest are retried and stored.
func TestPartialCommit(t *testing.T) {
	d := dbtest.SQLite(t).OpenMigrated(t)
	st := store.New(d)
	k := newKey(t, "ed25519")
	m := store.Meter{Username: "m", PublicKey: k.Public().DER(), Fingerprint: k.Public().Fingerprint(), Algorithm: k.Public().Algorithm(), RegisteredAt: now}
	if err := st.CreateMeter(t.Context(), &m); err != nil {
		t.Fatal(err)
	}
	batch := make([]reportBody, 6)
	for i := range batch {
		batch[i] = signed(t, k, crypto.Reading{WhIn: int64(i), WhOut: 0, Timestamp: now.Add(time.Duration(i-10) * time.Minute).UnixMilli()})
	}
	stores := server.StoresOf(st)
	stores.Readings = &halfCommits{Store: st}
	srv := newServerOver(t, testConfig(nil), stores)
	pub := httptest.NewServer(checkedPublic(t, srv.PublicHandler()))
	t.Cleanup(pub.Close)

	r := postJSON(t, pub.URL+"/reportReadings", batch)
	if r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.rawBody)
	}
	results, _ := r.body["results"].([]any)
	if len(results) != len(batch) {
		t.Fatalf("%d results for %d readings: %s", len(results), len(batch), r.rawBody)
	}
	for i, res := range results {
		if res := res.(map[string]any); res["status"] != float64(http.StatusCreated) || res["result"] != "stored" {
			t.Errorf("reading %d: %v, want 201 stored", i, res)
		}
	}
	if n := countReadings(t, d); n != int64(len(batch)) {
		t.Fatalf("stored %d readings, want %d", n, len(batch))
	}
}

// heldCommits is a store whose commits wait, once entered is closed, until
// release is closed.
type heldCommits struct {
	*store.Store
	entered, release chan struct{}
}

func (h *heldCommits) InsertReadings(ctx context.Context, rs []store.Reading) ([]store.Outcome, error) {
	close(h.entered)
	<-h.release
	return h.Store.InsertReadings(ctx, rs)
}

// TestClientGoneAfterQueued sends a reading and hangs up while its commit
// is in progress: the reading is stored, and counted and logged as stored,
// not as refused or as a store failure.
func TestClientGoneAfterQueued(t *testing.T) {
	d := dbtest.SQLite(t).OpenMigrated(t)
	st := store.New(d)
	k := newKey(t, "ed25519")
	m := store.Meter{Username: "m", PublicKey: k.Public().DER(), Fingerprint: k.Public().Fingerprint(), Algorithm: k.Public().Algorithm(), RegisteredAt: now}
	if err := st.CreateMeter(t.Context(), &m); err != nil {
		t.Fatal(err)
	}
	held := &heldCommits{Store: st, entered: make(chan struct{}), release: make(chan struct{})}
	stores := server.StoresOf(st)
	stores.Readings = held
	var log syncBuffer
	srv, err := server.New(testConfig(nil), stores, slog.New(slog.NewTextHandler(&log, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	requests := make(chan context.Context, 1)
	handled := make(chan struct{})
	pub := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests <- r.Context()
		srv.PublicHandler().ServeHTTP(w, r)
		close(handled)
	}))
	t.Cleanup(pub.Close)
	adm := httptest.NewServer(checkedAdmin(t, srv.AdminHandler()))
	t.Cleanup(adm.Close)

	body, err := json.Marshal(signed(t, k, crypto.Reading{WhIn: 1, Timestamp: now.UnixMilli()}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, hangUp := context.WithCancel(t.Context())
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, pub.URL+"/reportReading", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	sent := make(chan error, 1)
	go func() {
		res, err := http.DefaultClient.Do(req)
		if err == nil {
			res.Body.Close()
		}
		sent <- err
	}()
	serverSide := <-requests
	<-held.entered
	hangUp()
	<-serverSide.Done() // the server has seen the client go
	close(held.release)
	if err := <-sent; !errors.Is(err, context.Canceled) {
		t.Fatalf("the client's request ended with %v, want it cancelled", err)
	}
	<-handled

	if n := countReadings(t, d); n != 1 {
		t.Fatalf("%d readings stored, want 1", n)
	}
	r := do(t, mustRequest(t, http.MethodGet, adm.URL+"/metrics"))
	if !strings.Contains(r.rawBody, "smartmeters_readings_stored_total 1\n") {
		t.Errorf("the reading is not counted as stored:\n%s", grepLines(r.rawBody, "smartmeters_readings_"))
	}
	if strings.Contains(r.rawBody, `smartmeters_readings_rejected_total{reason="unavailable"} 1`) {
		t.Errorf("the reading is counted as rejected:\n%s", grepLines(r.rawBody, "smartmeters_readings_"))
	}
	if logged := log.String(); strings.Contains(logged, "level=ERROR") {
		t.Errorf("the log has an error:\n%s", logged)
	}
}
