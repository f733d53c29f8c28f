package reporting

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/labstack/echo/v4"

	"smartmeters/server/api"
	"smartmeters/store"
)

// Meter states, as the API and the dashboard show them.
const (
	stateReporting = "reporting" // a reading within the window, none rejected since
	stateSilent    = "silent"    // no reading within the window
	stateRejected  = "rejected"  // a reading rejected within the window
	stateRevoked   = "revoked"   // the meter's key is revoked, whatever its readings
)

// stateActivity is what the store can select of each state that ?state=
// asks for; meterOut decides the rest (a recent rejection is known only
// to this process).
var stateActivity = map[string]store.Activity{
	stateReporting: store.ReportedSince,
	stateSilent:    store.SilentSince,
	stateRejected:  store.AnyActivity,
	stateRevoked:   store.Revoked,
}

type meterJSON struct {
	ID            int64           `json:"id"`
	Username      string          `json:"username"`
	Algorithm     string          `json:"algorithm"`
	Fingerprint   string          `json:"fingerprint"`
	RegisteredAt  time.Time       `json:"registeredAt"`
	State         string          `json:"state"`
	LastReading   *readingJSONOut `json:"lastReading"`
	LastRejection *rejectionJSON  `json:"lastRejection"`
	// InvalidSignatures counts the reports that named the meter's key with
	// a signature that did not verify, since this process started: forgery
	// attempts, or a meter that signs wrongly. They are not the meter's
	// rejections and do not change its state.
	InvalidSignatures *invalidSignaturesJSON `json:"invalidSignatures"`
}

type readingJSONOut struct {
	Timestamp       time.Time `json:"timestamp"`
	WhIn            int64     `json:"whIn"`
	WhOut           int64     `json:"whOut"`
	ReceivedAt      time.Time `json:"receivedAt"`
	Base64Signature string    `json:"base64Signature,omitempty"`
}

type invalidSignaturesJSON struct {
	Count  int64     `json:"count"`
	LastAt time.Time `json:"lastAt"`
}

type rejectionJSON struct {
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
}

func readingOut(r store.Reading) *readingJSONOut {
	out := &readingJSONOut{Timestamp: r.Time(), WhIn: r.WhIn, WhOut: r.WhOut, ReceivedAt: r.ReceivedAt}
	if len(r.Signature) > 0 {
		out.Base64Signature = base64.StdEncoding.EncodeToString(r.Signature)
	}
	return out
}

// meterOut renders ms with its state as of now.
func (a *API) meterOut(ms store.MeterSummary, now time.Time, window time.Duration) meterJSON {
	out := meterJSON{
		ID:           ms.ID,
		Username:     ms.Username,
		Algorithm:    ms.Algorithm,
		Fingerprint:  ms.Fingerprint.String(),
		RegisteredAt: ms.RegisteredAt,
		State:        stateSilent,
	}
	if ms.LastReading != nil {
		out.LastReading = readingOut(*ms.LastReading)
		if now.Sub(ms.LastReading.Time()) <= window {
			out.State = stateReporting
		}
	}
	if f, ok := a.live.forgeriesOf(ms.ID); ok {
		out.InvalidSignatures = &invalidSignaturesJSON{Count: f.count, LastAt: f.last}
	}
	if rej, ok := a.live.lastRejection(ms.ID); ok {
		out.LastRejection = &rejectionJSON{Reason: rej.reason, At: rej.at}
		if now.Sub(rej.at) <= window && (ms.LastReading == nil || !ms.LastReading.ReceivedAt.After(rej.at)) {
			out.State = stateRejected
		}
	}
	if ms.RevokedAt != nil {
		out.State = stateRevoked
	}
	return out
}

type meterListJSON struct {
	Meters []meterJSON `json:"meters"`
	// Next is the after cursor of the next page; absent on the last page.
	Next *int64 `json:"next,omitempty"`
	// NextState is, sorted by state, the state the next page goes on in:
	// its afterState.
	NextState string `json:"nextState,omitempty"`
}

// stateOrder is the order of ?sort=state: the meters that need a look
// first.
var stateOrder = []string{stateSilent, stateRejected, stateRevoked, stateReporting}

// handleListMeters lists meters in id order, or by state and then id:
// GET /meters?username=&state=&sort=id|state&after=&afterState=&limit=&window=.
func (a *API) handleListMeters(c echo.Context) error {
	q := queryParams{c: c}
	f := store.MeterFilter{
		UsernamePrefix: q.usernamePrefix("username"),
		AfterID:        q.int("after", 0, 0, 1<<62),
		Limit:          int(q.int("limit", defaultPageLimit, 1, maxPageLimit)),
	}
	window := q.duration("window", a.silentAfter, time.Second, 30*24*time.Hour)
	state, sortBy, afterState := c.QueryParam("state"), c.QueryParam("sort"), c.QueryParam("afterState")
	if q.err != nil {
		return q.err
	}
	if _, ok := stateActivity[state]; state != "" && !ok {
		return api.Errorf(api.InvalidParameter, "state: %q is not one of reporting, silent, rejected, revoked", state)
	}
	if sortBy != "" && sortBy != "id" && sortBy != "state" {
		return api.Errorf(api.InvalidParameter, "sort: %q is not id or state", sortBy)
	}
	states := []string{state} // "" is every state, in id order
	if sortBy == "state" && state == "" {
		from := 0
		if afterState != "" {
			from = slices.Index(stateOrder, afterState)
			if from < 0 {
				return api.Errorf(api.InvalidParameter, "afterState: %q is not one of reporting, silent, rejected, revoked", afterState)
			}
		}
		states = stateOrder[from:]
	}
	now := a.now()
	f.Since = now.Add(-window)
	want := f.Limit
	out := meterListJSON{Meters: []meterJSON{}}
	for i, st := range states {
		if i > 0 {
			f.AfterID = 0 // the next state from its start
		}
		matched, more, err := a.listState(c.Request().Context(), f, st, want-len(out.Meters), now, window)
		if err != nil {
			return err
		}
		out.Meters = append(out.Meters, matched...)
		if len(out.Meters) == want && (more || i < len(states)-1) {
			next := out.Meters[want-1].ID
			out.Next = &next
			if len(states) > 1 {
				out.NextState = st
				if !more { // this state is done: the next page starts the next one
					next, out.NextState = 0, states[i+1]
					out.Next = &next
				}
			}
			break
		}
	}
	return c.JSON(http.StatusOK, out)
}

