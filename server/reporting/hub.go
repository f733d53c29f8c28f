package reporting

import (
	"sync"
	"sync/atomic"
	"time"
)

// Event stream limits. A client gets at most maxReadingEventsPerSecond
// reading events each second; the readings beyond are counted, not sent, and
// the fleet event that follows says how many were left out. A client whose
// buffer of subscriberBuffer events is full has stopped reading and is
// dropped, so that no client ever slows the ingest path.
const (
	maxReadingEventsPerSecond = 20
	subscriberBuffer          = 64
)

// readingEvent is the data of an SSE "reading" event.
type readingEvent struct {
	MeterID   int64     `json:"meterId"`
	Timestamp time.Time `json:"timestamp"`
	WhIn      int64     `json:"whIn"`
	WhOut     int64     `json:"whOut"`
}

// hub fans stored readings out to the event stream clients.
type hub struct {
	n    atomic.Int32
	mu   sync.RWMutex
	subs map[*subscriber]struct{}
}

// subscriber is one event stream client.
type subscriber struct {
	events chan readingEvent
	// budget packs the Unix second in its high 32 bits and the events sent
	// in that second in its low 32 bits.
	budget  atomic.Uint64
	skipped atomic.Int64
	gone    chan struct{} // closed when the hub drops the subscriber
	once    sync.Once
}

func (h *hub) subscribe() *subscriber {
	sub := &subscriber{
		events: make(chan readingEvent, subscriberBuffer),
		gone:   make(chan struct{}),
	}
	h.mu.Lock()
	h.subs[sub] = struct{}{}
	h.n.Store(int32(len(h.subs)))
	h.mu.Unlock()
	return sub
}

func (h *hub) unsubscribe(sub *subscriber) {
	h.mu.Lock()
	delete(h.subs, sub)
	h.n.Store(int32(len(h.subs)))
	h.mu.Unlock()
}

// publish offers ev to every subscriber without waiting for any.
func (h *hub) publish(ev readingEvent, at time.Time) {
	if h.n.Load() == 0 {
		return
	}
	sec := uint64(at.Unix()) & 0xffffffff
	h.mu.RLock()
	for sub := range h.subs {
		sub.offer(ev, sec)
	}
	h.mu.RUnlock()
}

func (sub *subscriber) offer(ev readingEvent, sec uint64) {
	if !sub.take(sec) {
		sub.skipped.Add(1)
		return
	}
	select {
	case sub.events <- ev:
	default:
		sub.once.Do(func() { close(sub.gone) })
	}
}

// take spends one event of the second sec's budget and reports whether
// there was one left.
func (sub *subscriber) take(sec uint64) bool {
	for {
		v := sub.budget.Load()
		var next uint64
		switch cur := v >> 32; {
		case cur == sec:
			if v&0xffffffff >= maxReadingEventsPerSecond {
				return false
			}
			next = v + 1
		case cur < sec:
			next = sec<<32 | 1
		default:
			return false
		}
		if sub.budget.CompareAndSwap(v, next) {
			return true
		}
	}
}
