package server

import (
	"context"
	"time"
)

// maintainPartitions creates the readings partitions from now to
// PartitionsAhead ahead and, when Retention is set, drops those past it;
// at once and then every PartitionCheckInterval until ctx is done. Several
// servers may do it at once: the store serialises them. On SQLite it does
// nothing.
func (s *Server) maintainPartitions(ctx context.Context) {
	tick := time.NewTicker(s.cfg.PartitionCheckInterval)
	defer tick.Stop()
	for {
		s.checkPartitions(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (s *Server) checkPartitions(ctx context.Context) {
	now := s.cfg.Now()
	created, err := s.store.EnsurePartitions(ctx, now, now.Add(s.cfg.PartitionsAhead))
	for _, p := range created {
		s.logger.Info("readings partition created", "partition", p.Name, "from", p.From, "to", p.To)
	}
	if err != nil && ctx.Err() == nil {
		s.logger.Warn("readings partitions", "err", err)
	}
	if s.cfg.Retention <= 0 {
		return
	}
	horizon := now.Add(-s.cfg.Retention)
	dropped, expired, err := s.store.DropPartitionsBefore(ctx, horizon)
	for _, p := range dropped {
		s.logger.Info("readings partition dropped", "partition", p.Name, "to", p.To, "retention", s.cfg.Retention)
	}
	if expired > 0 {
		s.logger.Info("readings expired from the default partition", "rows", expired, "before", horizon)
	}
	if err != nil && ctx.Err() == nil {
		s.logger.Warn("readings retention", "err", err)
	}
}
