package server_test

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"smartmeters/db/dbtest"
	"smartmeters/server"
	"smartmeters/store"
)

// syncBuffer is a log destination that handlers on several goroutines
// may write to.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// lines returns the log lines with msg=request, and how many say status=code.
func (b *syncBuffer) lines(code string) (all, withCode int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, l := range strings.Split(b.buf.String(), "\n") {
		if !strings.Contains(l, "msg=request") {
			continue
		}
		all++
		if strings.Contains(l, "status="+code) {
			withCode++
		}
	}
	return all, withCode
}

// TestRequestLogSampling checks that --request-log-every logs every
// request answered 5xx, one in N of the others with sampled=N on the line,
// and none of them for 0, while the latency histogram counts them all.
func TestRequestLogSampling(t *testing.T) {
	st := store.New(dbtest.SQLite(t).OpenMigrated(t))
	for _, tt := range []struct {
		every      int
		wantOK     int // of 30 requests answered 200
		wantSample string
	}{
		{every: 1, wantOK: 30, wantSample: "sampled=1"},
		{every: 10, wantOK: 3, wantSample: "sampled=10"},
		{every: 0, wantOK: 0},
	} {
		t.Run("Every"+strconv.Itoa(tt.every), func(t *testing.T) {
			var logs syncBuffer
			stores := server.StoresOf(st)
			stores.Health = downHealth{} // /readyz answers 503
			srv, err := server.New(testConfig(func(c *server.Config) { c.RequestLogEvery = tt.every }), stores,
				slog.New(slog.NewTextHandler(&logs, nil)))
			if err != nil {
				t.Fatal(err)
			}
			pub := httptest.NewServer(checkedPublic(t, srv.PublicHandler()))
			t.Cleanup(pub.Close)
			for range 30 {
				if r := do(t, mustRequest(t, http.MethodGet, pub.URL+"/healthz")); r.status != http.StatusOK {
					t.Fatalf("/healthz: %d", r.status)
				}
			}
			for range 4 {
				if r := do(t, mustRequest(t, http.MethodGet, pub.URL+"/readyz")); r.status != http.StatusServiceUnavailable {
					t.Fatalf("/readyz with the store down: %d", r.status)
				}
			}
			all, failed := logs.lines("503")
			if failed != 4 {
				t.Errorf("logged %d of 4 requests answered 503; want every one", failed)
			}
			if ok := all - failed; ok != tt.wantOK {
				t.Errorf("logged %d of 30 requests answered 200; want %d", ok, tt.wantOK)
			}
			if tt.wantSample != "" && !strings.Contains(logs.buf.String(), tt.wantSample) {
				t.Errorf("no %s on the request lines:\n%s", tt.wantSample, logs.buf.String())
			}

			adm := httptest.NewServer(checkedAdmin(t, srv.AdminHandler()))
			t.Cleanup(adm.Close)
			metrics := do(t, mustRequest(t, http.MethodGet, adm.URL+"/metrics")).rawBody
			want := `smartmeters_http_request_seconds_count{code="200",route="/healthz"} 30`
			if !strings.Contains(metrics, want) {
				t.Errorf("/metrics lacks %s", want)
			}
		})
	}
}
