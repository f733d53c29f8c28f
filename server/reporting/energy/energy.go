// Package energy turns cumulative meter registers into energy per time
// bucket. It is pure arithmetic: no I/O, no clock.
//
// A meter's registers are sampled at its readings; between two consecutive
// readings the register is taken to rise linearly in time. The energy of a
// bucket is then the register at its end minus the register at its start,
// and the energy of a segment between two readings is spread over the
// buckets it overlaps in proportion to the overlap: both give the same
// figure for one meter.
package energy

import (
	"math"
	"time"

	"smartmeters/crypto"
)

// Bucket is the energy imported (WhIn) and exported (WhOut) in [Start,
// End). Complete is false, and the energy zero, when a register cannot be
// interpolated at one of the bucket's edges: no reading at or before it, or
// none at or after it.
type Bucket struct {
	Start, End  time.Time
	WhIn, WhOut float64
	Complete    bool
}

// Apportion turns one meter's cumulative registers into energy per bucket
// of width b over [from, to), which must span whole buckets. rs must be in
// time order and include the readings just outside the window, as
// store.RegisterSeries returns them. Each register is interpolated
// linearly at every bucket edge between the two readings that straddle it
// (or taken as is from a reading exactly on it); a bucket's energy is the
// difference between its edges. One pass over rs serves all edges.
func Apportion(rs []crypto.Reading, from, to time.Time, b time.Duration) []Bucket {
	n := int(to.Sub(from) / b)
	out := make([]Bucket, n)
	j := 0 // first reading at or after the current edge
	prevIn, prevOut, prevOK := registersAt(rs, &j, from.UnixMilli())
	for i := range out {
		start := from.Add(time.Duration(i) * b)
		end := start.Add(b)
		in, outW, ok := registersAt(rs, &j, end.UnixMilli())
		out[i] = Bucket{Start: start, End: end}
		if ok && prevOK {
			out[i].WhIn, out[i].WhOut, out[i].Complete = RoundWh(in-prevIn), RoundWh(outW-prevOut), true
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

// Fleet sums the energy of many meters per bucket of width B starting at
// From: each pair of consecutive readings of a meter is a segment whose
// register difference is spread over the buckets it overlaps.
type Fleet struct {
	from, bm int64        // Unix milliseconds
	Buckets  [][2]float64 // Wh in, Wh out per bucket
}

// NewFleet returns an empty sum over n buckets of width b from from.
func NewFleet(from time.Time, b time.Duration, n int) *Fleet {
	return &Fleet{from: from.UnixMilli(), bm: b.Milliseconds(), Buckets: make([][2]float64, n)}
}

// AddSegment adds the energy of the segment between consecutive readings p
// and r of one meter (p before r) to the buckets it overlaps, in proportion
// to the overlap.
func (f *Fleet) AddSegment(p, r crypto.Reading) {
	span := float64(r.Timestamp - p.Timestamp)
	dIn, dOut := float64(r.WhIn-p.WhIn), float64(r.WhOut-p.WhOut)
	first := max(floorDiv(p.Timestamp-f.from, f.bm), 0)
	last := min(floorDiv(r.Timestamp-1-f.from, f.bm), int64(len(f.Buckets))-1)
	for k := first; k <= last; k++ {
		start := f.from + k*f.bm
		overlap := float64(min(r.Timestamp, start+f.bm) - max(p.Timestamp, start))
		if overlap <= 0 {
			continue
		}
		f.Buckets[k][0] += dIn * overlap / span
		f.Buckets[k][1] += dOut * overlap / span
	}
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// RoundWh rounds to a milliwatt-hour, well below any meter's resolution, so
// that float noise does not show.
func RoundWh(wh float64) float64 {
	return math.Round(wh*1000) / 1000
}
