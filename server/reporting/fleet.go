package reporting

import (
	"context"
	"encoding/csv"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"smartmeters/crypto"
	"smartmeters/store"
	"smartmeters/store/energy"
)

// Fleet energy defaults: the last hour in 5-minute buckets, which is what a
// live power chart shows and keeps /fleet cheap however long the history
// is. Wider windows are asked for with from and to.
const (
	defaultFleetBucket = "5m"
	defaultFleetSpan   = time.Hour
	// fleetLookback is how far outside the window readings are taken to
	// apportion the energy at its edges.
	fleetLookback = 30 * time.Minute
)

// fleetFigures are the fleet's counts, shared by GET /fleet and the SSE
// "fleet" event.
type fleetFigures struct {
	MetersRegistered  int64            `json:"metersRegistered"`
	MetersReporting   int64            `json:"metersReporting"`
	MetersSilent      int64            `json:"metersSilent"`
	MetersRevoked     int64            `json:"metersRevoked"`
	ReportingWindow   string           `json:"reportingWindow"`
	ReadingsPerSecond float64          `json:"readingsPerSecond"`
	ReadingsStored    int64            `json:"readingsStored"`
	Rejected          map[string]int64 `json:"rejected"`
	RejectedTotal     int64            `json:"rejectedTotal"`
}

type fleetJSON struct {
	GeneratedAt time.Time `json:"generatedAt"`
	fleetFigures
	Energy fleetEnergyJSON `json:"energy"`
}

type fleetEnergyJSON struct {
	Bucket  string            `json:"bucket"`
	From    time.Time         `json:"from"`
	To      time.Time         `json:"to"`
	Buckets []fleetBucketJSON `json:"buckets"`
}

// fleetBucketJSON is the fleet's energy in one bucket and the mean power it
// stands for. Partial marks the bucket still in progress.
type fleetBucketJSON struct {
	Start    time.Time `json:"start"`
	End      time.Time `json:"end"`
	WhIn     int64     `json:"whIn"`
	WhOut    int64     `json:"whOut"`
	WattsIn  float64   `json:"wattsIn"`
	WattsOut float64   `json:"wattsOut"`
	Partial  bool      `json:"partial"`
}

// handleFleet reports the fleet's figures:
// GET /fleet?window=60s&bucket=5m&from=&to=.
func (a *API) handleFleet(c echo.Context) error {
	q := queryParams{c: c}
	window := q.duration("window", a.silentAfter, time.Second, 24*time.Hour)
	now := a.now().UTC()
	b, edges, err := q.window(defaultFleetBucket, defaultFleetSpan, now)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	out := fleetJSON{GeneratedAt: now}
	counts, err := a.store.CountMeterStates(ctx, now.Add(-window))
	if err != nil {
		return err
	}
	out.setCounts(counts, window)
	a.live.fill(&out.fleetFigures, now)
	sums, err := a.fleetEnergy(ctx, edges)
	if err != nil {
		return err
	}
	out.Energy = fleetEnergyOut(b.name, edges, now, sums)
	return c.JSON(http.StatusOK, out)
}

// setCounts copies the meter counts of window into f.
func (f *fleetFigures) setCounts(c store.MeterCounts, window time.Duration) {
	f.MetersRegistered, f.MetersReporting, f.MetersSilent, f.MetersRevoked = c.Registered, c.Reporting, c.Silent, c.Revoked
	f.ReportingWindow = window.String()
}

// fill copies the live figures into f.
func (l *Live) fill(f *fleetFigures, now time.Time) {
	f.Rejected = map[string]int64{}
	if l == nil {
		return
	}
	f.ReadingsPerSecond = l.readingsPerSecond(now)
	f.ReadingsStored = l.stored.Load()
	f.Rejected = l.rejectedByReason()
	for _, n := range f.Rejected {
		f.RejectedTotal += n
	}
}

