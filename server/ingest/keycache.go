package ingest

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/hashicorp/golang-lru/v2/expirable"
	"github.com/prometheus/client_golang/prometheus"

	"smartmeters/crypto"
	"smartmeters/store"
)

// KeyStore is what the key cache needs from storage: the meter a key
// belongs to.
type KeyStore interface {
	MeterByFingerprint(ctx context.Context, fp crypto.Fingerprint) (store.Meter, error)
}

// meterKey is a registered key, parsed once, with the meter it belongs to
// and its number among the meter's keys.
type meterKey struct {
	meterID int64
	seq     int
	key     *crypto.PublicKey
	// observeVerify records verification time under the key's algorithm;
	// resolved once here so that the hot path does no label lookup.
	observeVerify prometheus.Observer
}

var (
	// errUnknownKey is returned by lookup for a fingerprint no meter has.
	errUnknownKey = errors.New("unknown key")
	// errRevokedKey is returned by lookup for a meter's revoked key.
	errRevokedKey = errors.New("revoked key")
	// errPolicyKey is wrapped by what lookup returns for a meter's key
	// that was registered under a laxer policy than this server's (a
	// smaller --min-rsa-bits) and that it no longer accepts.
	errPolicyKey = errors.New("the meter's registered key is no longer accepted")
)

// KeyCache keeps parsed registered keys in a bounded LRU so that the report
// path does no database lookup and no key parsing for a known meter, and
// remembers unknown and revoked keys for a short while so that a flood of
// them costs neither the database nor a verification.
//
// Entries are dropped when a key changes: by the server that changes it,
// and on the others by whoever follows key changes (Forget). Only a lookup
// in the store ever adds one, and one that raced with a Forget is not
// kept, so whatever order changes and lookups come in, the cache ends up
// holding only what the store said after the last change. The cache is an
// economy, not the guard: the commit checks, under the meter's lock, that
// the key is still the meter's, and a reading signed with a key that no
// longer is is refused and its key forgotten. While changes cannot be
// followed, SetBypass(true) makes every lookup ask the store.
type KeyCache struct {
	known   *lru.Cache[crypto.Fingerprint, meterKey]
	refused *expirable.LRU[crypto.Fingerprint, error] // errUnknownKey, errRevokedKey or an errPolicyKey
	store   KeyStore
	timeout time.Duration // bounds a lookup that goes to the store
	minRSA  int
	metrics *metrics

	// gen counts invalidations, so that a lookup that raced with one does
	// not put back what was just dropped.
	gen atomic.Uint64
	// bypass is set while key changes may be missed.
	bypass atomic.Bool
}

func newKeyCache(cfg Config, st KeyStore, m *metrics) *KeyCache {
	known, err := lru.New[crypto.Fingerprint, meterKey](cfg.KeyCacheSize)
	if err != nil {
		panic(err) // the size is checked by New
	}
	return &KeyCache{
		known:   known,
		refused: expirable.NewLRU[crypto.Fingerprint, error](cfg.KeyCacheSize, nil, cfg.UnknownKeyTTL),
		store:   st,
		timeout: cfg.KeyLookupTimeout,
		minRSA:  cfg.MinRSABits,
		metrics: m,
	}
}

func (c *KeyCache) newMeterKey(meterID int64, seq int, key *crypto.PublicKey) meterKey {
	return meterKey{meterID: meterID, seq: seq, key: key, observeVerify: c.metrics.verifySeconds.WithLabelValues(key.Algorithm())}
}

// lookup returns the meter key registered under fp, from the cache when it
// can, or errUnknownKey, errRevokedKey or an error wrapping errPolicyKey. A lookup that goes to the store
// is bounded by the lookup timeout, so that a report of an uncached key
// fails fast while the store is unreachable.
func (c *KeyCache) lookup(ctx context.Context, fp crypto.Fingerprint) (meterKey, error) {
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
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	m, err := c.store.MeterByFingerprint(ctx, fp)
	cancel()
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
		// Registered under a laxer policy than today's: refuse it, say
		// why, and remember that, as for an unknown key.
		err = fmt.Errorf("%w (meter %d): %w; register a new key with POST /meters/%d/key", errPolicyKey, m.ID, err, m.ID)
		c.refuse(gen, fp, err)
		return meterKey{}, err
	}
	mk := c.newMeterKey(m.ID, m.KeySeq, key)
	c.known.Add(fp, mk)
	if c.gen.Load() != gen {
		// fp may have changed while the store was read: forget the answer.
		c.known.Remove(fp)
	}
	return mk, nil
}

// refuse remembers for a while that fp is refused with err, unless the
// cache was invalidated since gen.
func (c *KeyCache) refuse(gen uint64, fp crypto.Fingerprint, err error) {
	c.refused.Add(fp, err)
	if c.gen.Load() != gen {
		c.refused.Remove(fp)
	}
}

// Forget drops whatever is cached about fp.
func (c *KeyCache) Forget(fp crypto.Fingerprint) {
	c.gen.Add(1)
	c.known.Remove(fp)
	c.refused.Remove(fp)
}

// Purge drops everything cached.
func (c *KeyCache) Purge() {
	c.gen.Add(1)
	c.known.Purge()
	c.refused.Purge()
}

// SetBypass turns the cache off (true) or back on (false). Turning it back
// on purges it, since changes made meanwhile were not seen.
func (c *KeyCache) SetBypass(on bool) {
	if !on {
		c.Purge()
	}
	c.bypass.Store(on)
}
