package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"smartmeters/crypto"
	"smartmeters/db"
)

// Meter is a registered meter: a username and the public key whose
// signatures it reports with.
type Meter struct {
	ID           int64
	Username     string
	PublicKey    []byte // DER SubjectPublicKeyInfo
	Fingerprint  crypto.Fingerprint
	Algorithm    string
	KeySeq       int // the number of the meter's current key (MeterKey.Seq)
	RegisteredAt time.Time
	// RevokedAt is when the meter's key was revoked; nil while it is valid.
	// A revoked meter reports nothing until its key is replaced.
	RevokedAt *time.Time
}

// meterRow is a Meter as the drivers scan it.
type meterRow struct {
	ID           int64        `db:"id"`
	Username     string       `db:"username"`
	PublicKey    []byte       `db:"public_key"`
	Fingerprint  []byte       `db:"fingerprint"`
	Algorithm    string       `db:"algorithm"`
	KeySeq       int          `db:"key_seq"`
	RegisteredAt time.Time    `db:"registered_at"`
	RevokedAt    sql.NullTime `db:"revoked_at"`
}

func (r meterRow) meter() (Meter, error) {
	if len(r.Fingerprint) != len(crypto.Fingerprint{}) {
		return Meter{}, fmt.Errorf("meter %d: stored fingerprint has %d bytes", r.ID, len(r.Fingerprint))
	}
	m := Meter{
		ID:           r.ID,
		Username:     r.Username,
		PublicKey:    r.PublicKey,
		Fingerprint:  crypto.Fingerprint(r.Fingerprint),
		Algorithm:    r.Algorithm,
		KeySeq:       r.KeySeq,
		RegisteredAt: r.RegisteredAt.UTC(),
	}
	if r.RevokedAt.Valid {
		at := r.RevokedAt.Time.UTC()
		m.RevokedAt = &at
	}
	return m, nil
}

// CreateMeter stores a new meter and fills in m.ID and m.KeySeq. It
// returns an error wrapping ErrUsernameTaken when the username is taken,
// or ErrKeyTaken when the key is, or ever was, registered to a meter (both
// wrap ErrConflict). The key is recorded in the meter's key history with a
// "register" event, and on PostgreSQL every server listening for key
// changes is told once the meter is committed.
func (s *Store) CreateMeter(ctx context.Context, m *Meter) error {
	m.KeySeq = 1
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		const q = `
			INSERT INTO meters (username, public_key, fingerprint, algorithm, key_seq, registered_at)
			VALUES ($1, $2, $3, $4, $5, $6)
			RETURNING id`
		if err := tx.GetContext(ctx, &m.ID, q, m.Username, m.PublicKey, m.Fingerprint[:], m.Algorithm, m.KeySeq, m.RegisteredAt.UTC()); err != nil {
			return err
		}
		const claim = `INSERT INTO meter_usernames (username, meter_id) VALUES ($1, $2)`
		if _, err := tx.ExecContext(ctx, claim, m.Username, m.ID); err != nil {
			return err
		}
		if err := addMeterKey(ctx, tx, m.ID, m.KeySeq, m.PublicKey, m.Fingerprint, m.Algorithm, m.RegisteredAt); err != nil {
			return err
		}
		ev := KeyEvent{MeterID: m.ID, Action: ActionRegister, NewFingerprint: &m.Fingerprint, At: m.RegisteredAt}
		return s.recordKeyEvent(ctx, tx, &ev)
	})
	if err != nil {
		m.ID = 0
	}
	if column, ok := uniqueViolation(err); ok {
		if strings.Contains(column, "username") {
			return fmt.Errorf("create meter %q: %w", m.Username, ErrUsernameTaken)
		}
		return fmt.Errorf("create meter %q: %w", m.Username, ErrKeyTaken)
	}
	if err != nil {
		return fmt.Errorf("create meter: %w", err)
	}
	return nil
}

// MeterByFingerprint returns the meter whose current key has fingerprint
// fp, revoked or not, or an error wrapping ErrNotFound: for a key no meter
// has, and for a key a meter had before it was replaced.
func (s *Store) MeterByFingerprint(ctx context.Context, fp crypto.Fingerprint) (Meter, error) {
	var m Meter
	// The answer of a report waits on this lookup: it returns when ctx
	// ends, even if the database has stalled (db.Await).
	err := db.Await(ctx, func() (err error) {
		m, err = s.meterByFingerprint(ctx, fp)
		return err
	})
	if err != nil {
		return Meter{}, err
	}
	return m, nil
}

func (s *Store) meterByFingerprint(ctx context.Context, fp crypto.Fingerprint) (Meter, error) {
	// Two lookups, each by the key of its table, rather than a join: on a
	// cluster the keys and the meters are distributed by different columns.
	const q = `SELECT meter_id, seq FROM key_fingerprints WHERE fingerprint = $1`
	var owner struct {
		MeterID int64 `db:"meter_id"`
		Seq     int   `db:"seq"`
	}
	err := s.db.GetContext(ctx, &owner, q, fp[:])
	if errors.Is(err, sql.ErrNoRows) {
		return Meter{}, fmt.Errorf("meter with key %s: %w", fp, ErrNotFound)
	}
	if err != nil {
		return Meter{}, fmt.Errorf("get meter by key: %w", err)
	}
	m, err := meterByID(ctx, s.db, owner.MeterID)
	if err != nil {
		return Meter{}, fmt.Errorf("get meter by key: %w", err)
	}
	if m.KeySeq != owner.Seq {
		return Meter{}, fmt.Errorf("meter with key %s: replaced: %w", fp, ErrNotFound)
	}
	return m, nil
}

// MeterByID returns the meter with the given id, or an error wrapping
// ErrNotFound.
func (s *Store) MeterByID(ctx context.Context, id int64) (Meter, error) {
	return meterByID(ctx, s.db, id)
}

// meterByID is MeterByID on q, a database or a transaction.
func meterByID(ctx context.Context, q sqlx.QueryerContext, id int64) (Meter, error) {
	const query = `
		SELECT id, username, public_key, fingerprint, algorithm, key_seq, registered_at, revoked_at
		FROM meters
		WHERE id = $1`
	var row meterRow
	err := sqlx.GetContext(ctx, q, &row, query, id)
	if errors.Is(err, sql.ErrNoRows) {
		return Meter{}, fmt.Errorf("meter %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return Meter{}, fmt.Errorf("get meter %d: %w", id, err)
	}
	return row.meter()
}
