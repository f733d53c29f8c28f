package background

import (
	"context"
	"log/slog"
	"time"

	"smartmeters/store"
)

// PartitionStore is what partition maintenance needs from storage. Both
// methods do nothing on a store that is not partitioned (SQLite).
type PartitionStore interface {
	EnsurePartitions(ctx context.Context, from, to time.Time) ([]store.Partition, error)
	DropPartitionsBefore(ctx context.Context, horizon time.Time) ([]store.Partition, int64, error)
}

// Partitions creates the readings partitions from now to Ahead ahead and,
// when Retention is set, drops those that end before now minus Retention;
// at once and then every Every. Several servers may do it at once: the
// store serialises them.
type Partitions struct {
	Store     PartitionStore
	Ahead     time.Duration    // create partitions this far ahead of now
	Retention time.Duration    // drop readings older than this; 0 keeps them all
	Every     time.Duration    // how often to check
	Now       func() time.Time // the clock; nil for time.Now
	Logger    *slog.Logger
}

// Run maintains the partitions until ctx is done, and returns nil.
func (p Partitions) Run(ctx context.Context) error {
	tick := time.NewTicker(p.Every)
	defer tick.Stop()
	for {
		p.Check(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// Check creates and drops partitions once.
func (p Partitions) Check(ctx context.Context) {
	now := time.Now()
	if p.Now != nil {
		now = p.Now()
	}
	created, err := p.Store.EnsurePartitions(ctx, now, now.Add(p.Ahead))
	for _, part := range created {
		p.Logger.Info("readings partition created", "partition", part.Name, "from", part.From, "to", part.To)
	}
	if err != nil && ctx.Err() == nil {
		p.Logger.Warn("readings partitions", "err", err)
	}
	if p.Retention <= 0 {
		return
	}
	horizon := now.Add(-p.Retention)
	dropped, expired, err := p.Store.DropPartitionsBefore(ctx, horizon)
	for _, part := range dropped {
		p.Logger.Info("readings partition dropped", "partition", part.Name, "to", part.To, "retention", p.Retention)
	}
	if expired > 0 {
		p.Logger.Info("readings expired from the default partition", "rows", expired, "before", horizon)
	}
	if err != nil && ctx.Err() == nil {
		p.Logger.Warn("readings retention", "err", err)
	}
}