// listState returns up to want meters of f in state (any when ""), in id
// order, and whether more follow. The store selects by time and key; a
// state that only this process knows (a recent rejection) is decided
// here, reading on until the page is full.
func (a *API) listState(ctx context.Context, f store.MeterFilter, state string, want int, now time.Time, window time.Duration) ([]meterJSON, bool, error) {
	if state != "" {
		f.Activity = stateActivity[state]
	}
	// One more than asked tells whether there is more.
	f.Limit = want + 1
	var matched []meterJSON
	for len(matched) <= want {
		ms, err := a.store.ListMeters(ctx, f)
		if err != nil {
			return nil, false, err
		}
		for _, m := range ms {
			if mj := a.meterOut(m, now, window); state == "" || mj.State == state {
				matched = append(matched, mj)
			}
		}
		if len(ms) < f.Limit {
			break
		}
		// Reading on for a filter: in the largest pages, so that a sparse
		// state costs few queries however small the page asked for.
		f.AfterID, f.Limit = ms[len(ms)-1].ID, maxPageLimit
	}
	if len(matched) > want {
		return matched[:want], true, nil
	}
	return matched, false, nil
}

// handleMeter shows one meter with its latest reading: GET /meters/{id}.
func (a *API) handleMeter(c echo.Context) error {
	id, err := api.ParseMeterID(c.Param("id"))
	if err != nil {
		return err
	}
	q := queryParams{c: c}
	window := q.duration("window", a.silentAfter, time.Second, 30*24*time.Hour)
	if q.err != nil {
		return q.err
	}
	ms, err := a.meterSummary(c, id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, a.meterOut(ms, a.now(), window))
}

func (a *API) meterSummary(c echo.Context, id int64) (store.MeterSummary, error) {
	ms, err := a.store.MeterSummaryByID(c.Request().Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return ms, api.Errorf(api.NotFound, "no meter %d", id)
	}
	return ms, err
}

type readingPageJSON struct {
	MeterID  int64             `json:"meterId"`
	From     time.Time         `json:"from"`
	To       time.Time         `json:"to"`
	Order    string            `json:"order"`
	Readings []*readingJSONOut `json:"readings"`
	// Next is where the next page starts: its from in ascending order,
	// its to in descending order; absent on the last page.
	Next *time.Time `json:"next,omitempty"`
}

// handleMeterReadings pages through a meter's readings in time order:
// GET /meters/{id}/readings?from=&to=&limit=&order=. from is inclusive, to
// exclusive; they default to the last 24 hours. order=desc gives the
// newest first. Besides next in the body, a Link header (RFC 8288) with
// rel="next" gives the next page's URL.
func (a *API) handleMeterReadings(c echo.Context) error {
	id, err := api.ParseMeterID(c.Param("id"))
	if err != nil {
		return err
	}
	q := queryParams{c: c}
	to := q.time("to", a.now().Add(time.Millisecond))
	from := q.time("from", to.Add(-24*time.Hour))
	limit := int(q.int("limit", defaultPageLimit, 1, maxPageLimit))
	order := c.QueryParam("order")
	if q.err != nil {
		return q.err
	}
	if order == "" {
		order = "asc"
	}
	if order != "asc" && order != "desc" {
		return api.Errorf(api.InvalidParameter, "order: %q is neither asc nor desc", order)
	}
	if err := checkWindow(from, to); err != nil {
		return err
	}
	if _, err := a.meterSummary(c, id); err != nil {
		return err
	}
	list := a.store.ReadingsBetween
	if order == "desc" {
		list = a.store.NewestReadingsBetween
	}
	rs, err := list(c.Request().Context(), id, from.UnixMilli(), to.UnixMilli(), limit+1)
	if err != nil {
		return err
	}
	out := readingPageJSON{MeterID: id, From: from, To: to, Order: order, Readings: make([]*readingJSONOut, 0, min(len(rs), limit))}
	for i, r := range rs {
		if i == limit {
			// Ascending, the next page starts after the last reading;
			// descending, it ends (exclusive) at the last one.
			next, bound := rs[i-1].Time().Add(time.Millisecond), "from"
			if order == "desc" {
				next, bound = rs[i-1].Time(), "to"
			}
			out.Next = &next
			link := *c.Request().URL
			qv := link.Query()
			qv.Set("from", from.Format(time.RFC3339Nano))
			qv.Set("to", to.Format(time.RFC3339Nano))
			qv.Set(bound, next.Format(time.RFC3339Nano))
			link.RawQuery = qv.Encode()
			c.Response().Header().Set("Link", fmt.Sprintf(`<%s>; rel="next"`, link.RequestURI()))
			break
		}
		out.Readings = append(out.Readings, readingOut(r))
	}
	return c.JSON(http.StatusOK, out)
}
