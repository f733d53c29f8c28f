package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"smartmeters/crypto"
	"smartmeters/db/dbtest"
	"smartmeters/server"
	"smartmeters/server/ingest"
	"smartmeters/store"
)

// wantRetryAfter fails unless res carried a Retry-After of at least one
// second.
func wantRetryAfter(t *testing.T, h http.Header) {
	t.Helper()
	if n, err := strconv.Atoi(h.Get("Retry-After")); err != nil || n < 1 {
		t.Fatalf("Retry-After %q, want a number of seconds", h.Get("Retry-After"))
	}
}

func postRaw(t *testing.T, url string, v any) (*http.Response, response) {
	t.Helper()
	res, err := http.Post(url, "application/json", jsonReader(t, v))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	r := response{status: res.StatusCode, ctype: res.Header.Get("Content-Type"), rawBody: string(raw)}
	_ = json.Unmarshal(raw, &r.body)
	return res, r
}

func TestRateLimitPerKey(t *testing.T) {
	ts := newTestServer(t, dbtest.SQLite(t), func(c *server.Config) { c.Ingest.RatePerKey = 0.5; c.Ingest.RateBurstPerKey = 3 })
	k := newKey(t, "ed25519")
	if r := register(t, ts, "chatty", k); r.status != http.StatusCreated {
		t.Fatal(r.rawBody)
	}
	at := func(i int64) reportBody {
		return signed(t, k, crypto.Reading{WhIn: i, Timestamp: now.Add(-time.Hour).UnixMilli() + i*1000})
	}
	// Forgeries with the meter's public key do not spend its allowance.
	for i := range int64(10) {
		body := at(100 + i)
		body.Reading.WhIn++
		wantProblem(t, postJSON(t, ts.public+"/reportReading", body), http.StatusBadRequest, "invalid-signature")
	}
	for i := range int64(3) {
		if r := postJSON(t, ts.public+"/reportReading", at(i)); r.status != http.StatusCreated {
			t.Fatalf("reading %d within the burst: %d %s", i, r.status, r.rawBody)
		}
	}
	res, r := postRaw(t, ts.public+"/reportReading", at(3))
	wantProblem(t, r, http.StatusTooManyRequests, "rate-limited")
	wantRetryAfter(t, res.Header)
	if n := res.Header.Get("Retry-After"); n != "2" {
		t.Errorf("Retry-After %s, want 2 (one reading at 0.5/s)", n)
	}
	// In a batch, the readings over the limit get their own 429.
	r = postJSON(t, ts.public+"/reportReadings", []reportBody{at(4), at(5)})
	if !strings.Contains(r.rawBody, `"status":429,"type":"urn:smartmeters:problem:rate-limited"`) {
		t.Fatalf("batch over the limit: %s", r.rawBody)
	}
	if n := countReadings(t, ts.db); n != 3 {
		t.Fatalf("stored %d, want 3", n)
	}
	// Another meter has its own allowance.
	k2 := newKey(t, "ed25519")
	register(t, ts, "quiet", k2)
	if r := postJSON(t, ts.public+"/reportReading", signed(t, k2, crypto.Reading{WhIn: 1, Timestamp: now.UnixMilli()})); r.status != http.StatusCreated {
		t.Fatalf("another meter: %d %s", r.status, r.rawBody)
	}
}

