package db

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"

	"github.com/jmoiron/sqlx"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

//go:embed migrations/postgres/*.sql migrations/sqlite/*.sql
var migrations embed.FS

// ErrSchemaBehind is returned by CheckSchema when migrations are pending.
var ErrSchemaBehind = errors.New("database schema is behind")

// NewMigrator returns a goose Provider over the migrations for db's driver.
// On PostgreSQL it takes a session advisory lock around every operation, so
// concurrent migrators on several hosts apply each migration once.
func NewMigrator(db *sqlx.DB) (*goose.Provider, error) {
	var (
		dialect goose.Dialect
		dir     string
		opts    []goose.ProviderOption
	)
	switch db.DriverName() {
	case Postgres:
		dialect, dir = goose.DialectPostgres, "migrations/postgres"
		locker, err := lock.NewPostgresSessionLocker(lock.WithLockTimeout(1, 300))
		if err != nil {
			return nil, fmt.Errorf("create migration lock: %w", err)
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	case SQLite:
		dialect, dir = goose.DialectSQLite3, "migrations/sqlite"
	default:
		return nil, fmt.Errorf("migrations: unsupported driver %q", db.DriverName())
	}
	fsys, err := fs.Sub(migrations, dir)
	if err != nil {
		return nil, err
	}
	p, err := goose.NewProvider(dialect, db.DB, fsys, opts...)
	if err != nil {
		return nil, fmt.Errorf("load migrations: %w", err)
	}
	return p, nil
}

// CheckSchema returns an error wrapping ErrSchemaBehind, with the current
// and expected versions, when db has migrations still to apply.
func CheckSchema(ctx context.Context, db *sqlx.DB) error {
	p, err := NewMigrator(db)
	if err != nil {
		return err
	}
	current, target, err := p.GetVersions(ctx)
	if err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if current < target {
		return fmt.Errorf("%w: at version %d, this binary needs %d", ErrSchemaBehind, current, target)
	}
	return nil
}

// Migrate applies every pending migration and, on a Citus coordinator,
// distributes the schema (Distribute, with the cluster's shard count).
func Migrate(ctx context.Context, db *sqlx.DB) ([]*goose.MigrationResult, error) {
	p, err := NewMigrator(db)
	if err != nil {
		return nil, err
	}
	res, err := p.Up(ctx)
	if err != nil {
		return res, fmt.Errorf("migrate up: %w", err)
	}
	if _, err := Distribute(ctx, db, 0); err != nil {
		return res, err
	}
	return res, nil
}
