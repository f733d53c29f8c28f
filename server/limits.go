package server

import (
	"context"
	"math"
	"net/netip"
	"strconv"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/labstack/echo/v4"
	"golang.org/x/time/rate"

	"smartmeters/crypto"
	"smartmeters/store"
)

// Defaults of the hardening fields of Config.
const (
	DefaultReadHeaderTimeout     = 5 * time.Second
	DefaultReadTimeout           = 30 * time.Second
	DefaultWriteTimeout          = 30 * time.Second
	DefaultIdleTimeout           = 2 * time.Minute
	DefaultMaxConcurrentRequests = 1024
	DefaultKeyLookupTimeout      = 2 * time.Second
)

// limiterEntries bounds how many keys or addresses have a token bucket in
// memory; the least recently seen is forgotten first (and starts again
// with a full bucket).
const limiterEntries = 1 << 16

func (c Config) withHardeningDefaults() Config {
	if c.ReadHeaderTimeout <= 0 {
		c.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = DefaultReadTimeout
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.MaxConcurrentRequests == 0 {
		c.MaxConcurrentRequests = DefaultMaxConcurrentRequests
	}
	if c.KeyLookupTimeout <= 0 {
		c.KeyLookupTimeout = DefaultKeyLookupTimeout
	}
	c.RateBurstPerKey = defaultBurst(c.RatePerKey, c.RateBurstPerKey)
	c.RateBurstPerAddress = defaultBurst(c.RatePerAddress, c.RateBurstPerAddress)
	return c
}

// defaultBurst is the bucket size of a limit of r a second when none is
// configured: ten seconds' worth, at least 1.
func defaultBurst(r float64, burst int) int {
	if burst > 0 || r <= 0 {
		return burst
	}
	return int(math.Max(1, math.Ceil(10*r)))
}

// limits holds the public listener's abuse limits: a token bucket per
// meter and per client address, and a cap on requests in progress.
type limits struct {
	perKey  *tokenBuckets[int64]
	perAddr *tokenBuckets[netip.Addr]
	slots   chan struct{} // one per request in progress; nil means no cap
}

func newLimits(cfg Config) *limits {
	l := &limits{
		perKey:  newTokenBuckets[int64](cfg.RatePerKey, cfg.RateBurstPerKey),
		perAddr: newTokenBuckets[netip.Addr](cfg.RatePerAddress, cfg.RateBurstPerAddress),
	}
	if cfg.MaxConcurrentRequests > 0 {
		l.slots = make(chan struct{}, cfg.MaxConcurrentRequests)
	}
	return l
}

// tokenBuckets is a bounded set of token buckets, one per K, all with the same
// rate and burst; nil means no limit.
type tokenBuckets[K comparable] struct {
	rate  rate.Limit
	burst int
	mu    sync.Mutex // makes get-or-create atomic
	cache *lru.Cache[K, *rate.Limiter]
}

func newTokenBuckets[K comparable](perSecond float64, burst int) *tokenBuckets[K] {
	if perSecond <= 0 {
		return nil
	}
	c, err := lru.New[K, *rate.Limiter](limiterEntries)
	if err != nil {
		panic(err) // limiterEntries is positive
	}
	return &tokenBuckets[K]{rate: rate.Limit(perSecond), burst: burst, cache: c}
}

// take spends n tokens of k's bucket if it holds them, and otherwise
// returns how long until it will.
func (b *tokenBuckets[K]) take(k K, n int, now time.Time) (ok bool, wait time.Duration) {
	if b == nil {
		return true, 0
	}
	b.mu.Lock()
	lim, found := b.cache.Get(k)
	if !found {
		lim = rate.NewLimiter(b.rate, b.burst)
		b.cache.Add(k, lim)
	}
	b.mu.Unlock()
	if lim.AllowN(now, n) {
		return true, 0
	}
	short := float64(n) - lim.TokensAt(now)
	return false, time.Duration(short / float64(b.rate) * float64(time.Second))
}

// retryAfterValue is the Retry-After header value for a wait: whole
// seconds, rounded up, at least 1.
func retryAfterValue(wait time.Duration) string {
	return strconv.Itoa(max(1, int(math.Ceil(wait.Seconds()))))
}

// allowReading spends one token of meter id's bucket, or returns the
// rate-limited problem. It is called only once a reading's signature has
// verified, so that a forger, who knows a meter's public key, cannot spend
// that meter's allowance; forgers are bounded by the per-address limit.
func (s *Server) allowReading(id int64) error {
	ok, wait := s.limits.perKey.take(id, 1, time.Now())
	if ok {
		return nil
	}
	p := problem(kindRateLimited, "meter %d reports more than %g readings a second; retry in %s",
		id, float64(s.limits.perKey.rate), wait.Round(time.Millisecond)).forMeter(id)
	p.retryAfter = wait
	return p
}

// limitPublic guards the public listener: requests beyond
// MaxConcurrentRequests in progress are answered 503 overloaded at once,
// and a client address over its rate 429 rate-limited, both with
// Retry-After and before the body is read. They are counted by
// smartmeters_http_request_seconds, not as rejected readings. /healthz and /readyz are
// exempt, so that probes tell overload from death.
func (s *Server) limitPublic(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		switch c.Path() {
		case "/healthz", "/readyz":
			return next(c)
		}
		if s.limits.perAddr != nil {
			if ap, err := netip.ParseAddrPort(c.Request().RemoteAddr); err == nil {
				if ok, wait := s.limits.perAddr.take(ap.Addr().Unmap(), 1, time.Now()); !ok {
					c.Response().Header().Set("Retry-After", retryAfterValue(wait))
					return problem(kindRateLimited, "%s sends more than %g requests a second; retry in %s",
						ap.Addr().Unmap(), float64(s.limits.perAddr.rate), wait.Round(time.Millisecond))
				}
			}
		}
		if s.limits.slots != nil {
			select {
			case s.limits.slots <- struct{}{}:
				defer func() { <-s.limits.slots }()
			default:
				return problem(kindOverloaded, "more than %d requests are in progress; retry", cap(s.limits.slots))
			}
		}
		return next(c)
	}
}

// boundedLookups bounds each key lookup that misses the key cache and
// goes to the store, so that a report of an uncached key fails fast (503)
// rather than hanging while the store is unreachable.
type boundedLookups struct {
	Store
	timeout time.Duration
}

func (b boundedLookups) MeterByFingerprint(ctx context.Context, fp crypto.Fingerprint) (store.Meter, error) {
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	return b.Store.MeterByFingerprint(ctx, fp)
}