// TestRateLimitCountsStored replays a stored reading, as anyone can who
// has seen an export: the duplicates, and a conflicting reading, cost the
// meter nothing, and its next readings are stored as its allowance says.
func TestRateLimitCountsStored(t *testing.T) {
	ts := newTestServer(t, dbtest.SQLite(t), func(c *server.Config) { c.Ingest.RatePerKey, c.Ingest.RateBurstPerKey = 0.5, 3 })
	k := newKey(t, "ed25519")
	if r := register(t, ts, "replayed", k); r.status != http.StatusCreated {
		t.Fatal(r.rawBody)
	}
	at := func(i, wh int64) reportBody {
		return signed(t, k, crypto.Reading{WhIn: wh, Timestamp: now.Add(-time.Hour).UnixMilli() + i*1000})
	}
	if r := postJSON(t, ts.public+"/reportReading", at(0, 0)); r.status != http.StatusCreated {
		t.Fatalf("first reading: %d %s", r.status, r.rawBody)
	}
	for range 10 {
		if r := postJSON(t, ts.public+"/reportReading", at(0, 0)); r.status != http.StatusOK {
			t.Fatalf("replay: %d %s, want 200 duplicate", r.status, r.rawBody)
		}
	}
	wantProblem(t, postJSON(t, ts.public+"/reportReading", at(0, 5)), http.StatusConflict, "reading-conflict")
	if r := postJSON(t, ts.public+"/reportReadings", []reportBody{at(0, 0), at(0, 0)}); !strings.Contains(r.rawBody, `"status":200`) ||
		strings.Contains(r.rawBody, `"status":429`) {
		t.Fatalf("replayed batch: %s", r.rawBody)
	}
	for i := range int64(2) {
		if r := postJSON(t, ts.public+"/reportReading", at(1+i, 1+i)); r.status != http.StatusCreated {
			t.Fatalf("reading %d within the allowance after the replays: %d %s", 1+i, r.status, r.rawBody)
		}
	}
	wantProblem(t, postJSON(t, ts.public+"/reportReading", at(3, 3)), http.StatusTooManyRequests, "rate-limited")
}

func TestRateLimitPerAddress(t *testing.T) {
	ts := newTestServer(t, dbtest.SQLite(t), func(c *server.Config) { c.RatePerAddress = 1; c.RateBurstPerAddress = 5 })
	for i := range 5 {
		r := post(t, ts.public+"/reportReading", "application/json", `{}`)
		if r.status != http.StatusBadRequest {
			t.Fatalf("request %d within the burst: %d %s", i, r.status, r.rawBody)
		}
	}
	res, r := postRaw(t, ts.public+"/reportReading", map[string]any{})
	wantProblem(t, r, http.StatusTooManyRequests, "rate-limited")
	wantRetryAfter(t, res.Header)
	// Probes are never limited.
	for _, path := range []string{"/healthz", "/readyz"} {
		req, _ := http.NewRequest(http.MethodGet, ts.public+path, nil)
		if r := do(t, req); r.status != http.StatusOK {
			t.Errorf("%s while limited: %d", path, r.status)
		}
	}
}

// blockingReadings holds every InsertReadings until release is closed,
// and tells entered about each.
type blockingReadings struct {
	next    ingest.ReadingStore
	entered chan struct{}
	release chan struct{}
}

func (b blockingReadings) InsertReadings(ctx context.Context, rs []store.Reading) ([]store.Outcome, error) {
	b.entered <- struct{}{}
	<-b.release
	return b.next.InsertReadings(ctx, rs)
}

// TestMaxConcurrentRequests fills the cap with requests stuck on a slow
// store: the next request is answered 503 overloaded at once, and the
// stuck ones still complete.
func TestMaxConcurrentRequests(t *testing.T) {
	conn := dbtest.SQLite(t).OpenMigrated(t)
	st := store.New(conn)
	bs := blockingReadings{st, make(chan struct{}, 8), make(chan struct{})}
	stores := server.StoresOf(st)
	stores.Readings = bs
	srv := newServerOver(t, testConfig(func(c *server.Config) {
		c.MaxConcurrentRequests, c.Ingest.BatchWait, c.Ingest.Committers = 2, 0, 2
	}), stores)
	pub := httptest.NewServer(checkedPublic(t, srv.PublicHandler()))
	t.Cleanup(pub.Close)
	adm := httptest.NewServer(checkedAdmin(t, srv.AdminHandler()))
	t.Cleanup(adm.Close)
	ts := testServer{public: pub.URL, admin: adm.URL, store: st, db: conn}
	var wg sync.WaitGroup
	statuses := make([]int, 2)
	for i := range 2 {
		k := newKey(t, "ed25519")
		register(t, ts, fmt.Sprint("slow-", i), k)
		body := signed(t, k, crypto.Reading{WhIn: 1, Timestamp: now.UnixMilli()})
		wg.Go(func() {
			res, err := tryPostJSON(pub.URL+"/reportReading", body)
			if err != nil {
				t.Error(err)
			}
			statuses[i] = res.status
		})
	}
	for range 2 {
		<-bs.entered
	}
	start := time.Now()
	res, r := postRaw(t, pub.URL+"/reportReading", map[string]any{})
	wantProblem(t, r, http.StatusServiceUnavailable, "overloaded")
	wantRetryAfter(t, res.Header)
	if took := time.Since(start); took > time.Second {
		t.Errorf("overloaded answer took %s; want it at once", took)
	}
	close(bs.release)
	wg.Wait()
	for i, s := range statuses {
		if s != http.StatusCreated {
			t.Errorf("held request %d: %d, want 201", i, s)
		}
	}
}

