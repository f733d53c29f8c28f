package background

import (
	"context"
	"log/slog"
	"time"

	"smartmeters/crypto"
	"smartmeters/store"
)

// KeyChangeListener delivers the key changes made by every server on the
// same store (store.KeyListener on PostgreSQL).
type KeyChangeListener interface {
	// Changes returns the channel of changes; it is closed when the
	// listener is.
	Changes() <-chan store.KeyChange
	// Ping checks the listener's connection.
	Ping() error
}

// KeyChangeStore is what the resync needs from storage: the keys changed
// lately.
type KeyChangeStore interface {
	KeysChangedSince(ctx context.Context, since time.Time) ([]crypto.Fingerprint, error)
}

// KeyCache is the cache KeyChanges keeps in step (ingest.KeyCache).
type KeyCache interface {
	Forget(fp crypto.Fingerprint)
	SetBypass(on bool)
}

// keyPingTimeout bounds one Ping of the key change listener, and one
// resync query.
const keyPingTimeout = 5 * time.Second

// KeyChanges keeps Cache in step with the key changes of the other servers
// on the store: a notification drops the keys it names at once; while the
// listener is disconnected, or does not answer a ping, the cache is
// bypassed, and it is emptied when the listener is back; and every Resync
// the keys changed in the last two periods are dropped again, in case a
// notification went astray.
type KeyChanges struct {
	Listener KeyChangeListener
	Store    KeyChangeStore
	Cache    KeyCache
	Resync   time.Duration    // how often to ping the listener and re-read recent changes
	Now      func() time.Time // the clock; nil for time.Now
	Logger   *slog.Logger
}

// Run follows key changes until ctx is done, and returns nil.
func (k KeyChanges) Run(ctx context.Context) error {
	tick := time.NewTicker(k.Resync)
	defer tick.Stop()
	var down, unanswered bool
	setBypass := func(d, u bool) {
		if was := down || unanswered; was != (d || u) {
			k.Cache.SetBypass(d || u)
			if d || u {
				k.Logger.Warn("key changes may be missed: key cache bypassed")
			} else {
				k.Logger.Info("key changes followed again: key cache emptied and back in use")
			}
		}
		down, unanswered = d, u
	}
	changes := k.Listener.Changes()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ch, ok := <-changes:
			if !ok {
				setBypass(true, unanswered)
				changes = nil
				continue
			}
			for _, fp := range ch.Fingerprints {
				k.Cache.Forget(fp)
			}
			switch {
			case ch.Down:
				setBypass(true, unanswered)
			case ch.Up:
				setBypass(false, unanswered)
			}
		case <-tick.C:
			setBypass(down, !k.ping())
			k.resync(ctx)
		}
	}
}

// ping reports whether the listener answers a ping in time.
func (k KeyChanges) ping() bool {
	errc := make(chan error, 1)
	go func() { errc <- k.Listener.Ping() }()
	select {
	case err := <-errc:
		if err != nil {
			k.Logger.Warn("key change listener ping", "err", err)
		}
		return err == nil
	case <-time.After(keyPingTimeout):
		k.Logger.Warn("key change listener ping: no answer", "timeout", keyPingTimeout)
		return false
	}
}

// resync drops the keys changed in the last two resync periods.
func (k KeyChanges) resync(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, keyPingTimeout)
	defer cancel()
	now := time.Now()
	if k.Now != nil {
		now = k.Now()
	}
	fps, err := k.Store.KeysChangedSince(ctx, now.Add(-2*k.Resync))
	if err != nil {
		k.Logger.Warn("key resync", "err", err)
		return
	}
	for _, fp := range fps {
		k.Cache.Forget(fp)
	}
}
