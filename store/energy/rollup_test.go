package energy_test

import (
	"cmp"
	"math"
	"math/big"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"smartmeters/crypto"
	"smartmeters/store/energy"
)

// TestWide checks the 128-bit sums against math/big: adding, negating,
// splitting into two columns, adding the columns up and joining them.
func TestWide(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	pick := func() int64 {
		switch rng.IntN(4) {
		case 0:
			return math.MaxInt64 - rng.Int64N(1000)
		case 1:
			return math.MinInt64 + rng.Int64N(1000)
		default:
			return rng.Int64() - rng.Int64()
		}
	}
	for range 2000 {
		var w energy.Wide
		want := new(big.Int)
		var highs, lows int64
		for range 1 + rng.IntN(50) {
			v := pick()
			d := energy.WideOf(v)
			if rng.IntN(3) == 0 {
				d = d.Neg()
				want.Sub(want, big.NewInt(v))
			} else {
				want.Add(want, big.NewInt(v))
			}
			w = w.Add(d)
			h, l := d.Split()
			if l < 0 || l > math.MaxUint32 {
				t.Fatalf("Split(%d) low %d is outside [0, 2^32)", v, l)
			}
			highs, lows = highs+h, lows+l
		}
		joined := energy.Join(highs, lows)
		clamped := want.Int64()
		switch {
		case want.Cmp(big.NewInt(math.MaxInt64)) > 0:
			clamped = math.MaxInt64
		case want.Cmp(big.NewInt(math.MinInt64)) < 0:
			clamped = math.MinInt64
		}
		if got := w.Int64(); got != clamped {
			t.Fatalf("sum %s held to int64 = %d, want %d", want, got, clamped)
		}
		if joined != w {
			t.Fatalf("sum %s: the columns joined give %v, the sum %v", want, joined, w)
		}
	}
}

// TestChangeMatchesFleet spreads random series over the grid, arriving in
// random order (each arrival the change it makes to the segments), and
// checks every wider bucket against Fleet, the computation over the whole
// series at once: the grid's buckets add up exactly to any bucket made of
// them.
func TestChangeMatchesFleet(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	from := time.Date(2026, 3, 29, 0, 0, 0, 0, time.UTC)
	for round := range 200 {
		var series [][]crypto.Reading
		for range 1 + rng.IntN(4) {
			series = append(series, gappySeries(rng, from))
		}
		for _, b := range []time.Duration{energy.Grid, 15 * time.Minute, time.Hour, 24 * time.Hour} {
			n := int(72 * time.Hour / b)
			want := energy.NewFleet(from, b, n)
			for _, rs := range series {
				for i := 1; i < len(rs); i++ {
					want.AddSegment(rs[i-1], rs[i])
				}
			}
			c := energy.Change{}
			for _, rs := range series {
				arrive(rng, c, rs)
			}
			got := make([][2]energy.Wide, n)
			for start, e := range c {
				k := (start - from.UnixMilli()) / b.Milliseconds()
				if start < from.UnixMilli() || k >= int64(n) {
					continue
				}
				got[k][0], got[k][1] = got[k][0].Add(e[0]), got[k][1].Add(e[1])
			}
			for k := range n {
				if g := [2]int64{got[k][0].Int64(), got[k][1].Int64()}; g != want.Buckets[k] {
					t.Fatalf("round %d, bucket %d of %s: change gives %v, fleet %v", round, k, b, g, want.Buckets[k])
				}
			}
		}
	}
}

// arrive adds the readings of rs to c one by one in random order, each
// by the change it makes to the segments of those that arrived before.
func arrive(rng *rand.Rand, c energy.Change, rs []crypto.Reading) {
	var have []crypto.Reading
	for _, i := range rng.Perm(len(rs)) {
		r := rs[i]
		at, _ := slices.BinarySearchFunc(have, r, func(a, b crypto.Reading) int { return cmp.Compare(a.Timestamp, b.Timestamp) })
		lo, hi := max(at-1, 0), min(at+1, len(have))
		old := slices.Clone(have[lo:hi])
		have = slices.Insert(have, at, r)
		c.AddSeries(have[lo:hi+1], false) // the segments through r
		c.AddSeries(old, true)            // less the one it splits
	}
}

// gappySeries returns one meter's readings over three days from from, in
// time order: steps of seconds to hours, now and then a gap, registers
// from small to near 2^63-1, now and then a jump across most of that.
func gappySeries(rng *rand.Rand, from time.Time) []crypto.Reading {
	t := from.UnixMilli() - rng.Int64N(int64(time.Hour/time.Millisecond))
	end := from.Add(72 * time.Hour).UnixMilli()
	var in, out int64
	if rng.IntN(2) == 0 {
		in, out = math.MaxInt64-1<<40, math.MaxInt64-1<<41
	}
	var rs []crypto.Reading
	for t < end {
		rs = append(rs, crypto.Reading{Timestamp: t, WhIn: in, WhOut: out})
		switch rng.IntN(20) {
		case 0:
			t += rng.Int64N(int64(30 * time.Hour / time.Millisecond))
		default:
			t += 1 + rng.Int64N(int64(20*time.Minute/time.Millisecond))
		}
		step := rng.Int64N(1 << 20)
		if rng.IntN(50) == 0 {
			step = (math.MaxInt64 - in) / 2
		}
		in += min(step, math.MaxInt64-in)
		out += min(rng.Int64N(1<<10), math.MaxInt64-out)
	}
	return rs
}
