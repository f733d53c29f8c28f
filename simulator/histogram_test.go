package simulator

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestBuckets(t *testing.T) {
	t.Parallel()
	prev := -1
	for _, v := range []uint64{0, 1, 15, 16, 17, 31, 32, 33, 1000, 1 << 20, 1<<40 + 12345, math.MaxUint64 >> 2} {
		b := bucketOf(v)
		low, width := bucketRange(b)
		if v < low || v >= low+width {
			t.Errorf("value %d in bucket %d of [%d, %d)", v, b, low, low+width)
		}
		if b < prev || b >= bucketCount {
			t.Errorf("value %d: bucket %d after %d, of %d", v, b, prev, bucketCount)
		}
		if v >= subCount && float64(width)/float64(low) > 1.0/subCount {
			t.Errorf("value %d: bucket width %d too coarse for %d", v, width, low)
		}
		prev = b
	}
}

func TestHistogramQuantiles(t *testing.T) {
	t.Parallel()
	var h histogram
	if got := h.percentiles(); got != (Percentiles{}) {
		t.Errorf("empty histogram: %+v", got)
	}
	r := rand.New(rand.NewPCG(1, 2))
	values := make([]time.Duration, 100000)
	for i := range values {
		// Log-uniform from 10µs to 10s.
		values[i] = time.Duration(math.Pow(10, 4+6*r.Float64()))
		h.record(values[i])
	}
	slices.Sort(values)
	for _, q := range []float64{0.5, 0.9, 0.99} {
		want := float64(values[int(q*float64(len(values)))-1]) / float64(time.Microsecond)
		got := h.quantile(q)
		if math.Abs(got-want)/want > 0.04 {
			t.Errorf("q%g = %gµs, want %gµs within 4%%", q, got, want)
		}
	}
	if got, want := h.percentiles().Max, float64(values[len(values)-1]/time.Microsecond)/1000; got != roundTo(want, 3) {
		t.Errorf("max %gms, want %gms", got, want)
	}
	h.record(-time.Second) // clock steps back: counted as zero
	if h.n.Load() != uint64(len(values)+1) {
		t.Errorf("n = %d", h.n.Load())
	}
}
