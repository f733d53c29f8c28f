// Package store keeps meters and their readings in PostgreSQL or SQLite.
//
// Every method takes a context first and returns errors that wrap ErrNotFound
// or ErrConflict where the caller may act on them; driver errors are
// translated in one place, and the SQL is the same for both stores wherever
// the two dialects agree.
package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"strings"
	"sync"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
	"github.com/lib/pq/pqerror"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"smartmeters/db"
)

var (
	// ErrNotFound means the requested row does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict means a unique value (a username or a key) is taken.
	ErrConflict = errors.New("conflict")
	// ErrUsernameTaken means another meter has the username. It wraps
	// ErrConflict.
	ErrUsernameTaken = fmt.Errorf("username taken: %w", ErrConflict)
	// ErrKeyTaken means another meter has the public key. It wraps
	// ErrConflict.
	ErrKeyTaken = fmt.Errorf("public key taken: %w", ErrConflict)
)

// Store reads and writes meters and readings. It is safe for concurrent use.
type Store struct {
	db       *sqlx.DB
	postgres bool
	clusterState
	// writing lines up this process's frequent SQLite writers (ingest
	// and the rollup follower) in Go: waiting on the database's write
	// lock instead would sleep in SQLite's busy handler, in steps of up
	// to 100 ms, far past the moment the lock is free.
	writing sync.Mutex
}

// placeholders returns n rows of cols placeholders for a multi-row
// INSERT: "(?,?),(?,?)" for n 2, cols 2. Only placeholders are added to a
// statement; every value is bound.
func placeholders(n, cols int) string {
	row := "(?" + strings.Repeat(",?", cols-1) + ")"
	return row + strings.Repeat(","+row, n-1)
}

// lockWriter takes the SQLite writer's turn in this process, and returns
// what gives it back; on PostgreSQL it does nothing.
func (s *Store) lockWriter() func() {
	if s.postgres {
		return func() {}
	}
	s.writing.Lock()
	return s.writing.Unlock
}

// New returns a Store over db, which must be migrated to the current schema.
func New(db *sqlx.DB) *Store {
	return &Store{db: db, postgres: db.DriverName() == dbPostgres}
}

const dbPostgres = db.Postgres

// violationDetail finds the columns in a unique violation's detail.
var violationDetail = regexp.MustCompile(`^Key \(([^)]*)\)=`)

// uniqueViolation reports whether err is a unique-constraint violation and,
// if so, names the column or constraint involved.
func uniqueViolation(err error) (column string, ok bool) {
	var pqErr *pq.Error
	if errors.As(err, &pqErr) && pqErr.Code == "23505" {
		if pqErr.Constraint != "" {
			return pqErr.Constraint, true
		}
		// A Citus worker's violation reaches the coordinator's client
		// without the constraint's name, but with the detail "Key
		// (username)=(alice) already exists."
		if m := violationDetail.FindStringSubmatch(pqErr.Detail); m != nil {
			return m[1], true
		}
		return "", true
	}
	var sqliteErr *sqlite.Error
	if errors.As(err, &sqliteErr) && (sqliteErr.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || sqliteErr.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY) {
		// "UNIQUE constraint failed: meters.username"
		msg := sqliteErr.Error()
		if i := strings.LastIndex(msg, "."); i >= 0 {
			return strings.TrimRight(msg[i+1:], ")"), true
		}
		return msg, true
	}
	return "", false
}

// Ping checks that the database answers, and returns when ctx ends even
// if the database has stalled (db.Await).
func (s *Store) Ping(ctx context.Context) error {
	return db.Await(ctx, func() error { return s.db.PingContext(ctx) })
}

// Unavailable reports whether err says that the database could not do the
// work just now, not that the work is wrong: it cannot be reached, is
// starting or shutting down, is gone, is out of connections, memory or
// disk, or the work lost a race with another transaction. A retry may
// succeed, so servers answer such an error 503 with Retry-After rather
// than 500.
func Unavailable(err error) bool {
	if err == nil {
		return false
	}
	for _, target := range []error{context.DeadlineExceeded, driver.ErrBadConn, sql.ErrConnDone, io.EOF, io.ErrUnexpectedEOF} {
		if errors.Is(err, target) {
			return true
		}
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return true
	}
	var pqErr *pq.Error
	if errors.As(err, &pqErr) {
		switch pqErr.Code.Class() {
		case pqerror.ClassConnectionException, pqerror.ClassInsufficientResources,
			pqerror.ClassOperatorIntervention, pqerror.ClassInvalidCatalogName:
			return true
		}
		switch pqErr.Code {
		case pqerror.TRSerializationFailure, pqerror.TRDeadlockDetected, pqerror.LockNotAvailable,
			pqerror.ReadOnlySQLTransaction:
			return true
		}
		return false
	}
	var sqliteErr *sqlite.Error
	if errors.As(err, &sqliteErr) {
		switch sqliteErr.Code() & 0xff { // the primary code of an extended one
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CANTOPEN:
			return true
		}
	}
	return false
}