// fleetEnergyOut renders the energy per bucket between edges.
func fleetEnergyOut(name string, edges []time.Time, now time.Time, sums [][2]int64) fleetEnergyJSON {
	out := fleetEnergyJSON{Bucket: name, From: edges[0], To: edges[len(edges)-1], Buckets: make([]fleetBucketJSON, len(sums))}
	for i, e := range sums {
		start, end := edges[i], edges[i+1]
		hours := end.Sub(start).Hours()
		fb := fleetBucketJSON{Start: start, End: end, Partial: end.After(now)}
		fb.WhIn, fb.WhOut = e[0], e[1]
		fb.WattsIn, fb.WattsOut = roundMilli(float64(e[0])/hours), roundMilli(float64(e[1])/hours)
		out.Buckets[i] = fb
	}
	return out
}

// fleetEnergy returns the energy all meters imported and exported between
// consecutive edges.
//
// Each pair of consecutive readings of a meter is a segment over which the
// register difference is spread evenly in time; a bucket gets the share of
// every segment that overlaps it. For one meter that is the same figure as
// interpolating the registers at the bucket's edges and subtracting (see
// energy.Apportion).
//
// Buckets made of whole 5-minute buckets (all but 1m, and days and months
// of every time zone in use today) come from the rollups, which the store
// keeps as readings arrive and completes with those not yet rolled up:
// their cost is the buckets', not the readings'. Others are summed from
// the readings in the window, in timestamp order, taken from
// fleetLookback before it and after it, so that segments straddling its
// edges count; there a meter whose readings are further apart than that
// contributes nothing to the edge buckets.
func (a *API) fleetEnergy(ctx context.Context, edges []time.Time) ([][2]int64, error) {
	ms := make([]int64, len(edges))
	onGrid := true
	for i, e := range edges {
		ms[i] = e.UnixMilli()
		onGrid = onGrid && ms[i]%energy.GridMillis == 0
	}
	if onGrid {
		return a.store.FleetEnergy(ctx, ms)
	}
	sum := energy.NewFleetEdges(edges)
	last := make(map[int64]crypto.Reading)
	err := a.store.EachRegisterBetween(ctx, ms[0]-fleetLookback.Milliseconds(), ms[len(ms)-1]+fleetLookback.Milliseconds(),
		func(id int64, r crypto.Reading) error {
			prev, ok := last[id]
			last[id] = r
			if ok && r.Timestamp > prev.Timestamp {
				sum.AddSegment(prev, r)
			}
			return nil
		})
	return sum.Buckets, err
}

// roundMilli rounds a mean power to a milliwatt, so that float noise does
// not show.
func roundMilli(w float64) float64 {
	return math.Round(w*1000) / 1000
}

// handleFleetCSV exports the fleet's energy per bucket as CSV: GET
// /fleet/consumption.csv?from=&to=&bucket=&tz=, with the parameters and
// defaults of /meters/{id}/consumption (the last 24 hours in 1h buckets).
// A row is a bucket: its start and end (RFC 3339, in tz), the Wh imported
// and exported, and whether the bucket is still in progress.
func (a *API) handleFleetCSV(c echo.Context) error {
	q := queryParams{c: c}
	now := a.now().UTC()
	b, edges, err := q.window("1h", 24*time.Hour, now)
	if err != nil {
		return err
	}
	sums, err := a.fleetEnergy(c.Request().Context(), edges)
	if err != nil {
		return err
	}
	h := c.Response().Header()
	h.Set(echo.HeaderContentType, "text/csv; charset=utf-8")
	h.Set(echo.HeaderContentDisposition, fmt.Sprintf(`attachment; filename="fleet-%s-%s.csv"`, b.name, edges[0].Format("20060102")))
	c.Response().WriteHeader(http.StatusOK)
	w := csv.NewWriter(c.Response())
	w.Write([]string{"start", "end", "wh_in", "wh_out", "partial"}) //nolint:errcheck // w.Error below
	for i, e := range sums {
		w.Write([]string{ //nolint:errcheck // w.Error below
			edges[i].Format(time.RFC3339), edges[i+1].Format(time.RFC3339),
			strconv.FormatInt(e[0], 10), strconv.FormatInt(e[1], 10), strconv.FormatBool(edges[i+1].After(now)),
		})
	}
	w.Flush()
	return w.Error()
}
