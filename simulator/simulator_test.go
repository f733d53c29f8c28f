package simulator_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"smartmeters/crypto"
	"smartmeters/db/dbtest"
	"smartmeters/server"
	"smartmeters/simulator"
	"smartmeters/store"
)

// testServer is the real server on a fresh migrated SQLite database.
type testServer struct {
	public, admin string
	db            *sqlx.DB
}

// middleware wraps a listener's handler, to inject faults.
type middleware func(http.Handler) http.Handler

// newTestServer serves the real handlers on httptest listeners, the public
// one wrapped by wrapPublic and the admin one by wrapAdmin when not nil.
func newTestServer(t testing.TB, wrapPublic, wrapAdmin middleware) testServer {
	t.Helper()
	conn := dbtest.SQLite(t).OpenMigrated(t)
	srv, err := server.New(server.DefaultConfig(), server.StoresOf(store.New(conn)), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close) // after the listeners below have closed
	pub, adm := srv.PublicHandler(), srv.AdminHandler()
	if wrapPublic != nil {
		pub = wrapPublic(pub)
	}
	if wrapAdmin != nil {
		adm = wrapAdmin(adm)
	}
	p := httptest.NewServer(pub)
	t.Cleanup(p.Close)
	a := httptest.NewServer(adm)
	t.Cleanup(a.Close)
	return testServer{public: p.URL, admin: a.URL, db: conn}
}

// config returns a quick run of ed25519 meters against ts.
func (ts testServer) config(meters, readings int) simulator.Config {
	return simulator.Config{
		PublicURL:   ts.public,
		AdminURL:    ts.admin,
		Meters:      meters,
		Readings:    readings,
		Interval:    30 * time.Millisecond,
		KeyType:     crypto.Ed25519,
		Seed:        1,
		Concurrency: 8,
		RetryBase:   2 * time.Millisecond,
		RetryMax:    20 * time.Millisecond,
	}
}

// runSim runs a simulator with cfg to the end.
func runSim(t testing.TB, ctx context.Context, cfg simulator.Config) *simulator.Summary {
	t.Helper()
	sim, err := simulator.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	sum, err := sim.Run(ctx)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return sum
}

func count(t testing.TB, conn *sqlx.DB, query string) int64 {
	t.Helper()
	var n int64
	if err := conn.Get(&n, query); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// checkRegisters fails unless every meter's stored registers never
// decrease over time and its timestamps are distinct.
func checkRegisters(t *testing.T, conn *sqlx.DB) {
	t.Helper()
	var rows []struct {
		MeterID   int64 `db:"meter_id"`
		Timestamp int64 `db:"timestamp"`
		WhIn      int64 `db:"wh_in"`
		WhOut     int64 `db:"wh_out"`
	}
	if err := conn.Select(&rows, `SELECT meter_id, timestamp, wh_in, wh_out FROM readings ORDER BY meter_id, timestamp`); err != nil {
		t.Fatal(err)
	}
	for i := 1; i < len(rows); i++ {
		a, b := rows[i-1], rows[i]
		if a.MeterID != b.MeterID {
			continue
		}
		if b.WhIn < a.WhIn || b.WhOut < a.WhOut {
			t.Errorf("meter %d: registers went from in %d out %d at %d to in %d out %d at %d",
				a.MeterID, a.WhIn, a.WhOut, a.Timestamp, b.WhIn, b.WhOut, b.Timestamp)
		}
	}
}

func TestRun(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name             string
		keyType          crypto.KeyType
		meters, readings int
	}{
		{"Ed25519", crypto.Ed25519, 6, 4},
		{"ECDSAP256", crypto.ECDSAP256, 3, 3},
		{"RSA2048", crypto.RSA2048, 2, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ts := newTestServer(t, nil, nil)
			cfg := ts.config(tt.meters, tt.readings)
			cfg.KeyType = tt.keyType
			sum := runSim(t, context.Background(), cfg)
			if err := sum.Err(); err != nil {
				t.Fatalf("Err: %v", err)
			}
			want := int64(tt.meters * tt.readings)
			if sum.Attempted != want || sum.Accepted != want || sum.Duplicates != 0 || sum.Rejected != 0 || sum.Failed != 0 {
				t.Errorf("attempted %d accepted %d duplicates %d rejected %d failed %d, want %d accepted",
					sum.Attempted, sum.Accepted, sum.Duplicates, sum.Rejected, sum.Failed, want)
			}
			if got := count(t, ts.db, `SELECT count(*) FROM readings`); got != sum.Accepted {
				t.Errorf("store holds %d readings, summary says %d accepted", got, sum.Accepted)
			}
			if got := count(t, ts.db, `SELECT count(*) FROM meters`); got != int64(tt.meters) || sum.Registered != tt.meters || sum.Meters != tt.meters {
				t.Errorf("store holds %d meters, summary registered %d of %d", got, sum.Registered, sum.Meters)
			}
			if sum.KeyType != string(tt.keyType) || sum.Seed != 1 {
				t.Errorf("key type %q seed %d, want %q and 1", sum.KeyType, sum.Seed, tt.keyType)
			}
			if sum.LatencyMS.P50 <= 0 || sum.LatencyMS.Max < sum.LatencyMS.P99 || sum.RatePerS <= 0 {
				t.Errorf("latency %+v rate %g: want positive and ordered", sum.LatencyMS, sum.RatePerS)
			}
			checkRegisters(t, ts.db)
		})
	}
}

