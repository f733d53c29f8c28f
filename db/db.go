package db

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	_ "github.com/lib/pq"  // registers the "postgres" driver
	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// Driver names as registered with database/sql.
const (
	Postgres = "postgres"
	SQLite   = "sqlite"
)

// ErrBadURL is returned by ParseURL and Open for a database URL that names
// no supported store.
var ErrBadURL = errors.New("bad database URL")

// ErrNoDatabase is returned by OpenExisting for a SQLite file that does
// not exist.
var ErrNoDatabase = errors.New("no such database file")

// ParseURL reports which driver a database URL selects and the data source
// name to hand to it. postgres:// and postgresql:// URLs pass through
// unchanged; sqlite:PATH and bare paths become a SQLite DSN with the pragmas
// the store relies on: WAL, full fsync on commit (a commit is durable when it
// returns), foreign keys, a busy timeout and immediate write transactions.
func ParseURL(rawURL string) (driver, dsn string, err error) {
	switch {
	case rawURL == "":
		return "", "", fmt.Errorf("%w: empty", ErrBadURL)
	case strings.HasPrefix(rawURL, "postgres://"), strings.HasPrefix(rawURL, "postgresql://"):
		if _, err := url.Parse(rawURL); err != nil {
			return "", "", fmt.Errorf("%w: %v", ErrBadURL, err)
		}
		return Postgres, rawURL, nil
	}
	if i := strings.Index(rawURL, "://"); i > 0 && !strings.HasPrefix(rawURL, "sqlite:") {
		return "", "", fmt.Errorf("%w: %q: use postgres://…, postgresql://… or sqlite:PATH", ErrBadURL, redact(rawURL))
	}
	path := strings.TrimPrefix(rawURL, "sqlite:")
	if path == "" {
		return "", "", fmt.Errorf("%w: sqlite: needs a file path, as in sqlite:smartmeters.db", ErrBadURL)
	}
	if strings.ContainsAny(path, "?#") {
		return "", "", fmt.Errorf("%w: the SQLite path %q may not contain ? or #", ErrBadURL, path)
	}
	q := url.Values{}
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "busy_timeout(10000)")
	q.Set("_txlock", "immediate")
	return SQLite, "file:" + path + "?" + q.Encode(), nil
}

// Open connects to the store named by rawURL, sets pool limits suited to
// it, and checks that it answers within ctx. A SQLite file that does not
// exist is created.
func Open(ctx context.Context, rawURL string) (*sqlx.DB, error) {
	return open(ctx, rawURL, modeCreate)
}

// OpenExisting is Open for commands that work on a store someone made
// before: it refuses, with an error wrapping ErrNoDatabase, a SQLite file
// that does not exist rather than create an empty one, so that a mistyped
// path does not pass for an empty database.
func OpenExisting(ctx context.Context, rawURL string) (*sqlx.DB, error) {
	driver, _, err := ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	if driver == SQLite {
		path := strings.TrimPrefix(rawURL, "sqlite:")
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) && path != ":memory:" {
			return nil, fmt.Errorf("%s: %w (`smartmeters migrate up` creates it)", rawURL, ErrNoDatabase)
		}
	}
	return open(ctx, rawURL, modeExisting)
}

// OpenReadOnly is Open for a pool that only reads: the reporting side's,
// so that it can never take the connections, nor on SQLite the writer,
// that ingest needs. Its connections cannot write: SQLite opens the file
// read-only, and PostgreSQL makes every transaction read-only.
func OpenReadOnly(ctx context.Context, rawURL string) (*sqlx.DB, error) {
	return open(ctx, rawURL, modeReadOnly)
}

// openMode is how open treats the store: whether it may create a SQLite
// file, and whether its connections may write.
type openMode int

const (
	modeCreate   openMode = iota // read and write; create a SQLite file that does not exist
	modeExisting                 // read and write; never create a SQLite file
	modeReadOnly                 // read only
)

func open(ctx context.Context, rawURL string, mode openMode) (*sqlx.DB, error) {
	driver, dsn, err := ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	readOnly := mode == modeReadOnly
	switch {
	case readOnly:
		dsn = readOnlyDSN(driver, dsn)
	case mode == modeExisting && driver == SQLite:
		// Should the file vanish after OpenExisting looked, opening fails
		// rather than create an empty one.
		dsn += "&mode=rw"
	}
	db, err := sqlx.Open(driver, dsn)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", driver, err)
	}
	switch {
	case driver == Postgres && !readOnly:
		db.SetMaxOpenConns(16)
		db.SetMaxIdleConns(16)
	case driver == Postgres:
		db.SetMaxOpenConns(8)
		db.SetMaxIdleConns(8)
	case driver == SQLite:
		// SQLite has one writer at a time; a few connections let readers
		// run beside it under WAL without piling up busy waits.
		db.SetMaxOpenConns(4)
		db.SetMaxIdleConns(4)
	}
	if driver == Postgres {
		db.SetConnMaxIdleTime(5 * time.Minute)
		db.SetConnMaxLifetime(time.Hour)
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("connect to %s database %s: %w", driver, redact(rawURL), err)
	}
	return db, nil
}

// readOnlyDSN turns dsn into one whose connections cannot write.
func readOnlyDSN(driver, dsn string) string {
	if driver == SQLite {
		// WAL is set by the writer; a read-only connection cannot set it.
		return strings.Replace(dsn, "_pragma=journal_mode%28WAL%29&", "", 1) + "&mode=ro"
	}
	u, err := url.Parse(dsn)
	if err != nil {
		return dsn // ParseURL has parsed it already
	}
	q := u.Query()
	q.Set("default_transaction_read_only", "on")
	u.RawQuery = q.Encode()
	return u.String()
}

// redact hides the password of a URL for messages and logs.
func redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil || u.User == nil {
		return rawURL
	}
	return u.Redacted()
}
