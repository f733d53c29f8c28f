package server_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"

	"smartmeters/crypto"
	"smartmeters/store"
)

// storeReadings stores readings of meter id, signed by k, received when
// they were taken.
func storeReadings(t *testing.T, st *store.Store, id int64, k *crypto.PrivateKey, regs ...reg) {
	t.Helper()
	rs := make([]store.Reading, len(regs))
	for i, g := range regs {
		cr := crypto.Reading{WhIn: g.in, WhOut: g.out, Timestamp: g.at.UnixMilli()}
		sig, err := k.Sign(cr)
		if err != nil {
			t.Fatal(err)
		}
		rs[i] = store.Reading{MeterID: id, KeySeq: 1, Reading: cr, Signature: sig, ReceivedAt: time.Now()}
	}
	if _, err := st.InsertReadings(context.Background(), rs); err != nil {
		t.Fatal(err)
	}
}

// registerMeter registers a meter through the admin API and returns its id.
func registerMeter(t *testing.T, admin, username string, k *crypto.PrivateKey) int64 {
	t.Helper()
	r := postJSON(t, admin+"/register", map[string]string{"username": username, "base64PublicKey": k.Public().Base64()})
	if r.status != http.StatusCreated {
		t.Fatal(r.rawBody)
	}
	return int64(r.body["id"].(float64))
}

// drag drags the mouse across the element sel from one fraction of its
// width to another, at half its height, as a user selecting a span does.
func drag(t *testing.T, ctx context.Context, sel string, from, to float64) {
	t.Helper()
	rect := eval[[4]float64](t, ctx, fmt.Sprintf(`(() => { const r = document.querySelector(%q).getBoundingClientRect(); return [r.left, r.top, r.width, r.height] })()`, sel))
	y := rect[1] + rect[3]/2
	x0, x1 := rect[0]+from*rect[2], rect[0]+to*rect[2]
	steps := []chromedp.Action[chromedp.Void]{chromedp.MouseEvent(input.DispatchMouseEventTypeMousePressed, x0, y, chromedp.ButtonLeft, chromedp.ClickCount(1))}
	for i := 1; i <= 5; i++ {
		steps = append(steps, chromedp.MouseEvent(input.DispatchMouseEventTypeMouseMoved, x0+(x1-x0)*float64(i)/5, y,
			chromedp.ButtonLeft, func(p *input.DispatchMouseEventParams) { p.Buttons = 1 }))
	}
	steps = append(steps, chromedp.MouseEvent(input.DispatchMouseEventTypeMouseReleased, x1, y, chromedp.ButtonLeft, chromedp.ClickCount(1)))
	act(t, ctx, steps...)
}