// TestRunRejected checks that rejections are counted by problem type and
// fail the run: a clock an hour ahead stamps readings in the future.
func TestRunRejected(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, nil, nil)
	cfg := ts.config(3, 2)
	cfg.Now = func() time.Time { return time.Now().Add(time.Hour) }
	sum := runSim(t, context.Background(), cfg)
	if sum.Rejected != 6 || sum.RejectedByReason["timestamp-in-future"] != 6 || sum.Accepted != 0 {
		t.Errorf("rejected %d %v accepted %d, want 6 timestamp-in-future", sum.Rejected, sum.RejectedByReason, sum.Accepted)
	}
	err := sum.Err()
	if err == nil || err.Error() != "6 of 6 readings were not accepted (timestamp-in-future 6)" {
		t.Errorf("Err = %v", err)
	}
	if n := count(t, ts.db, `SELECT count(*) FROM readings`); n != 0 {
		t.Errorf("store holds %d readings, want 0", n)
	}
}

// TestRunUntilCancelled runs with no limit on readings and stops it.
func TestRunUntilCancelled(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	cfg := ts.config(4, 0)
	start := time.Now()
	sum := runSim(t, ctx, cfg)
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Run took %s after cancellation", took)
	}
	if err := sum.Err(); err != nil {
		t.Errorf("Err: %v", err)
	}
	if sum.Attempted < 8 {
		t.Errorf("attempted %d readings in 300ms of 4 meters at 30ms; want many more", sum.Attempted)
	}
	if got := count(t, ts.db, `SELECT count(*) FROM readings`); got != sum.Accepted {
		t.Errorf("store holds %d readings, summary says %d accepted", got, sum.Accepted)
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	t.Parallel()
	good := simulator.Config{PublicURL: "http://localhost:8080", AdminURL: "http://127.0.0.1:8081",
		Meters: 1, Interval: time.Second, KeyType: crypto.Ed25519}
	tests := []struct {
		name   string
		change func(*simulator.Config)
		want   string
	}{
		{"Meters", func(c *simulator.Config) { c.Meters = 0 }, "Meters is 0"},
		{"Interval", func(c *simulator.Config) { c.Interval = 0 }, "Interval is 0s"},
		{"KeyType", func(c *simulator.Config) { c.KeyType = "dsa" }, `key type "dsa"`},
		{"Tamper", func(c *simulator.Config) { c.Tamper = 1.5 }, "Tamper is 1.5"},
		{"PublicURL", func(c *simulator.Config) { c.PublicURL = "localhost:8080" }, "PublicURL"},
		{"AdminURL", func(c *simulator.Config) { c.AdminURL = "http://x/?a=b" }, "AdminURL"},
	}
	if _, err := simulator.New(good); err != nil {
		t.Fatalf("good config: %v", err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := good
			tt.change(&cfg)
			_, err := simulator.New(cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New: %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestStartOffsets(t *testing.T) {
	t.Parallel()
	const n, interval = 1000, time.Second
	offsets := simulator.StartOffsets(42, n, interval)
	var deciles [10]int
	for i, off := range offsets {
		if off < 0 || off >= interval {
			t.Fatalf("offset %d is %s, outside [0, %s)", i, off, interval)
		}
		deciles[off*10/interval]++
	}
	for d, got := range deciles {
		// 100 expected per decile; 60..140 is more than four standard
		// deviations either way.
		if got < 60 || got > 140 {
			t.Errorf("decile %d holds %d of %d offsets, want about 100: %v", d, got, n, deciles)
		}
	}
	again := simulator.StartOffsets(42, n, interval)
	other := simulator.StartOffsets(43, n, interval)
	same := 0
	for i := range offsets {
		if offsets[i] != again[i] {
			t.Fatalf("offset %d differs between two runs with one seed", i)
		}
		if offsets[i] == other[i] {
			same++
		}
	}
	if same > 10 {
		t.Errorf("%d of %d offsets equal under another seed", same, n)
	}
}

func TestStatus(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		tty  bool
	}{{"Plain", false}, {"Terminal", true}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ts := newTestServer(t, nil, nil)
			var status strings.Builder
			cfg := ts.config(3, 6)
			cfg.Tamper = 0.2
			cfg.Status, cfg.StatusTTY, cfg.StatusEvery = &status, tt.tty, 15*time.Millisecond
			if sum := runSim(t, context.Background(), cfg); sum.Err() != nil {
				t.Fatal(sum.Err())
			}
			out := status.String()
			for _, want := range []string{"registered 3/3", "sent ", "accepted ", "rejected 0", "forged ", "in flight ", "/s", "%"} {
				if !strings.Contains(out, want) {
					t.Errorf("status lacks %q:\n%q", want, out)
				}
			}
			const clear = "\r\x1b[2K"
			if redrawn := strings.HasSuffix(out, clear) && strings.Contains(out, "]"); redrawn != tt.tty {
				t.Errorf("terminal %v, status %q: want a redrawn line with a bar, erased at the end, only on a terminal", tt.tty, out)
			}
			if !tt.tty && (strings.Contains(out, "\r") || !strings.HasSuffix(out, "\n")) {
				t.Errorf("plain status %q: want whole lines", out)
			}
		})
	}
}
