package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/urfave/cli/v2"

	"smartmeters/db"
	"smartmeters/server"
	"smartmeters/store"
)

// defaultPartitionsAhead is how far ahead of now `serve` and `migrate up`
// keep readings partitions created on PostgreSQL.
const defaultPartitionsAhead = 62 * 24 * time.Hour

// fleetFlags are the serve flags for running several servers on one
// store, and for readings retention.
func fleetFlags() []cli.Flag {
	return []cli.Flag{
		&cli.DurationFlag{Name: "retention", Usage: "drop readings older than this (by timestamp), a month's partition at a time (PostgreSQL); 0 keeps them all", EnvVars: envVar("RETENTION")},
		&cli.DurationFlag{Name: "partitions-ahead", Value: defaultPartitionsAhead, Usage: "create readings partitions this far ahead of now (PostgreSQL)", EnvVars: envVar("PARTITIONS_AHEAD")},
		&cli.DurationFlag{Name: "key-resync", Value: 30 * time.Second, Usage: "how often key changes of the last two periods are re-read, as a safety net behind LISTEN/NOTIFY (PostgreSQL)", EnvVars: envVar("KEY_RESYNC")},
	}
}

// applyFleetFlags checks the fleet flags and fills in cfg's fleet fields.
func applyFleetFlags(c *cli.Context, cfg *server.Config) error {
	for _, name := range []string{"retention", "partitions-ahead", "key-resync"} {
		if c.Duration(name) < 0 {
			return fmt.Errorf("--%s %s: must not be negative", name, c.Duration(name))
		}
	}
	if c.Duration("key-resync") == 0 {
		return fmt.Errorf("--key-resync 0: must be positive")
	}
	cfg.Retention = c.Duration("retention")
	cfg.PartitionsAhead = c.Duration("partitions-ahead")
	cfg.KeyResyncInterval = c.Duration("key-resync")
	return nil
}

// startFleet connects cfg to the open store: /readyz checks its schema
// and, on PostgreSQL, the server follows other servers' key changes. Call
// the returned stop when the server is done.
func startFleet(cfg *server.Config, driver, url string, conn *sqlx.DB, logger *slog.Logger) (stop func(), err error) {
	cfg.SchemaCheck = func(ctx context.Context) error { return db.CheckSchema(ctx, conn) }
	if driver != db.Postgres {
		return func() {}, nil
	}
	kl, err := store.ListenKeyChanges(url, logger)
	if err != nil {
		return nil, fmt.Errorf("listen for key changes: %w", err)
	}
	cfg.KeyChanges = kl
	return func() { kl.Close() }, nil
}