// TestDashboardMeterPage drives a meter page: the default range of a young
// meter, units by magnitude, times with their zone and the UTC switch, the
// range kept in the URL, a drag-zoom kept across the refresh, and a meter
// that does not exist.
func TestDashboardMeterPage(t *testing.T) {
	ctx := browser(t)
	_, admin, st := serveReal(t)
	history := seedHistory(t, admin, st)
	// Ten minutes old, 5 Wh a minute: kWh to two places would show 0.01.
	k := newKey(t, "ed25519")
	young := registerMeter(t, admin, "young", k)
	start := time.Now().Add(-10 * time.Minute).Truncate(time.Minute)
	var regs []reg
	for i := range 11 {
		regs = append(regs, reg{start.Add(time.Duration(i) * time.Minute), int64(5 * i), int64(i)})
	}
	storeReadings(t, st, young, k, regs...)
	act(t, ctx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, emulation.SetTimezoneOverride, emulation.SetTimezoneOverrideParams{TimezoneID: "Asia/Tokyo"})
		return err
	}))

	t.Run("YoungMeter", func(t *testing.T) {
		act(t, ctx, chromedp.Navigate(fmt.Sprintf("%s/#/meters/%d", admin, young)))
		waitFor(t, ctx, "the consumption note", `document.querySelector("#consumption-note").textContent.includes("imported")`)
		if r := eval[string](t, ctx, `document.querySelector("#meter-range").value`); r != "1h" {
			t.Errorf("default range of a ten-minute-old meter %q, want 1h", r)
		}
		note := eval[string](t, ctx, `document.querySelector("#consumption-note").textContent`)
		if !strings.Contains(note, "50 Wh imported, 10 Wh exported") {
			t.Errorf("consumption note %q: want its Wh in Wh", note)
		}
		if unit := eval[string](t, ctx, `document.querySelector("#consumption-unit").textContent`); unit != "Wh per bucket" {
			t.Errorf("consumption chart in %q, want Wh per bucket", unit)
		}
		// Times carry their zone: the browser's (Tokyo), then UTC.
		if facts := eval[string](t, ctx, `document.querySelector("#meter-facts").textContent`); !strings.Contains(facts, "GMT+9") {
			t.Errorf("facts %q: want times in GMT+9", facts)
		}
		act(t, ctx, chromedp.Click(chromedp.CSS("#tz-utc")))
		waitFor(t, ctx, "times in UTC", `document.querySelector("#meter-facts").textContent.includes("UTC") && document.querySelector("#reading-rows").textContent.includes("UTC")`)
		if h := eval[string](t, ctx, `location.hash`); !strings.Contains(h, "tz=utc") {
			t.Errorf("hash %q after the UTC switch: want tz=utc in it", h)
		}
	})

	t.Run("RangeInURL", func(t *testing.T) {
		act(t, ctx, chromedp.Navigate(fmt.Sprintf("%s/#/meters/%d?range=6h", admin, history)))
		waitFor(t, ctx, "the 6 h range", `document.querySelector("#meter-range").value === "6h" && document.querySelector("#consumption-note").textContent.includes(", 5m buckets")`)
		choose(t, ctx, "#meter-range", "7d")
		waitFor(t, ctx, "the 7 d range in the URL", `location.hash.includes("range=7d") && document.querySelector("#consumption-note").textContent.includes("1h buckets")`)
		shared := eval[string](t, ctx, `location.href`)
		act(t, ctx, chromedp.Navigate("about:blank"), chromedp.Navigate(shared))
		waitFor(t, ctx, "the shared link's range", `document.querySelector("#meter-range").value === "7d" && document.querySelector("#consumption-note").textContent.includes("1h buckets")`)
	})

	t.Run("ZoomKeptAcrossRefresh", func(t *testing.T) {
		act(t, ctx, chromedp.Navigate(fmt.Sprintf("%s/#/meters/%d?range=24h", admin, history)))
		waitFor(t, ctx, "the chart", `document.querySelector("#consumption-chart canvas") && document.querySelector("#consumption-note").textContent.includes("15m buckets")`)
		drag(t, ctx, "#consumption-chart .u-over", 0.3, 0.6)
		waitFor(t, ctx, "the zoom", `location.hash.includes("from=") && document.querySelector("#meter-range").value === "custom" && document.querySelector("#consumption-note").textContent.includes(", 5m buckets")`)
		hash := eval[string](t, ctx, `location.hash`)
		note := eval[string](t, ctx, `document.querySelector("#consumption-note").textContent`)
		afterRefresh(t, ctx)
		if h, n := eval[string](t, ctx, `location.hash`), eval[string](t, ctx, `document.querySelector("#consumption-note").textContent`); h != hash || n != note {
			t.Errorf("after a refresh: hash %q, note %q; want the zoom kept: %q, %q", h, n, hash, note)
		}
		act(t, ctx, chromedp.DoubleClick(chromedp.CSS("#consumption-chart .u-over")))
		waitFor(t, ctx, "the zoom out", `!location.hash.includes("from=") && document.querySelector("#meter-range").value !== "custom"`)
	})

	t.Run("NoSuchMeter", func(t *testing.T) {
		act(t, ctx, chromedp.Navigate(fmt.Sprintf("%s/#/meters/%d", admin, history)))
		waitFor(t, ctx, "the meter's facts", `document.querySelector("#meter-facts").children.length > 0 && document.querySelector("#consumption-chart canvas")`)
		act(t, ctx, chromedp.Navigate(admin+"/#/meters/9999"))
		waitFor(t, ctx, "the missing meter", `document.querySelector("#meter-title").textContent === "No meter 9999"`)
		afterRefresh(t, ctx) // a late answer about the previous meter must not bring it back
		got := eval[[]any](t, ctx, `[document.querySelector("#meter-title").textContent, document.querySelector("#meter-facts").children.length,
			document.querySelectorAll("#meter-view canvas").length, document.querySelector("#reading-rows").children.length,
			document.querySelector("#meter-consumption").hidden, document.querySelector("#meter-export").hidden]`)
		if fmt.Sprint(got) != "[No meter 9999 0 0 0 true true]" {
			t.Errorf("page of meter 9999 [title, facts, charts, reading rows, consumption hidden, export hidden] = %v; want only the title", got)
		}
	})
}