// TestSlowClientsCutOff opens raw connections that send a request a byte
// at a time: the server hangs up on them once the read-header or read
// timeout is spent, however long they would go on.
func TestSlowClientsCutOff(t *testing.T) {
	st := store.New(dbtest.SQLite(t).OpenMigrated(t))
	srv := newServer(t, testConfig(func(c *server.Config) { c.ReadHeaderTimeout, c.ReadTimeout = 300*time.Millisecond, time.Second }), st)
	pubAddr, _ := serveForTest(t, srv)

	body := `{"base64PublicKey":"x","base64Signature":"y","reading":{"whIn":1,"whOut":1,"timestamp":1}}`
	head := "POST /reportReading HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n"
	for _, tt := range []struct {
		name       string
		fast, slow string // sent at once, then a byte every 100 ms
		within     time.Duration
	}{
		{"Headers", "", head + body, 1500 * time.Millisecond},
		{"Body", head, body, 2500 * time.Millisecond},
	} {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", pubAddr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			start := time.Now()
			go func() {
				if _, err := io.WriteString(conn, tt.fast); err != nil {
					return
				}
				for i := range len(tt.slow) {
					if _, err := io.WriteString(conn, tt.slow[i:i+1]); err != nil {
						return
					}
					time.Sleep(100 * time.Millisecond)
				}
			}()
			conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			got, err := io.ReadAll(conn)
			took := time.Since(start)
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatalf("still connected after %s", took)
			}
			if took > tt.within {
				t.Fatalf("cut off after %s, want within %s", took, tt.within)
			}
			if strings.HasPrefix(string(got), "HTTP/1.1 2") {
				t.Fatalf("a slow request was served: %q", got)
			}
			t.Logf("cut off after %s (%d bytes of answer)", took.Round(time.Millisecond), len(got))
		})
	}
}

// TestFloodCostsNothing sends the same unknown key, and garbage, many
// times: the store is asked once per distinct key (the rogue one, and the
// bytes of the garbage report that decode as base64), never again while it
// is remembered as unknown, and no signature is ever verified.
func TestFloodCostsNothing(t *testing.T) {
	ts := newTestServer(t, dbtest.SQLite(t), func(c *server.Config) { c.Ingest.UnknownKeyTTL = time.Minute })
	rogue := signed(t, newKey(t, "ed25519"), crypto.Reading{WhIn: 1, Timestamp: now.UnixMilli()})
	for range 50 {
		wantProblem(t, postJSON(t, ts.public+"/reportReading", rogue), http.StatusForbidden, "unknown-key")
	}
	batch := make([]reportBody, 100)
	for i := range batch {
		batch[i] = rogue
	}
	postJSON(t, ts.public+"/reportReadings", batch)
	for _, garbage := range []string{`{"base64PublicKey":`, `[1,2,3]`, `{"base64PublicKey":"AAAA","base64Signature":"AAAA","reading":{"whIn":1,"whOut":1,"timestamp":1}}`, strings.Repeat("x", 70<<10)} {
		for range 20 {
			post(t, ts.public+"/reportReading", "application/json", garbage)
		}
	}
	req, _ := http.NewRequest(http.MethodGet, ts.admin+"/metrics", nil)
	metrics := do(t, req).rawBody
	if !strings.Contains(metrics, "smartmeters_key_cache_misses_total 2\n") {
		t.Errorf("key cache misses: want exactly 2 store lookups; metrics:\n%s", grepLines(metrics, "key_cache"))
	}
	if strings.Contains(metrics, "smartmeters_verify_seconds_count") {
		t.Errorf("signatures were verified: %s", grepLines(metrics, "verify_seconds_count"))
	}
}

func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
