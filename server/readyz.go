package server

import (
	"context"
	"sync"
	"time"
)

// schemaState caches the outcome of Config.SchemaCheck, so that /readyz,
// which orchestrators poll often, reads the schema version at most once per
// SchemaCheckTTL.
type schemaState struct {
	mu      sync.Mutex
	checked time.Time
	err     error
}

// checkSchema returns the error of the latest schema check, running it
// when the cached one is older than SchemaCheckTTL; nil when no check is
// configured.
func (s *Server) checkSchema(ctx context.Context) error {
	if s.cfg.SchemaCheck == nil {
		return nil
	}
	st := &s.schema
	st.mu.Lock()
	defer st.mu.Unlock()
	now := s.cfg.Now()
	if !st.checked.IsZero() && now.Sub(st.checked) < s.cfg.SchemaCheckTTL {
		return st.err
	}
	st.err = s.cfg.SchemaCheck(ctx)
	st.checked = now
	return st.err
}
