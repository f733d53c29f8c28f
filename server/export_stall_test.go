package server_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"smartmeters/crypto"
	"smartmeters/db"
	"smartmeters/db/dbtest"
	"smartmeters/server"
	"smartmeters/store"
)

// TestStalledExports opens 16 exports of a large meter and never reads
// them, then reports readings of another meter: all are stored, on both
// stores, because reporting reads through a pool of its own and an export
// holds no database connection while it waits for its client. The
// stalled downloads are cut off.
func TestStalledExports(t *testing.T) {
	for _, b := range dbtest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			conn := b.OpenMigrated(t)
			st := store.New(conn)
			ro, err := db.OpenReadOnly(context.Background(), b.URL)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ro.Close() })
			stores := server.StoresOf(st)
			stores.Reporting = store.New(ro)
			cfg := testConfig(nil)
			if b.Driver() == db.SQLite {
				cfg.Ingest.Committers = 1
			}
			srv := newServerOver(t, cfg, stores)
			pubAddr, admAddr := serveForTest(t, srv)
			ts := testServer{public: "http://" + pubAddr, admin: "http://" + admAddr, store: st, db: conn}

			big := seedMeter(t, ts, "big", newKey(t, "ed25519"))
			seedReadings(t, st, big, 30_000)

			// Clients that ask for the export and never read: a tiny
			// receive window makes the server's writes block at once.
			small := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
				var serr error
				if err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) }); err != nil {
					return err
				}
				return serr
			}}
			var stalled []net.Conn
			for range 16 {
				c, err := small.Dial("tcp", admAddr)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { c.Close() })
				fmt.Fprintf(c, "GET /meters/%d/export.csv HTTP/1.1\r\nHost: x\r\n\r\n", big)
				stalled = append(stalled, c)
			}
			time.Sleep(500 * time.Millisecond) // let every export start and block

			k := newKey(t, "ed25519")
			if r := register(t, ts, "meanwhile", k); r.status != http.StatusCreated {
				t.Fatalf("register while exports stall: %d %s", r.status, r.rawBody)
			}
			for i := range int64(20) {
				body := signed(t, k, crypto.Reading{WhIn: i, Timestamp: now.Add(-time.Hour).UnixMilli() + i*1000})
				if r := postJSON(t, ts.public+"/reportReading", body); r.status != http.StatusCreated {
					t.Fatalf("report %d while 16 exports stall: %d %s", i, r.status, r.rawBody)
				}
			}
			if b.Driver() != db.SQLite {
				return
			}
			// Past the stall bound the downloads are cut off: reading one
			// now ends before the export would.
			// Each stalled download is cut off exportStall (10 s) after it
			// stopped moving: the server says so, and the client finds its
			// connection closed short of the whole file.
			waitMetric(t, ts.admin, "smartmeters_exports_cut_off_total", len(stalled), time.Minute)
			for i, c := range stalled {
				_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
				n, err := io.Copy(io.Discard, c)
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					t.Fatalf("stalled export %d still open after %d bytes", i, n)
				}
			}
		})
	}
}

// seedReadings stores n readings of meter id, a minute apart, through the
// store; their signatures are not checked by an export.
func seedReadings(t *testing.T, st *store.Store, id int64, n int) {
	t.Helper()
	sig := make([]byte, 64)
	start := now.Add(-time.Duration(n+1) * time.Minute)
	for lo := 0; lo < n; lo += 1000 {
		rs := make([]store.Reading, 0, 1000)
		for i := lo; i < min(lo+1000, n); i++ {
			ts := start.Add(time.Duration(i) * time.Minute)
			rs = append(rs, store.Reading{MeterID: id, KeySeq: 1, Reading: crypto.Reading{WhIn: int64(i), WhOut: 0, Timestamp: ts.UnixMilli()}, Signature: sig, ReceivedAt: ts})
		}
		if _, err := st.InsertReadings(context.Background(), rs); err != nil {
			t.Fatal(err)
		}
	}
}

// waitMetric waits until the admin listener's metric name reaches want.
func waitMetric(t *testing.T, admin, name string, want int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		for _, line := range strings.Split(get(t, admin+"/metrics").rawBody, "\n") {
			var v float64
			if _, err := fmt.Sscanf(line, name+" %g", &v); err == nil && int(v) >= want {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not reach %d within %s", name, want, within)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
