package server

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/hashicorp/golang-lru/v2/expirable"
	"github.com/prometheus/client_golang/prometheus"

	"smartmeters/crypto"
	"smartmeters/store"
)

// meterKey is a registered key, parsed once, with the meter it belongs to.
type meterKey struct {
	meterID int64
	key     *crypto.PublicKey
	// observeVerify records verification time under the key's algorithm;
	// resolved once here so that the hot path does no label lookup.
	observeVerify prometheus.Observer
}

func (c *keyCache) newMeterKey(meterID int64, key *crypto.PublicKey) meterKey {
	return meterKey{meterID: meterID, key: key, observeVerify: c.metrics.verifySeconds.WithLabelValues(key.Algorithm())}
}

// keyCache keeps parsed registered keys in a bounded LRU so that the report
// path does no database lookup and no key parsing for a known meter, and
// remembers unknown and revoked keys for a short while so that a flood of
// them costs neither the database nor a verification.
//
// Entries are dropped when a key changes: by this server directly, and by
// the others through key change notifications (notify.go). While those
// notifications cannot be trusted (the listener is down) the cache is
// bypassed and every lookup asks the store.
type keyCache struct {
	known   *lru.Cache[crypto.Fingerprint, meterKey]
	refused *expirable.LRU[crypto.Fingerprint, error] // errUnknownKey or errRevokedKey
	store   Store
	minRSA  int
	metrics *metrics

	// gen counts invalidations, so that a lookup that raced with one does
	// not put back what was just dropped.
	gen atomic.Uint64
	// bypass is set while notifications may be missed.
	bypass atomic.Bool
}

func newKeyCache(size int, negativeTTL time.Duration, st Store, minRSABits int, m *metrics) *keyCache {
	known, err := lru.New[crypto.Fingerprint, meterKey](size)
	if err != nil {
		panic(err) // size is validated by Config.withDefaults
	}
	return &keyCache{
		known:   known,
		refused: expirable.NewLRU[crypto.Fingerprint, error](size, nil, negativeTTL),
		store:   st,
		minRSA:  minRSABits,
		metrics: m,
	}
}

var (
	// errUnknownKey is returned by lookup for a fingerprint no meter has.
	errUnknownKey = errors.New("unknown key")
	// errRevokedKey is returned by lookup for a meter's revoked key.
	errRevokedKey = errors.New("revoked key")
)

// lookup returns the meter key registered under fp, from the cache when it
// can, or errUnknownKey or errRevokedKey.
func (c *keyCache) lookup(ctx context.Context, fp crypto.Fingerprint) (meterKey, error) {
	if !c.bypass.Load() {
		if mk, ok := c.known.Get(fp); ok {
			c.metrics.keyCacheHits.Inc()
			return mk, nil
		}
		if err, ok := c.refused.Get(fp); ok {
			c.metrics.keyCacheHits.Inc()
			return meterKey{}, err
		}
	}
	c.metrics.keyCacheMisses.Inc()
	gen := c.gen.Load()
	m, err := c.store.MeterByFingerprint(ctx, fp)
	if errors.Is(err, store.ErrNotFound) {
		c.refuse(gen, fp, errUnknownKey)
		return meterKey{}, errUnknownKey
	}
	if err != nil {
		return meterKey{}, err
	}
	if m.RevokedAt != nil {
		c.refuse(gen, fp, errRevokedKey)
		return meterKey{}, errRevokedKey
	}
	key, err := crypto.ParsePublicKeyDER(m.PublicKey, c.minRSA)
	if err != nil {
		// Registered under a weaker policy than today's: refuse it, and
		// remember that, as for an unknown key.
		c.refuse(gen, fp, errUnknownKey)
		return meterKey{}, errUnknownKey
	}
	mk := c.newMeterKey(m.ID, key)
	c.known.Add(fp, mk)
	if c.gen.Load() != gen {
		// fp may have changed while the store was read: forget the answer.
		c.known.Remove(fp)
	}
	return mk, nil
}

// refuse remembers for a while that fp is refused with err, unless the
// cache was invalidated since gen.
func (c *keyCache) refuse(gen uint64, fp crypto.Fingerprint, err error) {
	c.refused.Add(fp, err)
	if c.gen.Load() != gen {
		c.refused.Remove(fp)
	}
}

// add caches a freshly registered key and forgets that it was refused.
func (c *keyCache) add(meterID int64, key *crypto.PublicKey) {
	fp := key.Fingerprint()
	c.forget(fp)
	c.known.Add(fp, c.newMeterKey(meterID, key))
}

// forget drops whatever is cached about fp.
func (c *keyCache) forget(fp crypto.Fingerprint) {
	c.gen.Add(1)
	c.known.Remove(fp)
	c.refused.Remove(fp)
}

// purge drops everything cached.
func (c *keyCache) purge() {
	c.gen.Add(1)
	c.known.Purge()
	c.refused.Purge()
}

// setBypass turns the cache off (true) or back on (false). Turning it back
// on purges it, since changes made meanwhile were not seen.
func (c *keyCache) setBypass(on bool) {
	if !on {
		c.purge()
	}
	c.bypass.Store(on)
}
