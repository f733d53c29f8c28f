package simulator

import (
	"context"
	"math/rand/v2"
	"time"

	"smartmeters/crypto"
)

// StartOffsets returns, for each of the n meters of a fleet seeded by seed,
// the offset from the start of reporting at which it sends its first
// reading: independent uniform draws in [0, interval), so that a fleet
// spreads its load over the interval instead of reporting in bursts.
func StartOffsets(seed int64, n int, interval time.Duration) []time.Duration {
	r := rand.New(rand.NewPCG(uint64(seed), streamOffsets))
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = time.Duration(r.Int64N(int64(interval)))
	}
	return out
}

// slot is a meter's next due time, as an offset from the start of
// reporting.
type slot struct {
	due   time.Duration
	meter int32
}

// dueHeap is a binary min-heap of slots by due time. It is written out
// rather than built on container/heap to keep the scheduler free of
// interface conversions and allocations.
type dueHeap []slot

func (h dueHeap) init() {
	for i := len(h)/2 - 1; i >= 0; i-- {
		h.down(i)
	}
}

func (h dueHeap) down(i int) {
	for {
		least, l, r := i, 2*i+1, 2*i+2
		if l < len(h) && h[l].due < h[least].due {
			least = l
		}
		if r < len(h) && h[r].due < h[least].due {
			least = r
		}
		if least == i {
			return
		}
		h[i], h[least] = h[least], h[i]
		i = least
	}
}

// pop removes the earliest slot.
func (h *dueHeap) pop() {
	old := *h
	n := len(old) - 1
	old[0] = old[n]
	*h = old[:n]
	h.down(0)
}

// job is one reading handed from the scheduler to a worker.
type job struct {
	m       *meter
	reading crypto.Reading
	kind    forgery
	due     time.Time
}

// schedule hands every due reading to jobs, in order of due time, until
// every meter has had its share or ctx is done; then it closes jobs. Due
// times are absolute (start + offset + k·interval), so when it falls behind
// it catches up instead of shifting the rest of the schedule. Being the
// only goroutine to touch the meters' registers, it computes the readings;
// the workers sign and send them.
func (s *Simulator) schedule(ctx context.Context, meters []*meter, start time.Time, jobs chan<- job) {
	defer close(jobs)
	h := make(dueHeap, len(meters))
	for i, off := range StartOffsets(s.cfg.Seed, len(meters), s.cfg.Interval) {
		h[i] = slot{due: off, meter: int32(i)}
	}
	h.init()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for len(h) > 0 {
		top := &h[0]
		if wait := top.due - s.cfg.Now().Sub(start); wait > 0 {
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
			}
			continue
		}
		m := meters[top.meter]
		now := s.cfg.Now().UnixMilli()
		kind, r := s.tamper.choose(m)
		switch kind {
		case genuine:
			r = m.next(now, s.cfg.Location)
		case forgedSignature, forgedUnknownKey:
			r = m.nextForged(now)
		}
		select {
		case jobs <- job{m: m, reading: r, kind: kind, due: start.Add(top.due)}:
		case <-ctx.Done():
			return
		}
		m.scheduled++
		if s.cfg.Readings > 0 && m.scheduled >= s.cfg.Readings {
			h.pop()
		} else {
			top.due += s.cfg.Interval
			h.down(0)
		}
	}
}
