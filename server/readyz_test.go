package server_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"smartmeters/db/dbtest"
	"smartmeters/server"
	"smartmeters/store"
)

// TestReadyzSchema checks that /readyz answers 503 while the schema check
// fails, and that the check's answer is reused for SchemaCheckTTL.
func TestReadyzSchema(t *testing.T) {
	var (
		clock  atomic.Int64
		calls  atomic.Int32
		behind atomic.Bool
	)
	clock.Store(now.UnixMilli())
	srv := newServer(t, testConfig(func(c *server.Config) {
		c.Now = func() time.Time { return time.UnixMilli(clock.Load()) }
		c.SchemaCheck = func(context.Context) error {
			calls.Add(1)
			if behind.Load() {
				return errors.New("database schema is behind: at version 3, this binary needs 5")
			}
			return nil
		}
		c.SchemaCheckTTL = 5 * time.Second
	}), store.New(dbtest.SQLite(t).OpenMigrated(t)))
	pub := httptest.NewServer(checkedPublic(t, srv.PublicHandler()))
	t.Cleanup(pub.Close)
	ready := func() response { return do(t, mustRequest(t, http.MethodGet, pub.URL+"/readyz")) }

	if r := ready(); r.status != http.StatusOK {
		t.Fatalf("current schema: %d %s", r.status, r.rawBody)
	}
	behind.Store(true)
	if r := ready(); r.status != http.StatusOK || calls.Load() != 1 {
		t.Fatalf("within the TTL: %d, %d checks; want the cached 200 and 1 check", r.status, calls.Load())
	}
	clock.Add(int64(6 * time.Second / time.Millisecond))
	wantProblem(t, ready(), http.StatusServiceUnavailable, "unavailable")
	if calls.Load() != 2 {
		t.Fatalf("%d checks, want 2", calls.Load())
	}
}
