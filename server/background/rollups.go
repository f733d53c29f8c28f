package background

import (
	"context"
	"log/slog"
	"time"
)

// RollupStore is what keeping the fleet's rollups needs from storage.
type RollupStore interface {
	FollowRollups(ctx context.Context) (int, error)
	DropRollupsBefore(ctx context.Context, horizon time.Time) (int64, error)
}

// Rollups rolls up the readings stored, every Every, and, when Retention
// is set, drops the rollups older than that once an hour. Several servers
// may run it at once: the store lets one follower at a time work, and the
// others find nothing to do. Fleet answers never wait for it: they add
// what is not yet rolled up.
type Rollups struct {
	Store     RollupStore
	Every     time.Duration    // how often to roll up
	Retention time.Duration    // drop rollups older than this; 0 keeps them all
	Now       func() time.Time // the clock; nil for time.Now
	Logger    *slog.Logger
}

// Run keeps the rollups until ctx is done, and returns nil.
func (r Rollups) Run(ctx context.Context) error {
	tick := time.NewTicker(r.Every)
	defer tick.Stop()
	var lastDrop time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		r.Follow(ctx)
		if now := r.now(); r.Retention > 0 && now.Sub(lastDrop) >= time.Hour {
			lastDrop = now
			n, err := r.Store.DropRollupsBefore(ctx, now.Add(-r.Retention))
			if err != nil && ctx.Err() == nil {
				r.Logger.Warn("rollups retention", "err", err)
			}
			if n > 0 {
				r.Logger.Info("rollups dropped", "buckets", n, "retention", r.Retention)
			}
		}
	}
}

// Follow rolls up what is queued once.
func (r Rollups) Follow(ctx context.Context) {
	n, err := r.Store.FollowRollups(ctx)
	if err != nil && ctx.Err() == nil {
		r.Logger.Warn("rollups", "err", err)
	}
	if n > 0 {
		r.Logger.Debug("readings rolled up", "readings", n)
	}
}

func (r Rollups) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}
