// Package ratelimit keeps a bounded set of token buckets, one per key (a
// meter, a client address), all with the same rate and burst.
package ratelimit

import (
	"math"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/time/rate"
)

// maxEntries bounds how many keys have a bucket in memory; the least
// recently seen is forgotten first (and starts again with a full bucket).
const maxEntries = 1 << 16

// DefaultBurst is the bucket size of a limit of r a second when none is
// configured: ten seconds' worth, at least 1.
func DefaultBurst(r float64) int {
	return int(math.Max(1, math.Ceil(10*r)))
}

// Buckets is a bounded set of token buckets keyed by K. A nil *Buckets
// limits nothing.
type Buckets[K comparable] struct {
	rate  rate.Limit
	burst int
	mu    sync.Mutex // makes get-or-create atomic
	cache *lru.Cache[K, *rate.Limiter]
}

// New returns buckets that refill at perSecond tokens a second and hold at
// most burst (DefaultBurst when burst is 0), or nil, which limits nothing,
// when perSecond is not positive.
func New[K comparable](perSecond float64, burst int) *Buckets[K] {
	if perSecond <= 0 {
		return nil
	}
	if burst <= 0 {
		burst = DefaultBurst(perSecond)
	}
	c, err := lru.New[K, *rate.Limiter](maxEntries)
	if err != nil {
		panic(err) // maxEntries is positive
	}
	return &Buckets[K]{rate: rate.Limit(perSecond), burst: burst, cache: c}
}

// Rate is the refill rate in tokens a second; 0 for nil buckets.
func (b *Buckets[K]) Rate() float64 {
	if b == nil {
		return 0
	}
	return float64(b.rate)
}

func (b *Buckets[K]) limiter(k K) *rate.Limiter {
	b.mu.Lock()
	defer b.mu.Unlock()
	lim, found := b.cache.Get(k)
	if !found {
		lim = rate.NewLimiter(b.rate, b.burst)
		b.cache.Add(k, lim)
	}
	return lim
}

// Take spends n tokens of k's bucket if it holds them, and otherwise
// returns how long until it will.
func (b *Buckets[K]) Take(k K, n int, now time.Time) (ok bool, wait time.Duration) {
	if b == nil {
		return true, 0
	}
	lim := b.limiter(k)
	if lim.AllowN(now, n) {
		return true, 0
	}
	short := float64(n) - lim.TokensAt(now)
	return false, time.Duration(short / float64(b.rate) * float64(time.Second))
}

// Token is one token taken from a bucket, which can be given back. The
// zero Token (from nil Buckets) gives nothing back.
type Token struct{ r *rate.Reservation }

// Reserve takes one token of k's bucket if it holds one, and otherwise
// returns how long until it will. The token can be given back with
// Token.Return, as if it had never been taken.
func (b *Buckets[K]) Reserve(k K, now time.Time) (tok Token, ok bool, wait time.Duration) {
	if b == nil {
		return Token{}, true, 0
	}
	r := b.limiter(k).ReserveN(now, 1)
	if !r.OK() {
		return Token{}, false, time.Duration(float64(time.Second) / float64(b.rate))
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return Token{}, false, d
	}
	return Token{r}, true, 0
}

// Return gives the token back to its bucket.
func (t Token) Return(now time.Time) {
	if t.r != nil {
		t.r.CancelAt(now)
	}
}
