package store_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/lib/pq"
	"github.com/lib/pq/pqerror"

	"smartmeters/db/dbtest"
	"smartmeters/store"
)

// TestUnavailable checks which errors say that the database cannot do the
// work just now (a retry may succeed) and which say that the work is wrong.
func TestUnavailable(t *testing.T) {
	pqErr := func(code string) error { return fmt.Errorf("count meters: %w", &pq.Error{Code: pqerror.Code(code)}) }
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"Nil", nil, false},
		{"Plain", errors.New("boom"), false},
		{"NoRows", sql.ErrNoRows, false},
		{"Canceled", context.Canceled, false},
		{"Deadline", fmt.Errorf("query: %w", context.DeadlineExceeded), true},
		{"BadConn", driver.ErrBadConn, true},
		{"ConnDone", sql.ErrConnDone, true},
		{"Dial", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, true},
		{"ConnectionFailure", pqErr("08006"), true},
		{"TooManyConnections", pqErr("53300"), true},
		{"DiskFull", pqErr("53100"), true},
		{"AdminShutdown", pqErr("57P01"), true},
		{"StartingUp", pqErr("57P03"), true},
		{"DatabaseGone", pqErr("3D000"), true},
		{"Serialization", pqErr("40001"), true},
		{"Deadlock", pqErr("40P01"), true},
		{"ReadOnlyStandby", pqErr("25006"), true},
		{"UniqueViolation", pqErr("23505"), false},
		{"SyntaxError", pqErr("42601"), false},
		{"OutOfRange", pqErr("22003"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := store.Unavailable(tt.err); got != tt.want {
				t.Errorf("Unavailable(%v) = %t, want %t", tt.err, got, tt.want)
			}
		})
	}
}

// TestUnavailableDrivers checks the errors the drivers really return.
func TestUnavailableDrivers(t *testing.T) {
	t.Run("PostgresUnreachable", func(t *testing.T) {
		conn, err := sql.Open("postgres", "postgres://postgres@127.0.0.1:1/none?sslmode=disable&connect_timeout=2")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		if err := conn.PingContext(t.Context()); !store.Unavailable(err) {
			t.Errorf("ping of a closed port: %v, want unavailable", err)
		}
	})
	t.Run("SQLite", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "busy.db")
		open := func() *sql.DB {
			conn, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(0)")
			if err != nil {
				t.Fatal(err)
			}
			conn.SetMaxOpenConns(1)
			t.Cleanup(func() { conn.Close() })
			return conn
		}
		a, b := open(), open()
		if _, err := a.Exec(`CREATE TABLE t (id INTEGER PRIMARY KEY)`); err != nil {
			t.Fatal(err)
		}
		_, err := a.Exec(`INSERT INTO t VALUES (1)`)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.Exec(`INSERT INTO t VALUES (1)`); err == nil || store.Unavailable(err) {
			t.Errorf("duplicate key: %v, want an error that is not unavailable", err)
		}
		tx, err := a.Begin()
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		if _, err := tx.Exec(`INSERT INTO t VALUES (2)`); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Exec(`INSERT INTO t VALUES (3)`); err == nil || !store.Unavailable(err) {
			t.Errorf("write while another connection writes: %v, want unavailable (busy)", err)
		}
	})
	pg, ok := dbtest.Postgres(t)
	if !ok {
		return
	}
	conn := pg.Open(t)
	t.Run("PostgresSyntax", func(t *testing.T) {
		if _, err := conn.Exec(`SELEC 1`); err == nil || store.Unavailable(err) {
			t.Errorf("syntax error: %v, want an error that is not unavailable", err)
		}
	})
	t.Run("PostgresNoDatabase", func(t *testing.T) {
		u, err := url.Parse(pg.URL)
		if err != nil {
			t.Fatal(err)
		}
		u.Path = "/smartmeters_no_such_database"
		c, err := sql.Open("postgres", u.String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if err := c.PingContext(t.Context()); !store.Unavailable(err) {
			t.Errorf("ping of a database that does not exist: %v, want unavailable", err)
		}
	})
}
