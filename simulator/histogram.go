package simulator

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// The histogram is log-linear: values below 2^subBits microseconds have a
// bucket each; every power of two above is split into 2^subBits equal
// buckets, so a reported quantile is within 1/2^(subBits+1) (3%) of the
// truth whatever the scale, in a fixed 7.6 KiB.
const (
	subBits      = 4
	subCount     = 1 << subBits
	bucketCount  = (64-subBits)*subCount + subCount
	microsPerMs  = 1000.0
	maxRecordDur = time.Duration(1<<62 - 1)
)

// histogram records durations at microsecond resolution. It is safe for
// concurrent use and never allocates after creation.
type histogram struct {
	counts [bucketCount]atomic.Uint64
	n      atomic.Uint64
	max    atomic.Int64 // microseconds
}

func bucketOf(v uint64) int {
	if v < subCount {
		return int(v)
	}
	exp := bits.Len64(v) - 1
	sub := (v >> (exp - subBits)) & (subCount - 1)
	return (exp-subBits+1)*subCount + int(sub)
}

// bucketRange returns the smallest value of bucket b and the bucket's width.
func bucketRange(b int) (low, width uint64) {
	if b < subCount {
		return uint64(b), 1
	}
	exp := b/subCount + subBits - 1
	shift := exp - subBits
	return 1<<exp | uint64(b%subCount)<<shift, 1 << shift
}

// record adds d; a negative d counts as zero.
func (h *histogram) record(d time.Duration) {
	us := max(int64(min(d, maxRecordDur)/time.Microsecond), 0)
	h.counts[bucketOf(uint64(us))].Add(1)
	h.n.Add(1)
	for {
		m := h.max.Load()
		if us <= m || h.max.CompareAndSwap(m, us) {
			return
		}
	}
}

// quantile returns an estimate of the q-quantile (0 < q <= 1) in
// microseconds: the middle of its bucket, never above the maximum. It
// returns 0 for an empty histogram.
func (h *histogram) quantile(q float64) float64 {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	rank := uint64(q*float64(n) + 0.5)
	rank = min(max(rank, 1), n)
	var seen uint64
	for b := range h.counts {
		seen += h.counts[b].Load()
		if seen >= rank {
			low, width := bucketRange(b)
			return min(float64(low)+float64(width-1)/2, float64(h.max.Load()))
		}
	}
	return float64(h.max.Load())
}

// Percentiles are quantiles of a distribution of durations, in
// milliseconds.
type Percentiles struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

func (h *histogram) percentiles() Percentiles {
	ms := func(us float64) float64 { return roundTo(us/microsPerMs, 3) }
	return Percentiles{
		P50: ms(h.quantile(0.50)),
		P90: ms(h.quantile(0.90)),
		P99: ms(h.quantile(0.99)),
		Max: ms(float64(h.max.Load())),
	}
}
