package reporting

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"smartmeters/store"
)

// Event stream timing: a fleet event every fleetEventEvery; each write may
// take at most eventWriteTimeout, past which the client is dropped; the
// store's counts in the fleet event are refreshed at most every
// fleetCountsTTL, whatever the number of clients.
const (
	fleetEventEvery   = time.Second
	eventWriteTimeout = 10 * time.Second
	fleetCountsTTL    = 5 * time.Second
)

// fleetEventJSON is the data of an SSE "fleet" event.
type fleetEventJSON struct {
	At time.Time `json:"at"`
	fleetFigures
	// SkippedReadings counts the readings this client was not sent since
	// it connected, because they came faster than the per-client limit.
	SkippedReadings int64 `json:"skippedReadings"`
}

// handleEvents streams Server-Sent Events: GET /events. "reading" events
// carry accepted readings, at most maxReadingEventsPerSecond a second per
// client (the rest are counted in the next fleet event's skippedReadings);
// a "fleet" event each second carries the fleet figures. Every event's id
// names the latest reading event the client has had; a client that
// reconnects with it as Last-Event-ID is first sent the reading events it
// missed that the hub still keeps. The stream ends
// when the client goes away, when the server shuts down, or when the client
// reads too slowly.
func (a *API) handleEvents(c echo.Context) error {
	req := c.Request()
	ctx := req.Context()
	res := c.Response()
	h := res.Header()
	h.Set(echo.HeaderContentType, "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	res.WriteHeader(http.StatusOK)

	rc := http.NewResponseController(res)
	hb := &a.live.hub
	// pos is the number of the latest reading event this client has had
	// or is not to have: every event carries it as its id, so that a
	// client resuming with Last-Event-ID misses nothing the hub still keeps.
	var pos uint64
	send := func(event string, data any) bool {
		b, err := json.Marshal(data)
		if err != nil {
			return false
		}
		// Each event moves the deadline: the server's WriteTimeout would
		// otherwise end every stream after 30 seconds.
		if err := rc.SetWriteDeadline(time.Now().Add(eventWriteTimeout)); err != nil {
			a.logger.DebugContext(ctx, "events: no write deadline", "err", err)
		}
		if _, err := fmt.Fprintf(res, "id: %s\nevent: %s\ndata: %s\n\n", hb.eventID(pos), event, b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}

	sub, start := hb.subscribe()
	defer hb.unsubscribe(sub)
	missed, lost := hb.since(req.Header.Get("Last-Event-ID"), start)
	sub.skipped.Add(int64(lost))
	stop := a.live.shutdownSignal(req)
	tick := time.NewTicker(fleetEventEvery)
	defer tick.Stop()
	for _, ev := range missed {
		pos = ev.seq
		if !send("reading", ev) {
			return nil
		}
	}
	pos = start
	if !send("fleet", a.fleetEvent(ctx, sub)) {
		return nil
	}
	for {
		select {
		case ev := <-sub.events:
			if ev.seq <= start {
				continue // kept before this client subscribed, and replayed
			}
			pos = ev.seq
			if !send("reading", ev) {
				return nil
			}
		case <-tick.C:
			if !send("fleet", a.fleetEvent(ctx, sub)) {
				return nil
			}
		case <-sub.gone:
			a.logger.InfoContext(ctx, "events: slow client dropped", "remote", c.RealIP())
			return nil
		case <-stop:
			return nil
		case <-ctx.Done():
			return nil
		}
	}
}

func (a *API) fleetEvent(ctx context.Context, sub *subscriber) fleetEventJSON {
	now := a.now().UTC()
	ev := fleetEventJSON{At: now, SkippedReadings: sub.skipped.Load()}
	a.live.fill(&ev.fleetFigures, now)
	c, _ := a.meterCounts(ctx, now) // on an error, the last counts
	ev.setCounts(c, a.silentAfter)
	return ev
}

// fleetCounts caches the store's meter counts for the event stream and
// the smartmeters_meters gauge.
type fleetCounts struct {
	mu     sync.Mutex
	at     time.Time
	counts store.MeterCounts
	err    error // of the last refresh
}

// meterCounts returns the meters by state as of now, asking the store at
// most every fleetCountsTTL. When the last refresh failed it returns the
// last counts it had with that error.
func (a *API) meterCounts(ctx context.Context, now time.Time) (store.MeterCounts, error) {
	fc := &a.live.fleetCounts
	fc.mu.Lock()
	defer fc.mu.Unlock()
	if !fc.at.IsZero() && now.Sub(fc.at) < fleetCountsTTL {
		return fc.counts, fc.err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	c, err := a.store.CountMeterStates(ctx, now.Add(-a.silentAfter))
	if err != nil {
		a.logger.WarnContext(ctx, "count meters", "err", err)
	} else {
		fc.counts = c
	}
	fc.at, fc.err = now, err
	return fc.counts, fc.err
}

// shutdownSignal returns a channel that is closed when the http.Server
// serving req starts shutting down, so that event streams end instead of
// holding the shutdown up until its timeout. Without an http.Server (as
// under a bare handler in tests) it returns nil, which never fires.
func (l *Live) shutdownSignal(req *http.Request) <-chan struct{} {
	hs, ok := req.Context().Value(http.ServerContextKey).(*http.Server)
	if !ok {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if ch, ok := l.shutdown[hs]; ok {
		return ch
	}
	ch := make(chan struct{})
	l.shutdown[hs] = ch
	hs.RegisterOnShutdown(func() { close(ch) })
	return ch
}