// TestDashboardFleet drives the fleet view behind a proxy it can cut: "More"
// rows kept and updated across refreshes, the Silent card and the state
// filter, numbers marked stale while the event stream is down, and the
// page at phone width in the dark colour scheme.
func TestDashboardFleet(t *testing.T) {
	ctx := browser(t)
	_, admin, st := serveReal(t)
	proxy := newTCPProxy(t, strings.TrimPrefix(admin, "http://"))
	page := "http://" + proxy.addr()
	k := newKey(t, "ed25519")
	live := registerMeter(t, admin, "live", k)
	storeReadings(t, st, live, k, reg{time.Now().Add(-5 * time.Second), 100, 0})
	var ids []int64
	keys := map[int64]*crypto.PrivateKey{}
	for i := range 60 {
		k := newKey(t, "ed25519")
		id := registerMeter(t, admin, fmt.Sprintf("quiet-%02d", i), k)
		ids, keys[id] = append(ids, id), k
	}

	act(t, ctx, chromedp.Navigate(page+"/"))
	waitFor(t, ctx, "the fleet", `document.querySelector("#meters-silent").textContent === "60" && document.querySelectorAll("#meter-rows tr").length === 50`)
	// No meter has two readings, so no bucket has energy: each is a gap,
	// not 0 W.
	waitFor(t, ctx, "gaps", `/\b(29|30) buckets without readings left as gaps/.test(document.querySelector("#power-hint").textContent)`)

	t.Run("MoreKeptAndUpdated", func(t *testing.T) {
		act(t, ctx, chromedp.Click(chromedp.CSS("#more-meters")))
		waitFor(t, ctx, "every row", `document.querySelectorAll("#meter-rows tr").length === 61 && document.querySelector("#more-meters").hidden`)
		afterRefresh(t, ctx)
		if n := eval[int](t, ctx, `document.querySelectorAll("#meter-rows tr").length`); n != 61 {
			t.Fatalf("%d rows after a refresh, want the 61 shown before it", n)
		}
		// A meter past the first page reports: its row follows.
		last := ids[len(ids)-1]
		storeReadings(t, st, last, keys[last], reg{time.Now().Add(-time.Second), 4242000, 0})
		waitFor(t, ctx, "the last row updated", fmt.Sprintf(`document.querySelector('#meter-rows tr[data-meter="%d"]').textContent.includes("4,242.000 kWh")`, last))
	})

	t.Run("SilentCard", func(t *testing.T) {
		act(t, ctx, chromedp.Click(chromedp.CSS("#silent-card")))
		waitFor(t, ctx, "the silent meters", `location.hash.includes("state=silent") && document.querySelector("#meter-state").value === "silent" &&
			document.querySelectorAll("#meter-rows tr").length === 50 && document.querySelector("#meter-rows").textContent.includes("quiet-00")`)
		states := eval[[]string](t, ctx, `[...new Set([...document.querySelectorAll("#meter-rows .state")].map((s) => s.textContent))]`)
		if fmt.Sprint(states) != "[silent]" {
			t.Errorf("states listed under the Silent card: %q, want only silent", states)
		}
		choose(t, ctx, "#meter-state", "reporting")
		waitFor(t, ctx, "the reporting meters", `location.hash.includes("state=reporting") && document.querySelectorAll("#meter-rows tr").length === 2`)
		act(t, ctx, chromedp.Navigate(page+"/#/"))
		waitFor(t, ctx, "every meter again", `document.querySelectorAll("#meter-rows tr").length === 50`)
	})

	t.Run("SortByState", func(t *testing.T) {
		act(t, ctx, chromedp.Navigate(page+"/#/?sort=state"))
		waitFor(t, ctx, "silent meters first", `document.querySelector("#meter-sort").value === "state" && document.querySelectorAll("#meter-rows tr").length === 50 &&
			document.querySelector("#meter-rows tr").textContent.includes("quiet-00")`)
		act(t, ctx, chromedp.Click(chromedp.CSS("#more-meters")))
		waitFor(t, ctx, "every row", `document.querySelectorAll("#meter-rows tr").length === 61`)
		states := eval[string](t, ctx, `[...document.querySelectorAll("#meter-rows .state")].map((s) => s.textContent[0]).join("")`)
		if want := strings.Repeat("s", 59) + "rr"; states != want {
			t.Errorf("states sorted by state %q, want %q (silent, then reporting)", states, want)
		}
		act(t, ctx, chromedp.Navigate(page+"/#/"))
		waitFor(t, ctx, "the list by id", `document.querySelector("#meter-sort").value === "id" && document.querySelectorAll("#meter-rows tr").length === 50`)
	})

	t.Run("StaleWhenStreamDrops", func(t *testing.T) {
		waitFor(t, ctx, "the live stream", `!document.body.classList.contains("stale") && document.querySelector("#conn").textContent === "live"`)
		proxy.cut()
		waitFor(t, ctx, "stale numbers", `document.body.classList.contains("stale") && !document.querySelector("#stale-note").hidden &&
			getComputedStyle(document.querySelector("#meters-registered")).opacity < 1`)
		proxy.restore()
		waitFor(t, ctx, "live numbers again", `!document.body.classList.contains("stale") && document.querySelector("#stale-note").hidden`)
	})

	t.Run("YearRange", func(t *testing.T) {
		// Three days of energy before the live meter's reading.
		storeReadings(t, st, live, k, reg{time.Now().Add(-72 * time.Hour), 0, 0})
		choose(t, ctx, "#fleet-range", "1y")
		waitFor(t, ctx, "a year in days", `location.hash.includes("range=1y") && /per 1d bucket/.test(document.querySelector("#power-hint").textContent) &&
			document.querySelector("#power-chart canvas")`)
		days := eval[int](t, ctx, `(() => { const m = document.querySelector("#power-hint").textContent.match(/(\d+) buckets? without/); return m ? +m[1] : 0; })()`)
		if days < 360 || days > 364 {
			t.Errorf("%d daily buckets of the year without readings, want all but the 3 or 4 with energy", days)
		}
		choose(t, ctx, "#fleet-range", "30m")
		waitFor(t, ctx, "the last 30 minutes", `/per 1m bucket/.test(document.querySelector("#power-hint").textContent)`)
	})

	t.Run("PhoneDark", func(t *testing.T) {
		act(t, ctx,
			chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile),
			chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
				_, err := cdp.Call(ctx, tg, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
					Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}},
				})
				return err
			}),
			chromedp.Navigate(page+"/#/?x=1"), chromedp.Reload())
		for _, view := range []struct{ name, hash, ready string }{
			{"fleet", "#/", `document.querySelectorAll("#meter-rows tr").length === 50 && document.querySelector("#power-chart canvas")`},
			{"meter", fmt.Sprintf("#/meters/%d", live), `document.querySelector("#reading-rows td.num") && document.querySelector("#consumption-chart canvas")`},
		} {
			act(t, ctx, chromedp.Navigate(page+"/"+view.hash))
			waitFor(t, ctx, "the "+view.name+" view", view.ready)
			got := eval[[]float64](t, ctx, `(() => {
				const bg = getComputedStyle(document.body).backgroundColor.match(/\d+/g).slice(0, 3).map(Number);
				const widest = Math.max(...[...document.querySelectorAll("main:not([hidden]) table, main:not([hidden]) .panel")].map((e) => e.getBoundingClientRect().right));
				return [innerWidth, document.documentElement.scrollWidth, widest, bg[0] + bg[1] + bg[2]];
			})()`)
			if got[0] != 390 || got[1] > 390 || got[2] > 390 {
				t.Errorf("%s view at 390 px: viewport %g, page %g wide, rightmost table or panel edge at %g; want all within 390", view.name, got[0], got[1], got[2])
			}
			if got[3] > 150 {
				t.Errorf("%s view in the dark scheme: background brightness %g of 765, want dark", view.name, got[3])
			}
			shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
			if err != nil {
				t.Fatal(err)
			}
			save(t, screenshotPath(t, "dashboard-phone-dark-"+view.name+".png"), shot)
		}
	})
}

// TestDashboardEmptyFleet opens the dashboard of a server without meters:
// it says how to register one.
func TestDashboardEmptyFleet(t *testing.T) {
	ctx := browser(t)
	_, admin, _ := serveReal(t)
	act(t, ctx, chromedp.Navigate(admin+"/"))
	waitFor(t, ctx, "the empty fleet", `!document.querySelector("#empty-fleet").hidden`)
	text := eval[string](t, ctx, `document.querySelector("#empty-fleet").textContent + document.querySelector("#meter-rows").textContent`)
	for _, want := range []string{"curl -s " + admin + "/register", `"base64PublicKey"`, "smartmeters simulate", "No meters yet"} {
		if !strings.Contains(text, want) {
			t.Errorf("empty fleet says %q; want %q in it", text, want)
		}
	}
}
