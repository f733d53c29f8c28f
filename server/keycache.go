package server

import (
	"context"
	"errors"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/hashicorp/golang-lru/v2/expirable"

	"smartmeters/crypto"
	"smartmeters/store"
)

// meterKey is a registered key, parsed once, with the meter it belongs to.
type meterKey struct {
	meterID int64
	key     *crypto.PublicKey
}

// keyCache keeps parsed registered keys in a bounded LRU so that the report
// path does no database lookup and no key parsing for a known meter, and
// remembers unknown keys for a short while so that a flood of them costs
// neither the database nor a verification.
type keyCache struct {
	known   *lru.Cache[crypto.Fingerprint, meterKey]
	unknown *expirable.LRU[crypto.Fingerprint, struct{}]
	store   Store
	minRSA  int
	metrics *metrics
}

func newKeyCache(size int, negativeTTL time.Duration, st Store, minRSABits int, m *metrics) *keyCache {
	known, err := lru.New[crypto.Fingerprint, meterKey](size)
	if err != nil {
		panic(err) // size is validated by Config.withDefaults
	}
	return &keyCache{
		known:   known,
		unknown: expirable.NewLRU[crypto.Fingerprint, struct{}](size, nil, negativeTTL),
		store:   st,
		minRSA:  minRSABits,
		metrics: m,
	}
}

// errUnknownKey is returned by lookup for a fingerprint no meter has.
var errUnknownKey = errors.New("unknown key")

// lookup returns the meter key registered under fp, from the cache when it
// can, or errUnknownKey.
func (c *keyCache) lookup(ctx context.Context, fp crypto.Fingerprint) (meterKey, error) {
	if mk, ok := c.known.Get(fp); ok {
		c.metrics.keyCacheHits.Inc()
		return mk, nil
	}
	if _, ok := c.unknown.Get(fp); ok {
		c.metrics.keyCacheHits.Inc()
		return meterKey{}, errUnknownKey
	}
	c.metrics.keyCacheMisses.Inc()
	m, err := c.store.MeterByFingerprint(ctx, fp)
	if errors.Is(err, store.ErrNotFound) {
		c.unknown.Add(fp, struct{}{})
		return meterKey{}, errUnknownKey
	}
	if err != nil {
		return meterKey{}, err
	}
	key, err := crypto.ParsePublicKeyDER(m.PublicKey, c.minRSA)
	if err != nil {
		// Registered under a weaker policy than today's: refuse it, and
		// remember that, as for an unknown key.
		c.unknown.Add(fp, struct{}{})
		return meterKey{}, errUnknownKey
	}
	mk := meterKey{meterID: m.ID, key: key}
	c.known.Add(fp, mk)
	return mk, nil
}

// add caches a freshly registered key and forgets that it was unknown.
func (c *keyCache) add(meterID int64, key *crypto.PublicKey) {
	fp := key.Fingerprint()
	c.unknown.Remove(fp)
	c.known.Add(fp, meterKey{meterID: meterID, key: key})
}
