package reporting

import (
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Event stream limits. A client gets at most maxReadingEventsPerSecond
// reading events each second; the readings beyond are counted, not sent, and
// the fleet event that follows says how many were left out. A client whose
// buffer of subscriberBuffer events is full has stopped reading and is
// dropped, so that no client ever slows the ingest path.
//
// The hub keeps the last replayEvents reading events, numbered, so that a
// client that reconnects with Last-Event-ID is sent those it missed.
const (
	maxReadingEventsPerSecond = 20
	subscriberBuffer          = 64
	replayEvents              = 256
)

// readingEvent is the data of an SSE "reading" event.
type readingEvent struct {
	MeterID   int64     `json:"meterId"`
	Timestamp time.Time `json:"timestamp"`
	WhIn      int64     `json:"whIn"`
	WhOut     int64     `json:"whOut"`
	seq       uint64    // the hub's number of the event, from 1
}

// hub fans stored readings out to the event stream clients.
type hub struct {
	n    atomic.Int32
	mu   sync.RWMutex
	subs map[*subscriber]struct{}

	// epoch names this process's numbering of events, so that an event id
	// of another process (a restart, another server) is not taken for one
	// of its own.
	epoch    string
	recentMu sync.Mutex
	seq      uint64                     // the number of the latest event; guarded by recentMu
	recent   [replayEvents]readingEvent // by seq % replayEvents; guarded by recentMu
}

// eventID renders the id of the event numbered seq.
func (h *hub) eventID(seq uint64) string {
	return h.epoch + "-" + strconv.FormatUint(seq, 10)
}

// since returns the kept events numbered after the event id lastID up to
// and including upTo, and how many events after lastID are no longer kept.
// An id of another epoch, or none, gives nothing: there is no telling what
// its client missed.
func (h *hub) since(lastID string, upTo uint64) (events []readingEvent, lost uint64) {
	rest, ok := strings.CutPrefix(lastID, h.epoch+"-")
	if !ok {
		return nil, 0
	}
	last, err := strconv.ParseUint(rest, 10, 64)
	if err != nil || last >= upTo {
		return nil, 0
	}
	first := last + 1
	if upTo >= replayEvents && first <= upTo-replayEvents {
		lost = upTo - replayEvents + 1 - first
		first = upTo - replayEvents + 1
	}
	h.recentMu.Lock()
	defer h.recentMu.Unlock()
	for seq := first; seq <= upTo; seq++ {
		events = append(events, h.recent[seq%replayEvents])
	}
	return events, lost
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

// subscribe adds a subscriber and returns it with the number of the
// latest event it is not sent: every later event is offered to it (and it
// may be offered some up to that number, which it must skip).
func (h *hub) subscribe() (*subscriber, uint64) {
	sub := &subscriber{
		events: make(chan readingEvent, subscriberBuffer),
		gone:   make(chan struct{}),
	}
	h.mu.Lock()
	h.subs[sub] = struct{}{}
	h.n.Store(int32(len(h.subs)))
	h.mu.Unlock()
	h.recentMu.Lock()
	start := h.seq
	h.recentMu.Unlock()
	return sub, start
}

func (h *hub) unsubscribe(sub *subscriber) {
	h.mu.Lock()
	delete(h.subs, sub)
	h.n.Store(int32(len(h.subs)))
	h.mu.Unlock()
}

// publish numbers ev, keeps it for replay and offers it to every
// subscriber without waiting for any.
func (h *hub) publish(ev readingEvent, at time.Time) {
	h.recentMu.Lock()
	h.seq++
	ev.seq = h.seq
	h.recent[ev.seq%replayEvents] = ev
	h.recentMu.Unlock()
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
