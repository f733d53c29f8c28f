package db

import (
	"context"
	"fmt"

	"github.com/jmoiron/sqlx"
)

// A Citus cluster holds the schema distributed: every table of a meter
// (its row, its key history, its key events, its readings) is sharded by
// the meter's id and co-located, so that a meter's queries and the ingest
// of its readings run on the one worker that holds its shard; the two
// claim tables that keep usernames and keys unique are sharded by what
// they keep unique, so that their primary keys stay the guard, and a key
// lookup by fingerprint reads one shard. server_keys and goose's version
// table stay on the coordinator, the only node the servers talk to.
//
// distribution is that plan, in the order it is applied: meters first,
// since the other per-meter tables are co-located with it.
var distribution = []struct {
	table, column, colocateWith string
}{
	{"meters", "id", ""},
	{"meter_keys", "meter_id", "meters"},
	{"meter_key_events", "meter_id", "meters"},
	{"readings", "meter_id", "meters"},
	{"rollup_queue", "meter_id", "meters"},
	{"rollup_meters", "meter_id", "meters"},
	{"rollup_spans", "meter_id", "meters"},
	{"key_fingerprints", "fingerprint", "none"},
	{"meter_usernames", "username", "none"},
}

// referenceTables are copied whole to every node: the fleet's rollups and
// their state, small tables that only the rollup follower writes, in the
// transaction that also takes its readings out of the co-located queue.
var referenceTables = []string{"fleet_rollups", "rollup_state"}

// meterUniques are the constraints on meters that Citus cannot keep on a
// table sharded by id (a unique constraint must include the distribution
// column). They are redundant: meter_usernames and key_fingerprints keep
// usernames and keys unique on every store.
var meterUniques = []string{"meters_username_key", "meters_fingerprint_key"}

// ingestFunction is ingest_readings' signature (migration 00008), for
// create_distributed_function: its first argument is a meter id of the
// call's one shard, so Citus runs each call on the worker that holds it.
const ingestFunction = `ingest_readings(bigint, bigint[], bigint[], bigint[], bigint[], bytea[], bigint[], integer[])`

// HasCitus reports whether db is a PostgreSQL database with the citus
// extension: a Citus coordinator, whose schema Distribute distributes.
func HasCitus(ctx context.Context, db *sqlx.DB) (bool, error) {
	if db.DriverName() != Postgres {
		return false, nil
	}
	var ok bool
	err := db.GetContext(ctx, &ok, `SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'citus')`)
	if err != nil {
		return false, fmt.Errorf("look for the citus extension: %w", err)
	}
	return ok, nil
}

