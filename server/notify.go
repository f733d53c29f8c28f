package server

import (
	"context"
	"sync"
	"time"

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

// keyPingTimeout bounds one Ping of the key change listener.
const keyPingTimeout = 5 * time.Second

// withFleetDefaults fills in the defaults of the fleet fields of Config.
func (c Config) withFleetDefaults() Config {
	if c.KeyResyncInterval <= 0 {
		c.KeyResyncInterval = 30 * time.Second
	}
	if c.PartitionsAhead <= 0 {
		c.PartitionsAhead = 62 * 24 * time.Hour
	}
	if c.PartitionCheckInterval <= 0 {
		c.PartitionCheckInterval = time.Hour
	}
	if c.SchemaCheckTTL <= 0 {
		c.SchemaCheckTTL = 5 * time.Second
	}
	return c
}

// followKeyChanges keeps the key cache in step with the other servers on
// the store until ctx is done: a notification drops the keys it names at
// once; while the listener is disconnected, or does not answer a ping, the
// cache is bypassed, and it is emptied when the listener is back; and every
// KeyResyncInterval the keys changed in the last two intervals are dropped
// again, in case a notification went astray.
func (s *Server) followKeyChanges(ctx context.Context, l KeyChangeListener) {
	tick := time.NewTicker(s.cfg.KeyResyncInterval)
	defer tick.Stop()
	var down, unanswered bool
	setBypass := func(d, u bool) {
		if was := down || unanswered; was != (d || u) {
			s.keys.setBypass(d || u)
			if d || u {
				s.logger.Warn("key changes may be missed: key cache bypassed")
			} else {
				s.logger.Info("key changes followed again: key cache emptied and back in use")
			}
		}
		down, unanswered = d, u
	}
	changes := l.Changes()
	for {
		select {
		case <-ctx.Done():
			return
		case ch, ok := <-changes:
			if !ok {
				setBypass(true, unanswered)
				changes = nil
				continue
			}
			for _, fp := range ch.Fingerprints {
				s.keys.forget(fp)
			}
			switch {
			case ch.Down:
				setBypass(true, unanswered)
			case ch.Up:
				setBypass(false, unanswered)
			}
		case <-tick.C:
			setBypass(down, !s.pingKeyListener(l))
			s.resyncKeys(ctx)
		}
	}
}

// pingKeyListener reports whether the listener answers a ping in time.
func (s *Server) pingKeyListener(l KeyChangeListener) bool {
	errc := make(chan error, 1)
	go func() { errc <- l.Ping() }()
	select {
	case err := <-errc:
		if err != nil {
			s.logger.Warn("key change listener ping", "err", err)
		}
		return err == nil
	case <-time.After(keyPingTimeout):
		s.logger.Warn("key change listener ping: no answer", "timeout", keyPingTimeout)
		return false
	}
}

// resyncKeys drops the keys changed in the last two resync intervals.
func (s *Server) resyncKeys(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, keyPingTimeout)
	defer cancel()
	fps, err := s.store.KeysChangedSince(ctx, s.cfg.Now().Add(-2*s.cfg.KeyResyncInterval))
	if err != nil {
		s.logger.Warn("key resync", "err", err)
		return
	}
	for _, fp := range fps {
		s.keys.forget(fp)
	}
}

// startBackground starts the fleet's background work (following key
// changes, maintaining partitions) until ctx is done or the returned stop
// is called; stop waits for it to end.
func (s *Server) startBackground(ctx context.Context) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	if s.cfg.KeyChanges != nil {
		wg.Go(func() { s.followKeyChanges(ctx, s.cfg.KeyChanges) })
	}
	wg.Go(func() { s.maintainPartitions(ctx) })
	return func() {
		cancel()
		wg.Wait()
	}
}
