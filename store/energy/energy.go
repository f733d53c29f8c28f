// Package energy turns cumulative meter registers into energy per time
// bucket. It is pure arithmetic: no I/O, no clock.
//
// A meter's registers are sampled at its readings; between two consecutive
// readings a register is taken to rise linearly in time. The register at an
// instant between two readings is that line's value rounded down to a whole
// Wh, computed exactly in integers (the product of a register difference
// and a time can exceed 64 bits, so it is taken in 128). The energy of a
// bucket is the register at its end minus the register at its start, so
// every figure is a whole Wh, the buckets of a window add up exactly to the
// register difference across it, and a bucket's energy is exact however
// large the registers, up to 2^63-1 Wh.
package energy

import (
	"math"
	"math/bits"
	"sort"
	"time"

	"smartmeters/crypto"
)

// Bucket is the energy imported (WhIn) and exported (WhOut) in [Start,
// End), in Wh. Complete is false, and the energy zero, when a register
// cannot be placed at one of the bucket's edges: no reading at or before
// it, or none at or after it.
type Bucket struct {
	Start, End  time.Time
	WhIn, WhOut int64
	Complete    bool
}

// Interpolate returns the register at instant t of the line from (t0, w0)
// to (t1, w1), t0 <= t <= t1 and t0 < t1, rounded down to a whole Wh:
// w0 + floor((w1-w0)·(t-t0)/(t1-t0)), exact for any registers and times.
func Interpolate(t0, w0, t1, w1, t int64) int64 {
	if t <= t0 {
		return w0
	}
	if t >= t1 {
		return w1
	}
	span, part := uint64(t1-t0), uint64(t-t0)
	d := w1 - w0 // registers are 0 to 2^63-1, so this cannot overflow
	neg := d < 0
	ad := uint64(d)
	if neg {
		ad = uint64(-d)
	}
	hi, lo := bits.Mul64(ad, part)
	q, rem := bits.Div64(hi, lo, span) // hi < span, since part < span
	if !neg {
		return w0 + int64(q)
	}
	if rem != 0 {
		q++ // floor of a negative quotient
	}
	return w0 - int64(q)
}

// registersAt places both registers at t (Unix milliseconds) from rs, a
// meter's readings in time order. *j is advanced to the first reading at
// or after t; instants must be asked for in increasing order.
func registersAt(rs []crypto.Reading, j *int, t int64) (whIn, whOut int64, ok bool) {
	for *j < len(rs) && rs[*j].Timestamp < t {
		*j++
	}
	if *j == len(rs) {
		return 0, 0, false
	}
	after := rs[*j]
	if after.Timestamp == t {
		return after.WhIn, after.WhOut, true
	}
	if *j == 0 {
		return 0, 0, false
	}
	before := rs[*j-1]
	return Interpolate(before.Timestamp, before.WhIn, after.Timestamp, after.WhIn, t),
		Interpolate(before.Timestamp, before.WhOut, after.Timestamp, after.WhOut, t), true
}

// Apportion turns one meter's cumulative registers into energy per bucket
// of width b over [from, to), which must span whole buckets. rs must be in
// time order and include the readings just outside the window, as
// store.RegisterSeries returns them. One pass over rs serves all edges.
func Apportion(rs []crypto.Reading, from, to time.Time, b time.Duration) []Bucket {
	return ApportionEdges(rs, EvenEdges(from, to, b))
}

// EvenEdges returns the edges of the buckets of width b that make up
// [from, to).
func EvenEdges(from, to time.Time, b time.Duration) []time.Time {
	n := int(to.Sub(from) / b)
	edges := make([]time.Time, n+1)
	for i := range edges {
		edges[i] = from.Add(time.Duration(i) * b)
	}
	return edges
}

// ApportionEdges is Apportion for the buckets between consecutive edges,
// which must increase: days of a time zone, months.
func ApportionEdges(rs []crypto.Reading, edges []time.Time) []Bucket {
	if len(edges) < 2 {
		return []Bucket{}
	}
	out := make([]Bucket, len(edges)-1)
	j := 0 // first reading at or after the current edge
	prevIn, prevOut, prevOK := registersAt(rs, &j, edges[0].UnixMilli())
	for i := range out {
		start, end := edges[i], edges[i+1]
		in, outW, ok := registersAt(rs, &j, end.UnixMilli())
		out[i] = Bucket{Start: start, End: end}
		if ok && prevOK {
			out[i].WhIn, out[i].WhOut, out[i].Complete = in-prevIn, outW-prevOut, true
		}
		prevIn, prevOut, prevOK = in, outW, ok
	}
	return out
}

// Fleet sums the energy of many meters per bucket: each pair of
// consecutive readings of a meter is a segment, and a bucket gets the
// segment's register rise across the part of the segment inside it. For
// one meter that is exactly what Apportion gives a complete bucket. A sum
// that would pass 2^63-1 Wh stays there.
type Fleet struct {
	edges   []int64    // Unix milliseconds
	Buckets [][2]int64 // Wh in, Wh out per bucket
}

// NewFleet returns an empty sum over n buckets of width b from from.
func NewFleet(from time.Time, b time.Duration, n int) *Fleet {
	return NewFleetEdges(EvenEdges(from, from.Add(time.Duration(n)*b), b))
}

// NewFleetEdges returns an empty sum over the buckets between consecutive
// edges, which must increase.
func NewFleetEdges(edges []time.Time) *Fleet {
	f := &Fleet{edges: make([]int64, len(edges)), Buckets: make([][2]int64, max(len(edges)-1, 0))}
	for i, e := range edges {
		f.edges[i] = e.UnixMilli()
	}
	return f
}

// AddSegment adds the energy of the segment between consecutive readings p
// and r of one meter (p before r) to the buckets it overlaps.
func (f *Fleet) AddSegment(p, r crypto.Reading) {
	// The first bucket that ends after p.
	k := sort.Search(len(f.Buckets), func(k int) bool { return f.edges[k+1] > p.Timestamp })
	for ; k < len(f.Buckets) && f.edges[k] < r.Timestamp; k++ {
		lo, hi := max(p.Timestamp, f.edges[k]), min(r.Timestamp, f.edges[k+1])
		if hi <= lo {
			continue
		}
		in, out := Share(p, r, lo, hi)
		f.Buckets[k][0] = saturatingAdd(f.Buckets[k][0], in)
		f.Buckets[k][1] = saturatingAdd(f.Buckets[k][1], out)
	}
}

// Share returns the rise of both registers across [lo, hi] on the segment
// from reading p to reading r, p.Timestamp <= lo <= hi <= r.Timestamp: the
// interpolated registers at hi less those at lo.
func Share(p, r crypto.Reading, lo, hi int64) (whIn, whOut int64) {
	return Interpolate(p.Timestamp, p.WhIn, r.Timestamp, r.WhIn, hi) - Interpolate(p.Timestamp, p.WhIn, r.Timestamp, r.WhIn, lo),
		Interpolate(p.Timestamp, p.WhOut, r.Timestamp, r.WhOut, hi) - Interpolate(p.Timestamp, p.WhOut, r.Timestamp, r.WhOut, lo)
}

// saturatingAdd returns a+b, held at the int64 limits instead of wrapping.
func saturatingAdd(a, b int64) int64 {
	s := a + b
	switch {
	case a > 0 && b > 0 && s < 0:
		return math.MaxInt64
	case a < 0 && b < 0 && s >= 0:
		return math.MinInt64
	}
	return s
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}
