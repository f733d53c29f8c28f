package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"smartmeters/crypto"
	"smartmeters/db/dbtest"
	"smartmeters/server"
	"smartmeters/store"
)

// tcpProxy forwards connections to a target address until it is cut: then
// it closes every connection it carries and closes new ones at once, as a
// database server that is down or restarting does. Stalled, it keeps every
// connection open and passes nothing on.
type tcpProxy struct {
	ln      net.Listener
	target  string
	mu      sync.Mutex
	down    bool
	conns   map[net.Conn]struct{}
	stalled chan struct{} // while not nil, data is read but not passed on until it is closed
}

func newTCPProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	t.Cleanup(func() { ln.Close(); p.resume(); p.cut() })
	go p.serve()
	return p
}

func (p *tcpProxy) addr() string { return p.ln.Addr().String() }

func (p *tcpProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.forward(c)
	}
}

func (p *tcpProxy) forward(c net.Conn) {
	p.mu.Lock()
	if p.down {
		p.mu.Unlock()
		c.Close()
		return
	}
	p.mu.Unlock()
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	if p.down {
		p.mu.Unlock()
		c.Close()
		up.Close()
		return
	}
	p.conns[c], p.conns[up] = struct{}{}, struct{}{}
	p.mu.Unlock()
	go func() { p.pass(up, c); up.Close(); c.Close() }()
	p.pass(c, up)
	c.Close()
	up.Close()
}

// pass copies src to dst, holding each piece read while the proxy is
// stalled.
func (p *tcpProxy) pass(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			stalled := p.stalled
			p.mu.Unlock()
			if stalled != nil {
				<-stalled
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// stall makes the database stop answering without closing anything, as a
// frozen server or a network that drops packets does: what is sent is
// taken and held until resume.
func (p *tcpProxy) stall() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stalled == nil {
		p.stalled = make(chan struct{})
	}
}

func (p *tcpProxy) resume() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stalled != nil {
		close(p.stalled)
		p.stalled = nil
	}
}

// cut takes the database away: every connection is closed and new ones
// are refused until restore.
func (p *tcpProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
}

func (p *tcpProxy) restore() {
	p.mu.Lock()
	p.down = false
	p.mu.Unlock()
}

// serveThroughProxy serves a fresh PostgreSQL database through a tcpProxy,
// with the given commit and key lookup timeouts, and returns the server,
// whose store and db reach the database directly, and the proxy. It skips
// the test without PostgreSQL.
func serveThroughProxy(t *testing.T, commitTimeout, lookupTimeout time.Duration) (testServer, *tcpProxy) {
	t.Helper()
	pg, ok := dbtest.Postgres(t)
	if !ok {
		t.Skip("needs PostgreSQL")
	}
	directDB := pg.OpenMigrated(t)
	u, err := url.Parse(pg.URL)
	if err != nil {
		t.Fatal(err)
	}
	px := newTCPProxy(t, u.Host)
	u.Host = px.addr()
	proxied := dbtest.Backend{Name: pg.Name, URL: u.String()}.Open(t)
	srv := newServer(t, testConfig(func(c *server.Config) {
		c.Ingest.CommitTimeout, c.Ingest.KeyLookupTimeout = commitTimeout, lookupTimeout
	}), store.New(proxied))
	pub := httptest.NewServer(checkedPublic(t, srv.PublicHandler()))
	t.Cleanup(pub.Close)
	adm := httptest.NewServer(checkedAdmin(t, srv.AdminHandler()))
	t.Cleanup(adm.Close)
	return testServer{public: pub.URL, admin: adm.URL, store: store.New(directDB), db: directDB}, px
}

