// Package db owns connecting to the store and migrating its schema.
//
// A database URL selects the store: postgres:// or postgresql:// is
// PostgreSQL through lib/pq; sqlite:PATH, or a bare file path, is the
// embedded SQLite store through the pure-Go modernc.org/sqlite driver.
//
// Migrations are the SQL files under migrations/, one directory per store,
// embedded in the binary and applied by goose's Provider. On PostgreSQL a
// session advisory lock serialises concurrent migrators, so several hosts may
// run "smartmeters migrate up" at once.
package db
