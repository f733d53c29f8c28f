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
		waitFor(t, ctx, "the 6 h range", `document.querySelector("#meter-range").value === "6h" && document.querySelector("#consumption-note").textContent.includes("5m buckets")`)
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
		waitFor(t, ctx, "the zoom", `location.hash.includes("from=") && document.querySelector("#meter-range").value === "custom" && document.querySelector("#consumption-note").textContent.includes("5m buckets")`)
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
