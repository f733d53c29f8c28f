package energy

import (
	"math"
	"math/bits"
	"time"

	"smartmeters/crypto"
)

// Grid is the width of a fleet rollup bucket: five minutes since the Unix
// epoch. It is the finest bucket the fleet views ask rollups for, and every
// UTC offset in use is a whole number of them, so that hours, days and
// months, in UTC or in any time zone, are whole runs of grid buckets.
const Grid = 5 * time.Minute

// GridMillis is Grid in milliseconds.
const GridMillis = int64(Grid / time.Millisecond)

// GridFloor returns the start of the grid bucket that holds ms, a Unix
// millisecond.
func GridFloor(ms int64) int64 { return floorDiv(ms, GridMillis) * GridMillis }

// Wide is an integer of 128 bits: the sum of many buckets' energy, exact
// however many meters add registers near 2^63 Wh into it. The zero value
// is zero.
type Wide struct {
	hi int64
	lo uint64
}

// WideOf returns v as a Wide.
func WideOf(v int64) Wide { return Wide{hi: v >> 63, lo: uint64(v)} }

// Add returns w+v.
func (w Wide) Add(v Wide) Wide {
	lo, carry := bits.Add64(w.lo, v.lo, 0)
	return Wide{hi: w.hi + v.hi + int64(carry), lo: lo}
}

// Neg returns -w.
func (w Wide) Neg() Wide {
	lo, borrow := bits.Sub64(0, w.lo, 0)
	return Wide{hi: -w.hi - int64(borrow), lo: lo}
}

// Int64 returns w held within the int64 limits.
func (w Wide) Int64() int64 {
	switch {
	case w.hi > 0 || (w.hi == 0 && w.lo > math.MaxInt64):
		return math.MaxInt64
	case w.hi < -1 || (w.hi == -1 && w.lo < 1<<63):
		return math.MinInt64
	}
	return int64(w.lo)
}

// Split returns w as high·2^32 + low with 0 <= low < 2^32: two columns of
// 64 bits that a database can add up in SQL without overflow, whose sums
// Join puts back together. |w| must be below 2^95.
func (w Wide) Split() (high, low int64) {
	return w.hi<<32 | int64(w.lo>>32), int64(w.lo & math.MaxUint32)
}

// Join returns high·2^32 + low, the inverse of Split, for sums of the
// halves Split gives.
func Join(high, low int64) Wide {
	h := WideOf(high)
	h = Wide{hi: h.hi<<32 | int64(h.lo>>32), lo: h.lo << 32}
	return h.Add(WideOf(low))
}

// Change is a change to the fleet's energy per grid bucket, keyed by the
// bucket's start in Unix milliseconds: Wh in and Wh out.
type Change map[int64]*[2]Wide

// AddSeries adds the energy of every segment between consecutive readings
// of rs, which must be one meter's in time order, or subtracts it when
// sub is set.
func (c Change) AddSeries(rs []crypto.Reading, sub bool) {
	for i := 1; i < len(rs); i++ {
		c.addSegment(rs[i-1], rs[i], sub)
	}
}

// addSegment spreads the register rise from p to r over the grid buckets
// the segment overlaps, exactly as Fleet.AddSegment does for any bucket
// made of whole grid buckets: the share of a part of the segment is the
// interpolated register at its end minus that at its start, so the shares
// of the grid buckets of a wider bucket add up to that bucket's share.
func (c Change) addSegment(p, r crypto.Reading, sub bool) {
	for start := GridFloor(p.Timestamp); start < r.Timestamp; start += GridMillis {
		lo, hi := max(p.Timestamp, start), min(r.Timestamp, start+GridMillis)
		in, out := Share(p, r, lo, hi)
		if in == 0 && out == 0 {
			continue
		}
		win, wout := WideOf(in), WideOf(out)
		if sub {
			win, wout = win.Neg(), wout.Neg()
		}
		e := c[start]
		if e == nil {
			e = new([2]Wide)
			c[start] = e
		}
		e[0], e[1] = e[0].Add(win), e[1].Add(wout)
	}
}
