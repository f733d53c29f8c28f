package simulator

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"smartmeters/crypto"
)

// clearLine returns a terminal's cursor to the start of the line and
// erases the line.
const clearLine = "\r\x1b[2K"

// statusLine shows how a run is going: on a terminal, one line redrawn in
// place; elsewhere, a plain line now and then, fit for a log.
type statusLine struct {
	w         io.Writer
	tty       bool
	every     time.Duration
	now       func() time.Time
	st        *stats
	meters    int64
	keyType   crypto.KeyType
	total     int64 // readings the run will send; 0 if unbounded
	tamper    bool  // whether to show the forged readings
	reporting atomic.Bool

	start    time.Time
	lastDone int64
	lastAt   time.Time

	stopOnce sync.Once
	stopc    chan struct{}
	donec    chan struct{}
}

// startStatus starts showing the status of st on w; nil w shows nothing.
func startStatus(cfg Config, st *stats) *statusLine {
	p := &statusLine{
		w: cfg.Status, tty: cfg.StatusTTY, every: cfg.StatusEvery, now: cfg.Now, st: st,
		meters: int64(cfg.Meters), keyType: cfg.KeyType, total: int64(cfg.Meters) * int64(cfg.Readings), tamper: cfg.Tamper > 0,
		stopc: make(chan struct{}), donec: make(chan struct{}),
	}
	p.start = p.now()
	p.lastAt = p.start
	if p.w == nil {
		close(p.donec)
		return p
	}
	go p.loop()
	return p
}

// startReporting switches the line from registration to reporting.
func (p *statusLine) startReporting() {
	p.reporting.Store(true)
}

// stop stops the line and, on a terminal, erases it, so that whatever is
// printed next starts on a clean line.
func (p *statusLine) stop() {
	p.stopOnce.Do(func() { close(p.stopc) })
	<-p.donec
}

func (p *statusLine) loop() {
	defer close(p.donec)
	t := time.NewTicker(p.every)
	defer t.Stop()
	for {
		select {
		case <-p.stopc:
			if p.tty {
				io.WriteString(p.w, clearLine)
			}
			return
		case <-t.C:
			line := p.line()
			if p.tty {
				io.WriteString(p.w, clearLine+line)
			} else {
				io.WriteString(p.w, line+"\n")
			}
		}
	}
}

// line renders the current status.
func (p *statusLine) line() string {
	now := p.now()
	elapsed := now.Sub(p.start).Round(time.Second)
	reg, gen := p.st.registered.Load(), p.st.generated.Load()
	if !p.reporting.Load() {
		// Generating RSA keys takes a while: say what is going on.
		return fmt.Sprintf("%s  generating %s keys %d/%d  registered %d/%d", elapsed, p.keyType, gen, p.meters, reg, p.meters)
	}
	done := p.st.done.Load()
	rate := 0.0
	if d := now.Sub(p.lastAt).Seconds(); d > 0 {
		rate = float64(done-p.lastDone) / d
	}
	p.lastDone, p.lastAt = done, now
	var b strings.Builder
	fmt.Fprintf(&b, "%s  registered %d/%d  sent %d  accepted %d  rejected %d",
		elapsed, reg, p.meters, p.st.sent.Load(), p.st.accepted.Load(), p.st.rejected.Load())
	if n := p.st.failed.Load(); n > 0 {
		fmt.Fprintf(&b, "  failed %d", n)
	}
	if p.tamper {
		p.st.mu.Lock()
		var forged int64
		for _, n := range p.st.forgedSent {
			forged += n
		}
		p.st.mu.Unlock()
		fmt.Fprintf(&b, "  forged %d", forged)
	}
	fmt.Fprintf(&b, "  in flight %d  %.1f/s", p.st.inflight.Load(), rate)
	if p.total > 0 {
		frac := min(float64(done)/float64(p.total), 1)
		fmt.Fprintf(&b, "  %3.0f%%", 100*frac)
		if p.tty {
			const width = 20
			n := int(frac * width)
			fmt.Fprintf(&b, " [%s%s]", strings.Repeat("#", n), strings.Repeat(".", width-n))
		}
	}
	return b.String()
}
