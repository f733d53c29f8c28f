// Package dbtest gives tests real, migrated, isolated databases: a fresh
// SQLite file always, and a fresh PostgreSQL schema when
// SMARTMETERS_TEST_DATABASE_URL names a server.
package dbtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"github.com/jmoiron/sqlx"

	"smartmeters/db"
)

// EnvURL names the environment variable that points tests at PostgreSQL.
const EnvURL = "SMARTMETERS_TEST_DATABASE_URL"

// EnvRequire names the environment variable that makes a missing EnvURL a
// failure rather than a skip: CI sets it, so that a run can never pass
// with the PostgreSQL half of the tests quietly gone.
const EnvRequire = "SMARTMETERS_TEST_REQUIRE_POSTGRES"

// Backend is one database a test runs against.
type Backend struct {
	Name string // "sqlite" or "postgres"
	URL  string // a URL that db.Open accepts and that reaches this database
}

// Backends returns SQLite and, when EnvURL is set, PostgreSQL, each empty
// and unmigrated; everything is removed when the test ends. When EnvURL is
// unset it logs that the PostgreSQL half is skipped.
func Backends(t testing.TB) []Backend {
	t.Helper()
	bs := []Backend{SQLite(t)}
	if pg, ok := Postgres(t); ok {
		bs = append(bs, pg)
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
	ctx := context.Background()
	admin, err := db.Open(ctx, base)
	if err != nil {
		t.Fatalf("%s: %v", EnvURL, err)
	}
	t.Cleanup(func() { admin.Close() })
	schema := "test_" + randomHex(t, 8)
	if _, err := admin.ExecContext(ctx, `CREATE SCHEMA `+schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		if _, err := admin.ExecContext(context.Background(), `DROP SCHEMA `+schema+` CASCADE`); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("%s: %v", EnvURL, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return Backend{Name: db.Postgres, URL: u.String()}, true
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

// OpenMigrated connects to b and applies every migration.
func (b Backend) OpenMigrated(t testing.TB) *sqlx.DB {
	t.Helper()
	d := b.Open(t)
	if _, err := db.Migrate(context.Background(), d); err != nil {
		t.Fatalf("migrate %s: %v", b.Name, err)
	}
	return d
}

func randomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
