package db_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"smartmeters/db"
	"smartmeters/db/dbtest"
)

func TestParseURL(t *testing.T) {
	tests := []struct {
		url, driver, dsnPrefix string
		wantErr                bool
	}{
		{url: "postgres://u@localhost/x?sslmode=disable", driver: db.Postgres, dsnPrefix: "postgres://u@localhost/x"},
		{url: "postgresql://localhost/x", driver: db.Postgres, dsnPrefix: "postgresql://localhost/x"},
		{url: "sqlite:smartmeters.db", driver: db.SQLite, dsnPrefix: "file:smartmeters.db?"},
		{url: "sqlite:/var/lib/sm/data.db", driver: db.SQLite, dsnPrefix: "file:/var/lib/sm/data.db?"},
		{url: "data/readings.db", driver: db.SQLite, dsnPrefix: "file:data/readings.db?"},
		{url: "", wantErr: true},
		{url: "sqlite:", wantErr: true},
		{url: "sqlite:a.db?cache=shared", wantErr: true},
		{url: "mysql://root@localhost/x", wantErr: true},
		{url: "postgres://%zz", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			driver, dsn, err := db.ParseURL(tt.url)
			if tt.wantErr {
				if !errors.Is(err, db.ErrBadURL) {
					t.Fatalf("ParseURL(%q) error = %v, want ErrBadURL", tt.url, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseURL(%q): %v", tt.url, err)
			}
			if driver != tt.driver || !strings.HasPrefix(dsn, tt.dsnPrefix) {
				t.Errorf("ParseURL(%q) = %q, %q; want %q, %q…", tt.url, driver, dsn, tt.driver, tt.dsnPrefix)
			}
		})
	}
}

func TestParseURLRedactsPassword(t *testing.T) {
	_, _, err := db.ParseURL("mysql://root:hunter2@localhost/x")
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("error %v should exist and hide the password", err)
	}
}

func TestMigrations(t *testing.T) {
	ctx := context.Background()
	for _, b := range dbtest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			d := b.Open(t)
			if err := db.CheckSchema(ctx, d); !errors.Is(err, db.ErrSchemaBehind) {
				t.Fatalf("CheckSchema on an empty database = %v, want ErrSchemaBehind", err)
			}
			p, err := db.NewMigrator(d)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := p.Up(ctx); err != nil {
				t.Fatalf("up: %v", err)
			}
			if err := db.CheckSchema(ctx, d); err != nil {
				t.Fatalf("CheckSchema after up: %v", err)
			}
			_, target, err := p.GetVersions(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := p.DownTo(ctx, 0); err != nil {
				t.Fatalf("down to 0: %v", err)
			}
			var tables int
			if err := d.GetContext(ctx, &tables, tableCountQuery(b.Driver())); err != nil {
				t.Fatal(err)
			}
			if tables != 0 {
				t.Fatalf("after down to 0, %d of meters/readings remain", tables)
			}
			if _, err := p.Up(ctx); err != nil {
				t.Fatalf("up again: %v", err)
			}
			current, _, err := p.GetVersions(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if current != target {
				t.Fatalf("version after up, down, up = %d, want %d", current, target)
			}
		})
	}
}

func tableCountQuery(driver string) string {
	if driver == db.Postgres {
		return `SELECT count(*) FROM information_schema.tables
			WHERE table_schema = current_schema() AND table_name IN ('meters', 'readings')`
	}
	return `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ('meters', 'readings')`
}

// TestConcurrentMigrateUp runs several migrators at once against one
// PostgreSQL database, as several hosts deploying together would; on a
// Citus coordinator they also distribute the schema once.
func TestConcurrentMigrateUp(t *testing.T) {
	bs := dbtest.PostgresBackends(t)
	if len(bs) == 0 {
		t.Skipf("needs PostgreSQL: set %s", dbtest.EnvURL)
	}
	for _, b := range bs {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			const n = 4
			errs := make(chan error, n)
			for range n {
				go func() {
					d, err := db.Open(ctx, b.URL)
					if err != nil {
						errs <- err
						return
					}
					defer d.Close()
					_, err = db.Migrate(ctx, d)
					errs <- err
				}()
			}
			for range n {
				if err := <-errs; err != nil {
					t.Errorf("concurrent migrate up: %v", err)
				}
			}
			conn := b.Open(t)
			if err := db.CheckSchema(ctx, conn); err != nil {
				t.Fatalf("after concurrent up: %v", err)
			}
			if b.Name == dbtest.Citus {
				dbtest.RequireDistributed(t, conn)
			}
		})
	}
}

// TestOpenReadOnly checks that a read-only pool reads what the writer
// wrote and cannot write itself, on both stores.
func TestOpenReadOnly(t *testing.T) {
	for _, b := range dbtest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			rw := b.OpenMigrated(t)
			ctx := context.Background()
			if _, err := rw.ExecContext(ctx, `INSERT INTO meters (username, public_key, fingerprint, algorithm, key_seq, registered_at) VALUES ('ro', $1, $2, 'ed25519', 1, $3)`,
				[]byte{1}, make([]byte, 32), time.Now()); err != nil {
				t.Fatal(err)
			}
			ro, err := db.OpenReadOnly(ctx, b.URL)
			if err != nil {
				t.Fatal(err)
			}
			defer ro.Close()
			var n int
			if err := ro.GetContext(ctx, &n, `SELECT count(*) FROM meters`); err != nil || n != 1 {
				t.Fatalf("read through the read-only pool: %d, %v", n, err)
			}
			if _, err := ro.ExecContext(ctx, `DELETE FROM meters`); err == nil {
				t.Fatal("the read-only pool deleted a row")
			}
			if _, err := ro.ExecContext(ctx, `UPDATE meters SET username = 'x'`); err == nil {
				t.Fatal("the read-only pool updated a row")
			}
		})
	}
}
