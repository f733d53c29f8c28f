// Package dbtest gives tests real, migrated, isolated databases: a fresh
// SQLite file always, a fresh PostgreSQL schema when
// SMARTMETERS_TEST_DATABASE_URL names a server, and a fresh schema
// distributed over a Citus cluster when SMARTMETERS_TEST_CITUS_URL names
// its coordinator.
package dbtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"smartmeters/db"
)

// EnvURL names the environment variable that points tests at PostgreSQL.
const EnvURL = "SMARTMETERS_TEST_DATABASE_URL"

// EnvRequire names the environment variable that makes a missing EnvURL a
// failure rather than a skip: CI sets it, so that a run can never pass
// with the PostgreSQL half of the tests quietly gone.
const EnvRequire = "SMARTMETERS_TEST_REQUIRE_POSTGRES"

// EnvCitusURL names the environment variable that points tests at the
// coordinator of a Citus cluster with workers, whose database has the
// citus extension.
const EnvCitusURL = "SMARTMETERS_TEST_CITUS_URL"

// Citus is the Name of a Backend on a Citus cluster.
const Citus = "citus"

// citusShards is the shard count of the tests' distributed schemas: a
// few per worker, so that a test's readings span shards on every worker
// while creating its schema stays quick.
const citusShards = 4

// Backend is one database a test runs against.
type Backend struct {
	Name string // "sqlite", "postgres" or "citus"
	URL  string // a URL that db.Open accepts and that reaches this database
}

// Driver is the database/sql driver of b: db.SQLite, or db.Postgres for
// PostgreSQL and Citus.
func (b Backend) Driver() string {
	if b.Name == db.SQLite {
		return db.SQLite
	}
	return db.Postgres
}

// Backends returns SQLite, PostgreSQL when EnvURL is set and Citus when
// EnvCitusURL is, each empty and unmigrated; everything is removed when
// the test ends. It logs which of them are skipped, and why.
func Backends(t testing.TB) []Backend {
	t.Helper()
	return append([]Backend{SQLite(t)}, PostgresBackends(t)...)
}

// PostgresBackends returns the backends of Backends that are PostgreSQL:
// one server, and a Citus cluster.
func PostgresBackends(t testing.TB) []Backend {
	t.Helper()
	var bs []Backend
	if pg, ok := Postgres(t); ok {
		bs = append(bs, pg)
	}
	if c, ok := CitusCluster(t); ok {
		bs = append(bs, c)
	}
	return bs
}

// SQLite returns a fresh SQLite database file in a temporary directory.
func SQLite(t testing.TB) Backend {
	t.Helper()
	return Backend{Name: db.SQLite, URL: "sqlite:" + filepath.Join(t.TempDir(), "test.db")}
}

// Postgres returns a fresh schema on the server EnvURL names, reached
// through a URL whose search_path selects it, and false when EnvURL is
// unset; then the test fails instead if EnvRequire is set.
func Postgres(t testing.TB) (Backend, bool) {
	t.Helper()
	base := os.Getenv(EnvURL)
	if base == "" {
		if os.Getenv(EnvRequire) != "" {
			t.Fatalf("%s is set but %s is not: this run must test PostgreSQL", EnvRequire, EnvURL)
		}
		t.Logf("PostgreSQL part skipped: set %s to run it", EnvURL)
		return Backend{}, false
	}
	return Backend{Name: db.Postgres, URL: freshSchema(t, EnvURL, base, nil)}, true
}

// CitusCluster returns a fresh schema on the Citus coordinator that
// EnvCitusURL names, which OpenMigrated distributes over the cluster's
// workers, and false when EnvCitusURL is unset.
func CitusCluster(t testing.TB) (Backend, bool) {
	t.Helper()
	base := os.Getenv(EnvCitusURL)
	if base == "" {
		t.Logf("Citus part skipped: set %s to a Citus coordinator to run it", EnvCitusURL)
		return Backend{}, false
	}
	params := map[string]string{"citus.shard_count": strconv.Itoa(citusShards)}
	return Backend{Name: Citus, URL: freshSchema(t, EnvCitusURL, base, params)}, true
}

// freshSchema creates a schema on the server at base (from the variable
// env), drops it when the test ends, and returns a URL that selects it,
// with params added as run-time parameters of its connections.
func freshSchema(t testing.TB, env, base string, params map[string]string) string {
	t.Helper()
	ctx := context.Background()
	admin, err := db.Open(ctx, base)
	if err != nil {
		t.Fatalf("%s: %v", env, err)
	}
	t.Cleanup(func() { admin.Close() })
	schema := "test_" + randomHex(t, 8)
	if _, err := admin.ExecContext(ctx, `CREATE SCHEMA `+schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		// A second try: on a cluster whose worker restarted, the first can
		// fail on a connection to it that the coordinator had kept.
		_, err := admin.ExecContext(context.Background(), `DROP SCHEMA `+schema+` CASCADE`)
		if err != nil {
			_, err = admin.ExecContext(context.Background(), `DROP SCHEMA `+schema+` CASCADE`)
		}
		if err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("%s: %v", env, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	for k, v := range params {
		q.Set(k, v)
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// Open connects to b and closes the connection when the test ends.
func (b Backend) Open(t testing.TB) *sqlx.DB {
	t.Helper()
	d, err := db.Open(context.Background(), b.URL)
	if err != nil {
		t.Fatalf("open %s: %v", b.Name, err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// OpenMigrated connects to b and applies every migration; on Citus that
// distributes the schema, which it checks.
func (b Backend) OpenMigrated(t testing.TB) *sqlx.DB {
	t.Helper()
	d := b.Open(t)
	if _, err := db.Migrate(context.Background(), d); err != nil {
		t.Fatalf("migrate %s: %v", b.Name, err)
	}
	if b.Name == Citus {
		RequireDistributed(t, d)
	}
	return d
}

// RequireDistributed fails the test unless every table of a meter, the
// two claim tables and the rollups' per-meter tables are distributed
// tables of the Citus cluster that d is on, and the fleet's rollups and
// their state reference tables, as citus_tables lists them.
func RequireDistributed(t testing.TB, d *sqlx.DB) {
	t.Helper()
	const q = `
		SELECT t FROM unnest($1::text[], $2::text[]) AS x (t, kind)
		WHERE NOT EXISTS (
			SELECT 1 FROM public.citus_tables c
			WHERE c.table_name = to_regclass(t) AND c.citus_table_type = kind)`
	var missing []string
	tables := pq.StringArray{"meters", "meter_keys", "meter_key_events", "readings", "key_fingerprints", "meter_usernames",
		"rollup_queue", "rollup_meters", "rollup_spans", "fleet_rollups", "rollup_state"}
	kinds := pq.StringArray{"distributed", "distributed", "distributed", "distributed", "distributed", "distributed",
		"distributed", "distributed", "distributed", "reference", "reference"}
	if err := d.SelectContext(context.Background(), &missing, q, tables, kinds); err != nil {
		t.Fatalf("citus_tables: %v", err)
	}
	if len(missing) > 0 {
		t.Fatalf("not distributed on the cluster: %v", missing)
	}
}

func randomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
