package simulator

import (
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// outcome is how the delivery of one reading ended.
type outcome uint8

const (
	outcomeStored      outcome = iota // 201: stored now
	outcomeDuplicate                  // 200: the identical reading was stored already
	outcomeRejected                   // a final 4xx answer
	outcomeFailed                     // network errors or 5xx until the attempts ran out
	outcomeInterrupted                // the context ended before an answer
)

// result is the end of the delivery of one reading.
type result struct {
	outcome outcome
	slug    string // the problem type slug of a rejection
	retries int    // attempts after the first
	cause   string // why a failed reading failed: the error of its last attempt
}

// answer names r the way the tamper summary counts it.
func (r result) answer() string {
	switch r.outcome {
	case outcomeStored:
		return "stored"
	case outcomeDuplicate:
		return "duplicate"
	case outcomeRejected:
		return r.slug
	case outcomeFailed:
		return "failed"
	}
	return "interrupted"
}

// stats counts everything a run reports. Counters are atomic; the maps of
// reasons, touched only by readings that were not stored, share one mutex.
type stats struct {
	generated  atomic.Int64 // keys generated
	registered atomic.Int64 // meters registered or loaded

	sent     atomic.Int64 // readings whose first attempt started, forged included
	done     atomic.Int64 // readings whose delivery ended, forged included
	inflight atomic.Int64 // requests in flight

	attempted   atomic.Int64 // genuine readings sent
	accepted    atomic.Int64
	duplicates  atomic.Int64
	rejected    atomic.Int64
	failed      atomic.Int64
	interrupted atomic.Int64
	retries     atomic.Int64

	latency histogram // per HTTP exchange that got an answer
	lag     histogram // per reading: first send time minus due time

	mu             sync.Mutex
	rejectedBy     map[string]int64
	lastFailure    string // the cause of the genuine reading that failed last
	forgedSent     [forgeryCount]int64
	forgedAnswers  [forgeryCount]map[string]int64
	forgedAccepted int64
}

func newStats() *stats {
	s := &stats{rejectedBy: map[string]int64{}}
	for i := range s.forgedAnswers {
		s.forgedAnswers[i] = map[string]int64{}
	}
	return s
}

// record counts the end of the delivery of a reading of kind f.
//
// A genuine reading answered 200 duplicate after a retry counts as
// accepted: the server stored an earlier attempt whose answer was lost.
// Only a duplicate on the first attempt, a reading the store held before
// this run sent it, counts as a duplicate.
func (s *stats) record(f forgery, r result) {
	s.done.Add(1)
	s.retries.Add(int64(r.retries))
	if f != genuine {
		s.mu.Lock()
		s.forgedSent[f]++
		s.forgedAnswers[f][r.answer()]++
		if r.outcome == outcomeStored || r.outcome == outcomeDuplicate {
			s.forgedAccepted++
		}
		s.mu.Unlock()
		return
	}
	switch {
	case r.outcome == outcomeStored, r.outcome == outcomeDuplicate && r.retries > 0:
		s.accepted.Add(1)
	case r.outcome == outcomeDuplicate:
		s.duplicates.Add(1)
	case r.outcome == outcomeRejected:
		s.rejected.Add(1)
		s.mu.Lock()
		s.rejectedBy[r.slug]++
		s.mu.Unlock()
	case r.outcome == outcomeFailed:
		s.failed.Add(1)
		s.mu.Lock()
		s.lastFailure = r.cause
		s.mu.Unlock()
	default:
		s.interrupted.Add(1)
	}
}

// summary returns what s counted over a reporting phase of length took.
func (s *stats) summary(took time.Duration, tamper float64) Summary {
	sum := Summary{
		Attempted:        s.attempted.Load(),
		Accepted:         s.accepted.Load(),
		Duplicates:       s.duplicates.Load(),
		Rejected:         s.rejected.Load(),
		RejectedByReason: map[string]int64{},
		Failed:           s.failed.Load(),
		Interrupted:      s.interrupted.Load(),
		Retries:          s.retries.Load(),
		LatencyMS:        s.latency.percentiles(),
		ScheduleLagMS:    s.lag.percentiles(),
		DurationS:        roundTo(took.Seconds(), 3),
		Tamper:           TamperSummary{Fraction: tamper, Kinds: map[string]TamperKind{}},
	}
	if took > 0 {
		sum.RatePerS = roundTo(float64(s.done.Load())/took.Seconds(), 1)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, v := range s.rejectedBy {
		sum.RejectedByReason[k] = v
	}
	sum.LastError = s.lastFailure
	if tamper > 0 {
		for f := genuine + 1; f < forgeryCount; f++ {
			answers := map[string]int64{}
			for k, v := range s.forgedAnswers[f] {
				answers[k] = v
			}
			sum.Tamper.Kinds[f.String()] = TamperKind{Sent: s.forgedSent[f], Expected: f.expected(), Answers: answers}
			sum.Tamper.Sent += s.forgedSent[f]
		}
		sum.Tamper.Accepted = s.forgedAccepted
	}
	return sum
}

func roundTo(v float64, digits int) float64 {
	p := math.Pow10(digits)
	return math.Round(v*p) / p
}
