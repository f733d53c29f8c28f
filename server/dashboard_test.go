package server_test

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"smartmeters/crypto"
	"smartmeters/db/dbtest"
	"smartmeters/server"
	"smartmeters/simulator"
	"smartmeters/store"
)

// chromiumPath is where Debian's chromium package puts the browser.
const chromiumPath = "/usr/bin/chromium"

// browser returns a headless Chromium context, skipping the test when
// there is no Chromium unless SMARTMETERS_REQUIRE_BROWSER=1 says it must run.
// A script error on the page fails the test.
func browser(t *testing.T) context.Context {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("SMARTMETERS_REQUIRE_BROWSER") == "1" {
			t.Fatalf("SMARTMETERS_REQUIRE_BROWSER=1 but %s is missing: %v", chromiumPath, err)
		}
		t.Skipf("browser test skipped: %s is missing (apt-get install chromium; SMARTMETERS_REQUIRE_BROWSER=1 makes this a failure)", chromiumPath)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("no-first-run", true),
		chromedp.WindowSize(1440, 1000),
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(cancel)
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(cancelTimeout)
	var (
		mu     sync.Mutex
		errors []string
	)
	err := chromedp.Listen(ctx, func(ev any) {
		if ex, ok := ev.(*runtime.EventExceptionThrown); ok {
			d := ex.ExceptionDetails
			msg := d.Text
			if d.Exception != nil {
				msg += " " + d.Exception.Description
			}
			mu.Lock()
			errors = append(errors, fmt.Sprintf("%s:%d: %s", d.URL, d.LineNumber+1, msg))
			mu.Unlock()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, e := range errors {
			t.Errorf("script error on the page: %s", e)
		}
	})
	return ctx
}

// eval evaluates expr on the page.
func eval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	return v
}

// waitFor waits until expr is truthy on the page, for at most 20 s.
func waitFor(t *testing.T, ctx context.Context, what, expr string) {
	t.Helper()
	if _, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(20*time.Second), chromedp.WithPollingInterval(100*time.Millisecond))); err != nil {
		t.Fatalf("waiting for %s (%s): %v", what, expr, err)
	}
}

// afterRefresh waits until the page has finished a refresh (its 5 s timer)
// that began after the call: two more than had finished.
func afterRefresh(t *testing.T, ctx context.Context) {
	t.Helper()
	n := eval[int](t, ctx, `Number(document.body.dataset.refreshes || 0)`)
	waitFor(t, ctx, "a whole refresh", fmt.Sprintf(`Number(document.body.dataset.refreshes || 0) >= %d`, n+2))
}

// act runs actions on the page.
func act(t *testing.T, ctx context.Context, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatal(err)
	}
}

// choose selects value in the select element sel, as a user does.
func choose(t *testing.T, ctx context.Context, sel, value string) {
	t.Helper()
	eval[bool](t, ctx, fmt.Sprintf(`(() => { const s = document.querySelector(%q); s.value = %q; s.dispatchEvent(new Event("change")); return true })()`, sel, value))
}

// serveReal runs a server on real loopback listeners with the real clock
// until the test ends, and returns its public and admin base URLs.
func serveReal(t *testing.T) (public, admin string, st *store.Store) {
	t.Helper()
	st = store.New(dbtest.SQLite(t).OpenMigrated(t))
	cfg := server.DefaultConfig()
	cfg.Ingest.Committers = 1
	srv := newServer(t, cfg, st)
	pub, adm := serveForTest(t, srv)
	return "http://" + pub, "http://" + adm, st
}

// seedHistory registers a meter with a day of 15-minute readings ending
// now, following a daily load curve with solar export around noon, and
// returns its id.
func seedHistory(t *testing.T, admin string, st *store.Store) int64 {
	t.Helper()
	k := newKey(t, "ed25519")
	r := postJSON(t, admin+"/register", map[string]string{"username": "history", "base64PublicKey": k.Public().Base64()})
	if r.status != http.StatusCreated {
		t.Fatal(r.rawBody)
	}
	id := int64(r.body["id"].(float64))
	end := time.Now().Truncate(time.Minute)
	var in, out int64 = 1_250_000, 310_000
	var rs []store.Reading
	for ts := end.Add(-24 * time.Hour); !ts.After(end); ts = ts.Add(15 * time.Minute) {
		h := float64(ts.Hour()) + float64(ts.Minute())/60
		in += int64(120 + 180*math.Max(0, math.Sin((h-5)/24*2*math.Pi)))
		out += int64(200 * math.Max(0, math.Sin((h-7)/10*math.Pi)))
		cr := crypto.Reading{WhIn: in, WhOut: out, Timestamp: ts.UnixMilli()}
		sig, err := k.Sign(cr)
		if err != nil {
			t.Fatal(err)
		}
		rs = append(rs, store.Reading{MeterID: id, KeySeq: 1, Reading: cr, Signature: sig, ReceivedAt: ts})
	}
	if _, err := st.InsertReadings(context.Background(), rs); err != nil {
		t.Fatal(err)
	}
	return id
}