// TestStoreOutage takes PostgreSQL away from a server under load and gives
// it back: while it is away every report is answered 503 with Retry-After
// within a bounded time, /readyz says 503 and /healthz 200; once it is
// back the server recovers by itself; and every reading answered 2xx, at
// any time, is stored.
func TestStoreOutage(t *testing.T) {
	const commitTimeout = 2 * time.Second
	bound := commitTimeout + 1500*time.Millisecond // the longest any answer may take
	ts, px := serveThroughProxy(t, commitTimeout, time.Second)
	direct := ts.store

	const meters = 8
	keys := make([]*crypto.PrivateKey, meters)
	for m := range keys {
		keys[m] = newKey(t, "ed25519")
		if r := register(t, ts, fmt.Sprint("outage-", m), keys[m]); r.status != http.StatusCreated {
			t.Fatal(r.rawBody)
		}
	}

	// Load: each meter reports a fresh reading every 20 ms, once each,
	// whatever the answer, and remembers what was acknowledged.
	type answer struct {
		reading crypto.Reading
		meter   int
		status  int
		took    time.Duration
	}
	var (
		mu      sync.Mutex
		answers []answer
		wg      sync.WaitGroup
	)
	ctx, stop := context.WithCancel(t.Context())
	for m := range meters {
		wg.Go(func() {
			for i := int64(0); ctx.Err() == nil; i++ {
				r := crypto.Reading{WhIn: 1000 + i, WhOut: i, Timestamp: now.Add(-time.Hour).UnixMilli() + i*1000}
				start := time.Now()
				body, err := trySigned(keys[m], r)
				if err != nil {
					t.Error(err)
					return
				}
				res, err := tryPostJSON(ts.public+"/reportReading", body)
				if err != nil {
					t.Error(err)
					return
				}
				if res.status == http.StatusServiceUnavailable && res.ctype != "application/problem+json" {
					t.Errorf("503 without a problem body: %s", res.rawBody)
				}
				mu.Lock()
				answers = append(answers, answer{r, m, res.status, time.Since(start)})
				mu.Unlock()
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
	get := func(url string) *http.Response {
		t.Helper()
		res, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res
	}

	m0, err := direct.MeterByFingerprint(t.Context(), keys[0].Public().Fingerprint())
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	px.cut()
	t.Log("database cut")
	time.Sleep(300 * time.Millisecond)
	t.Run("DownAnswers503", func(t *testing.T) {
		start := time.Now()
		r := postJSON(t, ts.public+"/reportReading", signed(t, keys[0], crypto.Reading{WhIn: 1, Timestamp: now.Add(-2 * time.Hour).UnixMilli()}))
		wantProblem(t, r, http.StatusServiceUnavailable, "unavailable")
		if took := time.Since(start); took > bound {
			t.Errorf("answered after %s, want at most %s", took, bound)
		}
		// A key the cache does not hold cannot be looked up: 503, not 403.
		start = time.Now()
		r = postJSON(t, ts.public+"/reportReading", signed(t, newKey(t, "ed25519"), crypto.Reading{WhIn: 1, Timestamp: 1}))
		wantProblem(t, r, http.StatusServiceUnavailable, "unavailable")
		if took := time.Since(start); took > bound {
			t.Errorf("uncached key answered after %s, want at most %s", took, bound)
		}
	})
	t.Run("DownNotReady", func(t *testing.T) {
		if res := get(ts.public + "/readyz"); res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("Retry-After") == "" {
			t.Errorf("/readyz: %d, Retry-After %q; want 503 with Retry-After", res.StatusCode, res.Header.Get("Retry-After"))
		}
		for _, url := range []string{ts.public + "/healthz", ts.admin + "/healthz"} {
			if res := get(url); res.StatusCode != http.StatusOK {
				t.Errorf("%s: %d, want 200", url, res.StatusCode)
			}
		}
	})
	t.Run("DownAdminAnswers503", func(t *testing.T) {
		// The admin API goes to the same database: 503 with Retry-After
		// while it is away, as reports are, never 500.
		for _, path := range []string{"/meters", fmt.Sprintf("/meters/%d", m0.ID), fmt.Sprintf("/meters/%d/readings", m0.ID),
			fmt.Sprintf("/meters/%d/consumption", m0.ID), fmt.Sprintf("/meters/%d/keys", m0.ID), "/fleet"} {
			r := do(t, mustRequest(t, http.MethodGet, ts.admin+path))
			wantProblem(t, r, http.StatusServiceUnavailable, "unavailable")
			if r.header.Get("Retry-After") == "" {
				t.Errorf("%s: 503 without Retry-After", path)
			}
		}
		r := postJSON(t, ts.admin+"/register", map[string]string{"username": "outage-new", "base64PublicKey": newKey(t, "ed25519").Public().Base64()})
		wantProblem(t, r, http.StatusServiceUnavailable, "unavailable")
	})
	time.Sleep(time.Second)
	px.restore()
	t.Log("database restored")
	t.Run("Recovers", func(t *testing.T) {
		deadline := time.Now().Add(10 * time.Second)
		for get(ts.public+"/readyz").StatusCode != http.StatusOK {
			if time.Now().After(deadline) {
				t.Fatal("/readyz still not 200 10 s after the database came back")
			}
			time.Sleep(50 * time.Millisecond)
		}
		r := postJSON(t, ts.public+"/reportReading", signed(t, keys[0], crypto.Reading{WhIn: 0, Timestamp: now.Add(-3 * time.Hour).UnixMilli()}))
		if r.status != http.StatusCreated {
			t.Fatalf("after recovery: %d %s", r.status, r.rawBody)
		}
	})
	time.Sleep(300 * time.Millisecond)
	stop()
	wg.Wait()

	// Every acknowledged reading is stored; only 2xx and 503 were answered.
	counts := map[int]int{}
	ids := make([]int64, meters)
	for m, k := range keys {
		mt, err := direct.MeterByFingerprint(t.Context(), k.Public().Fingerprint())
		if err != nil {
			t.Fatal(err)
		}
		ids[m] = mt.ID
	}
	stored := map[int]map[crypto.Reading]bool{}
	for m := range meters {
		rs, err := direct.ReadingsBetween(t.Context(), ids[m], 0, math.MaxInt64, 100000)
		if err != nil {
			t.Fatal(err)
		}
		stored[m] = map[crypto.Reading]bool{}
		for _, r := range rs {
			stored[m][r.Reading] = true
		}
	}
	var slowest time.Duration
	for _, a := range answers {
		counts[a.status]++
		slowest = max(slowest, a.took)
		switch a.status {
		case http.StatusCreated, http.StatusOK:
			if !stored[a.meter][a.reading] {
				t.Errorf("meter %d: reading %+v was answered %d but is not stored", a.meter, a.reading, a.status)
			}
		case http.StatusServiceUnavailable:
		default:
			t.Errorf("meter %d: reading %+v answered %d", a.meter, a.reading, a.status)
		}
	}
	t.Logf("answers under load: %v; slowest %s", counts, slowest)
	if counts[http.StatusCreated] == 0 || counts[http.StatusServiceUnavailable] == 0 {
		t.Errorf("answers %v: want both 201 (before and after) and 503 (during)", counts)
	}
	if slowest > bound {
		t.Errorf("slowest answer took %s, want at most %s", slowest, bound)
	}
}

// TestStoreStall makes PostgreSQL stop answering without closing a
// connection, as a frozen server or a network that drops packets does:
// lib/pq then waits for the server whatever the context, and its cancel
// request is not answered either. A report of an uncached key and /readyz
// must still be answered 503 within their bounds, not when the stall ends;
// and the server recovers by itself when it does.
func TestStoreStall(t *testing.T) {
	const lookupTimeout = time.Second
	ts, px := serveThroughProxy(t, 2*time.Second, lookupTimeout)
	k := newKey(t, "ed25519")
	if r := register(t, ts, "stall", k); r.status != http.StatusCreated {
		t.Fatal(r.rawBody)
	}

	// The stall lasts far longer than any bound below: an answer that
	// waits for the database comes after it, not within the bound.
	const stallFor = 15 * time.Second
	px.stall()
	stallEnds := time.AfterFunc(stallFor, px.resume)
	t.Cleanup(func() { stallEnds.Stop(); px.resume() })
	within := func(t *testing.T, bound time.Duration, f func() response) response {
		t.Helper()
		start := time.Now()
		r := f()
		if took := time.Since(start); took > bound {
			t.Errorf("answered after %s, want within %s (the database stalls for %s)", took.Round(time.Millisecond), bound, stallFor)
		}
		return r
	}
	t.Run("UncachedKey", func(t *testing.T) {
		r := within(t, lookupTimeout+3*time.Second, func() response {
			return postJSON(t, ts.public+"/reportReading", signed(t, newKey(t, "ed25519"), crypto.Reading{WhIn: 1, Timestamp: now.Add(-time.Hour).UnixMilli()}))
		})
		wantProblem(t, r, http.StatusServiceUnavailable, "unavailable")
	})
	t.Run("Readyz", func(t *testing.T) {
		for _, base := range []string{ts.public, ts.admin} {
			r := within(t, 2*time.Second+3*time.Second, func() response { return do(t, mustRequest(t, http.MethodGet, base+"/readyz")) })
			wantProblem(t, r, http.StatusServiceUnavailable, "unavailable")
		}
	})
	t.Run("CachedKeyCommit", func(t *testing.T) {
		r := within(t, 2*time.Second+3*time.Second, func() response {
			return postJSON(t, ts.public+"/reportReading", signed(t, k, crypto.Reading{WhIn: 1, Timestamp: now.Add(-time.Hour).UnixMilli()}))
		})
		wantProblem(t, r, http.StatusServiceUnavailable, "unavailable")
	})
	px.resume()
	t.Run("Recovers", func(t *testing.T) {
		deadline := time.Now().Add(20 * time.Second)
		for {
			r := postJSON(t, ts.public+"/reportReading", signed(t, k, crypto.Reading{WhIn: 2, Timestamp: now.Add(-time.Hour).UnixMilli() + 1000}))
			if r.status == http.StatusCreated {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("still %d %s 20 s after the stall ended", r.status, r.rawBody)
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
}

// TestShutdownUnderLoad stops a server while clients keep reporting: every
// request it accepted is answered (201, or 503 once shutting down), Serve
// returns within its bound, and every reading answered 201 is stored.
func TestShutdownUnderLoad(t *testing.T) {
	for _, b := range dbtest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			conn := b.OpenMigrated(t)
			st := store.New(conn)
			srv := newServer(t, testConfig(func(c *server.Config) { c.ShutdownTimeout = 10 * time.Second }), st)
			pubLn, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			admLn, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(t.Context())
			served := make(chan error, 1)
			go func() { served <- srv.Serve(ctx, pubLn, admLn) }()
			base := "http://" + pubLn.Addr().String()
			ts := testServer{public: base, admin: "http://" + admLn.Addr().String(), store: st, db: conn}

			const meters = 16
			type answer struct {
				reading crypto.Reading
				key     *crypto.PrivateKey
				status  int
			}
			var (
				mu      sync.Mutex
				answers []answer
				wg      sync.WaitGroup
			)
			keys := make([]*crypto.PrivateKey, meters)
			for m := range keys {
				keys[m] = newKey(t, "ed25519")
				if r := register(t, ts, fmt.Sprint("drain-", m), keys[m]); r.status != http.StatusCreated {
					t.Fatal(r.rawBody)
				}
			}
			client := &http.Client{Timeout: 15 * time.Second}
			for m := range meters {
				wg.Go(func() {
					for i := int64(0); ; i++ {
						r := crypto.Reading{WhIn: i, Timestamp: now.Add(-time.Hour).UnixMilli() + i*1000}
						body, err := trySigned(keys[m], r)
						if err != nil {
							t.Error(err)
							return
						}
						b, err := json.Marshal(body)
						if err != nil {
							t.Error(err)
							return
						}
						res, err := client.Post(base+"/reportReading", "application/json", bytes.NewReader(b))
						if err != nil {
							// Refused or closed before the request was read:
							// the server never accepted it.
							var op *net.OpError
							if errors.As(err, &op) || errors.Is(err, io.EOF) {
								return
							}
							t.Errorf("meter %d: %v", m, err)
							return
						}
						res.Body.Close()
						mu.Lock()
						answers = append(answers, answer{r, keys[m], res.StatusCode})
						mu.Unlock()
					}
				})
			}
			time.Sleep(300 * time.Millisecond)
			start := time.Now()
			cancel()
			if err := <-served; err != nil {
				t.Fatalf("Serve: %v", err)
			}
			t.Logf("Serve returned %s after the signal", time.Since(start).Round(time.Millisecond))
			wg.Wait()

			counts := map[int]int{}
			for _, a := range answers {
				counts[a.status]++
				switch a.status {
				case http.StatusCreated:
					m, err := st.MeterByFingerprint(t.Context(), a.key.Public().Fingerprint())
					if err != nil {
						t.Fatal(err)
					}
					rs, err := st.ReadingsBetween(t.Context(), m.ID, a.reading.Timestamp, a.reading.Timestamp+1, 1)
					if err != nil {
						t.Fatal(err)
					}
					if len(rs) != 1 || rs[0].Reading != a.reading {
						t.Errorf("reading %+v answered 201 is not stored", a.reading)
					}
				case http.StatusServiceUnavailable:
				default:
					t.Errorf("reading %+v answered %d", a.reading, a.status)
				}
			}
			t.Logf("answers: %v", counts)
			if counts[http.StatusCreated] == 0 {
				t.Fatal("no reading was stored before the shutdown")
			}
		})
	}
}

// jsonReader returns v as a JSON body.
func jsonReader(t *testing.T, v any) io.Reader {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.NewReader(b)
}
