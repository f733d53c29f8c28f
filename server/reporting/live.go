package reporting

import (
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"smartmeters/crypto"
)

// rateWindow is how many whole seconds readingsPerSecond averages over.
const rateWindow = 5

// rateRing is a power of two larger than rateWindow, so that the second
// being filled never overwrites a second still being read.
const rateRing = 16

// Live holds what the reporting side learns from the ingest path as it
// happens: a per-second count of stored readings, counts of rejected
// readings by reason since start, each meter's latest rejection, and the
// event stream's subscribers. It is the ingest.Observer of the server:
// every method is safe for concurrent use, and Stored and Rejected neither
// block nor take a lock held across I/O.
type Live struct {
	// seconds counts stored readings per Unix second; each slot packs the
	// second in its high 32 bits and the count in its low 32 bits so that
	// one compare-and-swap moves a slot to a new second.
	seconds [rateRing]atomic.Uint64
	stored  atomic.Int64

	rejected sync.Map // reason string → *atomic.Int64

	// meterRejections holds the latest rejection of each meter's own
	// readings (signed by it, refused all the same), and meterForgeries the
	// reports that named a meter's key but whose signature did not verify;
	// at most one entry per meter in each.
	mu              sync.Mutex
	meterRejections map[int64]rejection
	meterForgeries  map[int64]forgeries

	hub hub

	fleetCounts fleetCounts
	shutdown    map[*http.Server]chan struct{} // guarded by mu; see shutdownSignal
}

// NewLive returns empty live figures.
func NewLive() *Live {
	l := &Live{
		meterRejections: make(map[int64]rejection),
		meterForgeries:  make(map[int64]forgeries),
		shutdown:        make(map[*http.Server]chan struct{}),
	}
	l.hub.subs = make(map[*subscriber]struct{})
	l.hub.epoch = strconv.FormatInt(time.Now().UnixNano(), 36)
	return l
}

// Stored counts a newly stored reading and offers it to the event
// subscribers without waiting for any of them.
func (l *Live) Stored(meterID int64, r crypto.Reading, receivedAt time.Time) {
	l.countStored(receivedAt)
	l.hub.publish(readingEvent{MeterID: meterID, Timestamp: r.Time(), WhIn: r.WhIn, WhOut: r.WhOut}, receivedAt)
}

// Rejected counts a rejected reading by its problem slug, such as
// "unknown-key". A reading the meter signed itself (meterID not 0) is also
// remembered as that meter's latest rejection, which the dashboard shows.
func (l *Live) Rejected(reason string, meterID int64, at time.Time) {
	l.countRejected(reason)
	if meterID == 0 {
		return
	}
	l.mu.Lock()
	l.meterRejections[meterID] = rejection{reason: reason, at: at.UTC()}
	l.mu.Unlock()
}

// rejection is the latest rejected reading of one meter.
type rejection struct {
	reason string
	at     time.Time
}

// Forged counts a report that named meter meterID's key with a signature
// that does not verify. It is not the meter's rejection: anyone who knows
// the public key can send one.
func (l *Live) Forged(meterID int64, at time.Time) {
	l.mu.Lock()
	f := l.meterForgeries[meterID]
	f.count++
	f.last = at.UTC()
	l.meterForgeries[meterID] = f
	l.mu.Unlock()
}

// forgeries counts the reports with a bad signature that named one
// meter's key.
type forgeries struct {
	count int64
	last  time.Time
}

// forgeriesOf returns the bad-signature reports that named a meter's key.
func (l *Live) forgeriesOf(meterID int64) (forgeries, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f, ok := l.meterForgeries[meterID]
	return f, ok
}

// lastRejection returns the latest rejection of a meter, if any.
func (l *Live) lastRejection(meterID int64) (rejection, bool) {
	if l == nil {
		return rejection{}, false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	r, ok := l.meterRejections[meterID]
	return r, ok
}

func (l *Live) countStored(at time.Time) {
	l.stored.Add(1)
	sec := uint64(at.Unix())
	slot := &l.seconds[sec%rateRing]
	for {
		v := slot.Load()
		var next uint64
		switch cur := v >> 32; {
		case cur == sec&0xffffffff:
			next = v + 1
		case cur < sec&0xffffffff:
			next = sec<<32 | 1
		default: // a reading received long ago, whose slot moved on
			return
		}
		if slot.CompareAndSwap(v, next) {
			return
		}
	}
}

// readingsPerSecond is the mean rate of stored readings over the rateWindow
// whole seconds before now; the second in progress is left out because it
// is incomplete.
func (l *Live) readingsPerSecond(now time.Time) float64 {
	nowSec := uint64(now.Unix())
	var n uint64
	for sec := nowSec - rateWindow; sec < nowSec; sec++ {
		v := l.seconds[sec%rateRing].Load()
		if v>>32 == sec&0xffffffff {
			n += v & 0xffffffff
		}
	}
	return float64(n) / rateWindow
}

func (l *Live) countRejected(reason string) {
	if c, ok := l.rejected.Load(reason); ok {
		c.(*atomic.Int64).Add(1)
		return
	}
	c, _ := l.rejected.LoadOrStore(reason, new(atomic.Int64))
	c.(*atomic.Int64).Add(1)
}

// rejectedByReason returns the count of rejected readings per reason since
// the server started.
func (l *Live) rejectedByReason() map[string]int64 {
	out := map[string]int64{}
	l.rejected.Range(func(k, v any) bool {
		out[k.(string)] = v.(*atomic.Int64).Load()
		return true
	})
	return out
}
