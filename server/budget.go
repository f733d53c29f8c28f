package server

import (
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"runtime/debug"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"smartmeters/server/api"
)

// connOverhead is what one open connection may hold besides its headers:
// net/http's read and write buffers (4 KiB each) and its goroutine's
// stack.
const connOverhead = 16 << 10

// memoryBudget bounds the memory that requests in flight may hold: every
// open connection holds room for its headers (MaxHeaderBytes plus
// connOverhead) from accept to close, and every request body room for
// itself (twice its length, for the decoded copy) from before it is read
// until its handler returns. One client address may hold at most perAddr
// of it, so that one client cannot take what the others need; IPv6
// addresses count by their /64, which one client usually holds whole.
// Past the budget a connection or a body is answered 503 overloaded at
// once, and nothing more is read.
type memoryBudget struct {
	total, perAddr int64
	inUse          prometheus.Gauge
	refused        prometheus.Counter

	mu     sync.Mutex
	used   int64
	byAddr map[netip.Addr]int64
	peak   int64     // the most used since memory was last returned
	freed  time.Time // when memory was last returned to the OS
}

func newMemoryBudget(total, perAddr int64, m *metrics) *memoryBudget {
	return &memoryBudget{
		total:   total,
		perAddr: perAddr,
		inUse:   m.budgetInUse,
		refused: m.budgetRefused,
		byAddr:  make(map[netip.Addr]int64),
	}
}

// clientOf returns the key an address is budgeted under.
func clientOf(a netip.Addr) netip.Addr {
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.Addr()
	}
	return a
}

// take reserves n bytes for client, or reports that the budget, or the
// client's share of it, is spent.
func (b *memoryBudget) take(client netip.Addr, n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.used+n > b.total || b.byAddr[client]+n > b.perAddr {
		b.refused.Inc()
		return false
	}
	b.used += n
	b.byAddr[client] += n
	b.peak = max(b.peak, b.used)
	b.inUse.Set(float64(b.used))
	return true
}

// give returns n bytes that client took. When the budget drains after
// having been an eighth spent, the memory it stood for is handed back to the
// operating system at once, rather than over minutes by the runtime.
func (b *memoryBudget) give(client netip.Addr, n int64) {
	b.mu.Lock()
	b.used -= n
	if left := b.byAddr[client] - n; left > 0 {
		b.byAddr[client] = left
	} else {
		delete(b.byAddr, client)
	}
	b.inUse.Set(float64(b.used))
	release := b.used == 0 && b.peak > b.total/8 && time.Since(b.freed) > 10*time.Second
	if release {
		b.peak, b.freed = 0, time.Now()
	}
	b.mu.Unlock()
	if release {
		go debug.FreeOSMemory()
	}
}

// budgetListener holds room in the budget for every connection it
// accepts, until the connection is closed. A connection that finds none is
// answered 503 overloaded (plain HTTP) and closed at once; under TLS, which
// wraps this listener, it is only closed.
type budgetListener struct {
	net.Listener
	budget *memoryBudget
	cost   int64
	answer bool // write overloadedAnswer before closing
}

// overloadedAnswer is written to a connection the budget has no room for:
// a whole HTTP/1.1 answer, sent before the request is read.
var overloadedAnswer = func() []byte {
	body, err := json.Marshal(api.Errorf(api.Overloaded, "the server has no room for another connection; retry"))
	if err != nil {
		panic(err)
	}
	return fmt.Appendf(nil, "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/problem+json\r\n"+
		"Retry-After: 1\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
}()

func (l *budgetListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		client := netip.IPv4Unspecified()
		if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
			client = clientOf(ap.Addr())
		}
		if l.budget.take(client, l.cost) {
			return &budgetConn{Conn: c, budget: l.budget, client: client, cost: l.cost}, nil
		}
		if l.answer {
			_ = c.SetWriteDeadline(time.Now().Add(time.Second))
			_, _ = c.Write(overloadedAnswer)
		}
		_ = c.Close()
	}
}

// budgetConn gives its room back when it is closed.
type budgetConn struct {
	net.Conn
	budget *memoryBudget
	client netip.Addr
	cost   int64
	once   sync.Once
}

func (c *budgetConn) Close() error {
	c.once.Do(func() { c.budget.give(c.client, c.cost) })
	return c.Conn.Close()
}

// intakeBudget holds the payloads of the MQTT intake in the budget. The
// intake is one client of it, under the zero netip.Addr, which no peer
// has: one flood of messages cannot take what HTTP clients need.
type intakeBudget struct{ b *memoryBudget }

func (ib intakeBudget) Take(n int64) bool { return ib.b.take(netip.Addr{}, n) }
func (ib intakeBudget) Give(n int64)      { ib.b.give(netip.Addr{}, n) }
