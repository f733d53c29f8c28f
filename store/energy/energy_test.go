package energy_test

import (
	"math"
	"math/big"
	"math/rand/v2"
	"testing"
	"time"

	"smartmeters/crypto"
	"smartmeters/store/energy"
)

// TestInterpolateExact compares Interpolate with the floor of the exact
// rational, on random lines with registers up to 2^63-1, falling ones too.
func TestInterpolateExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for range 100_000 {
		t0 := rng.Int64N(1 << 50)
		t1 := t0 + 1 + rng.Int64N(1<<40)
		tm := t0 + rng.Int64N(t1-t0+1)
		w0, w1 := rng.Int64N(math.MaxInt64), rng.Int64N(math.MaxInt64)
		if rng.IntN(4) == 0 {
			w0, w1 = math.MaxInt64-rng.Int64N(1000), math.MaxInt64-rng.Int64N(1000)
		}
		want := new(big.Int).Mul(big.NewInt(w1-w0), big.NewInt(tm-t0))
		want.Div(want, big.NewInt(t1-t0)) // Euclidean: floor for a positive divisor
		want.Add(want, big.NewInt(w0))
		if got := energy.Interpolate(t0, w0, t1, w1, tm); got != want.Int64() {
			t.Fatalf("Interpolate(%d, %d, %d, %d, %d) = %d, want %d", t0, w0, t1, w1, tm, got, want)
		}
	}
}

// TestLargeRegisters is the finding of the abuse review: registers near
// 2^60 apportioned in floats gave 0, 0 and 1024 Wh where 1 Wh a minute is
// right.
func TestLargeRegisters(t *testing.T) {
	from := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	base := int64(1) << 60
	rs := []crypto.Reading{
		{Timestamp: from.UnixMilli(), WhIn: base, WhOut: base},
		{Timestamp: from.Add(3 * time.Minute).UnixMilli(), WhIn: base + 3, WhOut: base + 3000},
	}
	got := energy.Apportion(rs, from, from.Add(3*time.Minute), time.Minute)
	for i, b := range got {
		if !b.Complete || b.WhIn != 1 || b.WhOut != 1000 {
			t.Errorf("bucket %d = %+v, want 1 Wh in and 1000 out", i, b)
		}
	}
	f := energy.NewFleet(from, time.Minute, 3)
	f.AddSegment(rs[0], rs[1])
	for i, b := range f.Buckets {
		if b != [2]int64{1, 1000} {
			t.Errorf("fleet bucket %d = %v, want [1 1000]", i, b)
		}
	}
}

// TestApportionAgreesWithFleet checks, on random series of one meter with
// gaps and registers up to 2^63-1, that the per-meter computation and the
// fleet's segment sum give the same complete buckets, and that those add
// up exactly to the register rise across them.
func TestApportionAgreesWithFleet(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	from := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	for trial := range 2000 {
		b := []time.Duration{time.Minute, 5 * time.Minute, 15 * time.Minute, time.Hour}[rng.IntN(4)]
		n := 1 + rng.IntN(48)
		to := from.Add(time.Duration(n) * b)
		rs := randomSeries(rng, from.Add(-b), to.Add(b))
		got := energy.Apportion(rs, from, to, b)
		f := energy.NewFleet(from, b, n)
		for i := 1; i < len(rs); i++ {
			f.AddSegment(rs[i-1], rs[i])
		}
		var sumIn, sumOut int64
		first, last := -1, -1
		for i, bk := range got {
			if !bk.Complete {
				continue
			}
			if first < 0 {
				first = i
			}
			last = i
			if f.Buckets[i] != [2]int64{bk.WhIn, bk.WhOut} {
				t.Fatalf("trial %d bucket %d: Apportion %d/%d, Fleet %v", trial, i, bk.WhIn, bk.WhOut, f.Buckets[i])
			}
			if bk.WhIn < 0 || bk.WhOut < 0 {
				t.Fatalf("trial %d bucket %d: negative energy %+v from a rising series", trial, i, bk)
			}
			sumIn += bk.WhIn
			sumOut += bk.WhOut
		}
		if first < 0 {
			continue
		}
		// Complete buckets run contiguously between the first reading and
		// the last, so they add up to the rise between their outer edges.
		whole := energy.Apportion(rs, got[first].Start, got[last].End, got[last].End.Sub(got[first].Start))
		if !whole[0].Complete || whole[0].WhIn != sumIn || whole[0].WhOut != sumOut {
			t.Fatalf("trial %d: buckets add up to %d/%d, the window to %+v", trial, sumIn, sumOut, whole[0])
		}
	}
}

// randomSeries returns readings in time order between from and to, with
// rising registers that start anywhere up to near 2^63 and gaps of any
// length.
func randomSeries(rng *rand.Rand, from, to time.Time) []crypto.Reading {
	span := to.Sub(from).Milliseconds()
	wIn, wOut := rng.Int64N(math.MaxInt64/2), rng.Int64N(1000)
	if rng.IntN(3) == 0 {
		wIn = math.MaxInt64 - 1<<40
	}
	var rs []crypto.Reading
	for ts := from.UnixMilli() + rng.Int64N(span/4+1); ts < to.UnixMilli(); ts += 1 + rng.Int64N(span/3+1) {
		wIn += rng.Int64N(1 << 20)
		wOut += rng.Int64N(100)
		rs = append(rs, crypto.Reading{Timestamp: ts, WhIn: wIn, WhOut: wOut})
	}
	return rs
}