// TestDashboard opens the dashboard in headless Chromium while the
// simulator reports, and checks that the counters rise and the charts are
// drawn. Screenshots go to SMARTMETERS_SCREENSHOT_DIR, or a temporary
// directory.
func TestDashboard(t *testing.T) {
	ctx := browser(t)
	public, admin, st := serveReal(t)
	history := seedHistory(t, admin, st)

	sim, err := simulator.New(simulator.Config{
		PublicURL: public, AdminURL: admin,
		Meters: 12, Interval: 250 * time.Millisecond, KeyType: crypto.Ed25519, Seed: 6,
		Tamper: 0.05,
	})
	if err != nil {
		t.Fatal(err)
	}
	simCtx, stopSim := context.WithCancel(context.Background())
	simDone := make(chan struct{})
	go func() {
		defer close(simDone)
		if _, err := sim.Run(simCtx); err != nil {
			t.Errorf("simulator: %v", err)
		}
	}()
	t.Cleanup(func() { stopSim(); <-simDone })

	dir := filepath.Dir(screenshotPath(t, "x"))
	counter := func() int64 {
		t.Helper()
		text, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#readings-stored")))
		if err != nil {
			t.Fatal(err)
		}
		n, _ := strconv.ParseInt(strings.Map(func(r rune) rune {
			if r >= '0' && r <= '9' {
				return r
			}
			return -1
		}, text), 10, 64)
		return n
	}
	// waitRise polls the counter until it exceeds above.
	waitRise := func(above int64) int64 {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for time.Now().Before(deadline) {
			if n := counter(); n > above {
				return n
			}
			time.Sleep(300 * time.Millisecond)
		}
		t.Fatalf("readings counter did not rise above %d within 15s", above)
		return 0
	}

	if err := chromedp.Do(ctx, chromedp.Navigate(admin+"/"), chromedp.WaitVisible(chromedp.CSS("#power-chart canvas"))); err != nil {
		t.Fatal(err)
	}
	first := waitRise(0)
	second := waitRise(first)
	t.Logf("readings counter rose from %d to %d", first, second)

	// The list fills in on its 5 s refresh, the chart on the fleet's.
	// The list fills in on its 5 s refresh as the simulator registers its
	// meters; the chart is drawn to the width of its panel.
	waitFor(t, ctx, "all 13 meters", `document.querySelectorAll('#meter-rows a[href^="#/meters/"]').length === 13`)
	if w := eval[int](t, ctx, `document.querySelector("#power-chart canvas").width`); w < 300 {
		t.Errorf("power chart canvas %d px wide, want a drawn chart", w)
	}
	// The rejection reasons (the simulator forges some) stay inside their
	// card.
	waitFor(t, ctx, "rejection reasons", `document.querySelectorAll("#rejected-reasons li").length > 0`)
	fit := eval[[]float64](t, ctx, `(() => { const l = document.querySelector("#rejected-reasons"), c = l.closest(".card");
		return [l.scrollWidth - l.clientWidth, c.getBoundingClientRect().right - l.getBoundingClientRect().right] })()`)
	if fit[0] > 0 || fit[1] < 0 {
		t.Errorf("rejection reasons overflow by %g px, end %g px inside their card; want them inside", fit[0], fit[1])
	}
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	save(t, filepath.Join(dir, "dashboard-fleet.png"), shot)

	if err := chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(fmt.Sprintf(`#meter-rows a[href="#/meters/%d"]`, history))),
		chromedp.WaitVisible(chromedp.CSS("#consumption-chart canvas")),
		chromedp.WaitVisible(chromedp.CSS("#reading-rows td.num")),
	); err != nil {
		t.Fatal(err)
	}
	title, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#meter-title")))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(title, "history (meter ") {
		t.Errorf("meter page title %q", title)
	}
	// Latest readings: the newest first, the newest being the meter's last.
	var stamps []string
	if stamps, err = chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("#reading-rows td[data-ts]")].map((td) => td.dataset.ts)`)); err != nil {
		t.Fatal(err)
	}
	last, err := st.MeterSummaryByID(context.Background(), history)
	if err != nil {
		t.Fatal(err)
	}
	if len(stamps) != 20 || !strings.HasPrefix(stamps[0], last.LastReading.Time().Format("2006-01-02T15:04")) || !sort.SliceIsSorted(stamps, func(i, j int) bool { return stamps[i] > stamps[j] }) {
		t.Errorf("latest readings %q: want the 20 newest, newest first, from %s", stamps, last.LastReading.Time())
	}
	if shot, err = chromedp.Run(ctx, chromedp.FullScreenshot(100)); err != nil {
		t.Fatal(err)
	}
	save(t, filepath.Join(dir, "dashboard-meter.png"), shot)
}

// screenshotPath names a screenshot file in SMARTMETERS_SCREENSHOT_DIR, or
// in a temporary directory.
func screenshotPath(t *testing.T, name string) string {
	t.Helper()
	dir := os.Getenv("SMARTMETERS_SCREENSHOT_DIR")
	if dir == "" {
		dir = t.TempDir()
	}
	return filepath.Join(dir, name)
}

func save(t *testing.T, path string, png []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}
