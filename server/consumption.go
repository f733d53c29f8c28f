package server

import (
	"math"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"smartmeters/crypto"
)

// energyBucketJSON is the energy of one bucket [start, end). WhIn and WhOut
// are null, and Complete false, when a register cannot be interpolated at
// one of the bucket's edges: no reading at or before it, or none at or
// after it.
type energyBucketJSON struct {
	Start    time.Time `json:"start"`
	End      time.Time `json:"end"`
	WhIn     *float64  `json:"whIn"`
	WhOut    *float64  `json:"whOut"`
	Complete bool      `json:"complete"`
}

type consumptionJSON struct {
	MeterID int64              `json:"meterId"`
	Bucket  string             `json:"bucket"`
	From    time.Time          `json:"from"`
	To      time.Time          `json:"to"`
	Buckets []energyBucketJSON `json:"buckets"`
	// Total sums the complete buckets.
	Total struct {
		WhIn  float64 `json:"whIn"`
		WhOut float64 `json:"whOut"`
	} `json:"total"`
}

// handleConsumption reports a meter's energy per bucket:
// GET /meters/{id}/consumption?from=&to=&bucket=15m|1h|1d (also 1m, 5m).
// The window is widened to whole buckets and defaults to the last 24 hours
// in 1h buckets.
func (s *Server) handleConsumption(c echo.Context) error {
	id, err := meterID(c)
	if err != nil {
		return err
	}
	q := queryParams{c: c}
	name, b := q.bucket("bucket", "1h")
	to := q.time("to", s.cfg.Now())
	from := q.time("from", to.Add(-24*time.Hour))
	if q.err != nil {
		return q.err
	}
	from, to, err = bucketWindow(from, to, b)
	if err != nil {
		return err
	}
	if _, err := s.meterSummary(c, id); err != nil {
		return err
	}
	rs, err := s.store.RegisterSeries(c.Request().Context(), id, from.UnixMilli(), to.UnixMilli())
	if err != nil {
		return err
	}
	out := consumptionJSON{MeterID: id, Bucket: name, From: from, To: to}
	out.Buckets = apportion(rs, from, to, b)
	for _, eb := range out.Buckets {
		if eb.Complete {
			out.Total.WhIn += *eb.WhIn
			out.Total.WhOut += *eb.WhOut
		}
	}
	out.Total.WhIn, out.Total.WhOut = roundWh(out.Total.WhIn), roundWh(out.Total.WhOut)
	return c.JSON(http.StatusOK, out)
}

// apportion turns cumulative registers into energy per bucket of width b
// over [from, to). rs must be in time order and include the readings just
// outside the window, as store.RegisterSeries returns them. Each register is
// interpolated linearly at every bucket edge between the two readings that
// straddle it (or taken as is from a reading exactly on it); a bucket's
// energy is the difference between its edges. One pass over rs serves all
// edges.
func apportion(rs []crypto.Reading, from, to time.Time, b time.Duration) []energyBucketJSON {
	n := int(to.Sub(from) / b)
	out := make([]energyBucketJSON, n)
	j := 0 // first reading at or after the current edge
	prevIn, prevOut, prevOK := registersAt(rs, &j, from.UnixMilli())
	for i := range out {
		start := from.Add(time.Duration(i) * b)
		end := start.Add(b)
		in, outW, ok := registersAt(rs, &j, end.UnixMilli())
		out[i] = energyBucketJSON{Start: start, End: end}
		if ok && prevOK {
			dIn, dOut := roundWh(in-prevIn), roundWh(outW-prevOut)
			out[i].WhIn, out[i].WhOut, out[i].Complete = &dIn, &dOut, true
		}
		prevIn, prevOut, prevOK = in, outW, ok
	}
	return out
}

// registersAt interpolates both registers at t (Unix milliseconds). *j is
// advanced to the first reading at or after t; edges must be asked for in
// increasing order.
func registersAt(rs []crypto.Reading, j *int, t int64) (whIn, whOut float64, ok bool) {
	for *j < len(rs) && rs[*j].Timestamp < t {
		*j++
	}
	if *j == len(rs) {
		return 0, 0, false
	}
	after := rs[*j]
	if after.Timestamp == t {
		return float64(after.WhIn), float64(after.WhOut), true
	}
	if *j == 0 {
		return 0, 0, false
	}
	before := rs[*j-1]
	span := float64(after.Timestamp - before.Timestamp)
	part := float64(t - before.Timestamp)
	whIn = float64(before.WhIn) + float64(after.WhIn-before.WhIn)*part/span
	whOut = float64(before.WhOut) + float64(after.WhOut-before.WhOut)*part/span
	return whIn, whOut, true
}

// roundWh rounds to a milliwatt-hour, well below any meter's resolution, so
// that float noise does not show.
func roundWh(wh float64) float64 {
	return math.Round(wh*1000) / 1000
}