// Distribute distributes the schema over the Citus cluster whose
// coordinator db is, and returns what it did, a line a step: nothing when
// it is distributed already, and nothing at all on a database without the
// citus extension. It is what "smartmeters migrate up" runs after the
// migrations, and what converts a database restored from a single node:
// create_distributed_table moves each table's rows into its shards, and
// the rows left behind on the coordinator are then removed. shardCount is
// the number of shards of the meters' tables, or 0 for the cluster's
// citus.shard_count; it is fixed once meters is distributed.
//
// The tables are distributed in one transaction and the function in a
// second (Citus will not change a function in a transaction that has
// written shards in parallel), each under an advisory lock, so that
// servers migrating at once distribute once; a failure leaves the schema
// as it was before that transaction.
func Distribute(ctx context.Context, db *sqlx.DB, shardCount int) ([]string, error) {
	ok, err := HasCitus(ctx, db)
	if err != nil || !ok {
		return nil, err
	}
	var done, moved []string // moved: tables whose rows were copied into shards
	err = inLockedTx(ctx, db, func(tx *sqlx.Tx) error {
		var workers int
		if err := tx.GetContext(ctx, &workers, `SELECT count(*) FROM citus_get_active_worker_nodes()`); err != nil {
			return fmt.Errorf("list workers: %w", err)
		}
		if workers == 0 {
			return fmt.Errorf("the citus extension is installed but the cluster has no active worker; add workers with citus_add_node first")
		}
		if shardCount > 0 {
			if _, err := tx.ExecContext(ctx, fmt.Sprintf(`SET LOCAL citus.shard_count = %d`, shardCount)); err != nil {
				return fmt.Errorf("shard count %d: %w", shardCount, err)
			}
		}
		for _, d := range distribution {
			var distributed bool
			const q = `SELECT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = to_regclass($1))`
			if err := tx.GetContext(ctx, &distributed, q, d.table); err != nil {
				return fmt.Errorf("%s: %w", d.table, err)
			}
			if distributed {
				continue
			}
			if d.table == "meters" {
				for _, c := range meterUniques {
					if _, err := tx.ExecContext(ctx, `ALTER TABLE meters DROP CONSTRAINT IF EXISTS `+c); err != nil {
						return fmt.Errorf("drop %s: %w", c, err)
					}
				}
			}
			if _, err := tx.ExecContext(ctx, `SELECT create_distributed_table($1, $2, colocate_with => $3)`,
				d.table, d.column, colocation(d.colocateWith)); err != nil {
				return fmt.Errorf("%s by %s: %w", d.table, d.column, err)
			}
			how := fmt.Sprintf("distributed %s by %s", d.table, d.column)
			if d.colocateWith != "" && d.colocateWith != "none" {
				how += ", co-located with " + d.colocateWith
			}
			done = append(done, how)
			moved = append(moved, d.table)
		}
		for _, table := range referenceTables {
			var distributed bool
			const q = `SELECT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = to_regclass($1))`
			if err := tx.GetContext(ctx, &distributed, q, table); err != nil {
				return fmt.Errorf("%s: %w", table, err)
			}
			if distributed {
				continue
			}
			if _, err := tx.ExecContext(ctx, `SELECT create_reference_table($1)`, table); err != nil {
				return fmt.Errorf("%s as a reference table: %w", table, err)
			}
			done = append(done, "made "+table+" a reference table")
			moved = append(moved, table)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = inLockedTx(ctx, db, func(tx *sqlx.Tx) error {
		var delegated bool
		const q = `
			SELECT EXISTS (SELECT 1 FROM pg_dist_object
			WHERE objid = to_regprocedure($1) AND distribution_argument_index IS NOT NULL)`
		if err := tx.GetContext(ctx, &delegated, q, ingestFunction); err != nil {
			return fmt.Errorf("ingest_readings: %w", err)
		}
		if delegated {
			return nil
		}
		const create = `SELECT create_distributed_function($1, 'p_meter', colocate_with => 'meters')`
		if _, err := tx.ExecContext(ctx, create, ingestFunction); err != nil {
			return fmt.Errorf("ingest_readings: %w", err)
		}
		done = append(done, "distributed function ingest_readings by its meter, co-located with meters")
		return nil
	})
	if err != nil {
		return done, err
	}
	// The rows that create_distributed_table copied into the shards are
	// still on the coordinator, invisible; remove them, partitions
	// included. Each removal commits on its own: it only frees space.
	for _, table := range moved {
		if err := truncateLocal(ctx, db, table); err != nil {
			return done, err
		}
	}
	return done, nil
}

// inLockedTx runs fn in a transaction that holds the distribution lock.
func inLockedTx(ctx context.Context, db *sqlx.DB, fn func(*sqlx.Tx) error) error {
	tx, err := db.BeginTxx(ctx, nil)
	if err != nil {
		return fmt.Errorf("distribute: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	// The key is a constant of this program's own.
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(7255846109543391301)`); err != nil {
		return fmt.Errorf("distribute: lock: %w", err)
	}
	if err := fn(tx); err != nil {
		return fmt.Errorf("distribute: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("distribute: commit: %w", err)
	}
	return nil
}

// colocation is the colocate_with argument of create_distributed_table.
func colocation(with string) string {
	if with == "" {
		return "default"
	}
	return with
}

// truncateLocal removes the coordinator's local rows of table, or of its
// partitions when it is partitioned.
func truncateLocal(ctx context.Context, db *sqlx.DB, table string) error {
	const q = `
		SELECT truncate_local_data_after_distributing_table(c.oid)
		FROM pg_class c
		WHERE c.relkind = 'r' AND (c.oid = to_regclass($1)
			OR c.oid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = to_regclass($1)))`
	if _, err := db.ExecContext(ctx, q, table); err != nil {
		return fmt.Errorf("remove the coordinator's copy of %s: %w", table, err)
	}
	return nil
}
