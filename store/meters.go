package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"smartmeters/crypto"
)

// Meter is a registered meter: a username and the public key whose
// signatures it reports with.
type Meter struct {
	ID           int64
	Username     string
	PublicKey    []byte // DER SubjectPublicKeyInfo
	Fingerprint  crypto.Fingerprint
	Algorithm    string
	RegisteredAt time.Time
}

// meterRow is a Meter as the drivers scan it.
type meterRow struct {
	ID           int64     `db:"id"`
	Username     string    `db:"username"`
	PublicKey    []byte    `db:"public_key"`
	Fingerprint  []byte    `db:"fingerprint"`
	Algorithm    string    `db:"algorithm"`
	RegisteredAt time.Time `db:"registered_at"`
}

func (r meterRow) meter() (Meter, error) {
	if len(r.Fingerprint) != len(crypto.Fingerprint{}) {
		return Meter{}, fmt.Errorf("meter %d: stored fingerprint has %d bytes", r.ID, len(r.Fingerprint))
	}
	return Meter{
		ID:           r.ID,
		Username:     r.Username,
		PublicKey:    r.PublicKey,
		Fingerprint:  crypto.Fingerprint(r.Fingerprint),
		Algorithm:    r.Algorithm,
		RegisteredAt: r.RegisteredAt.UTC(),
	}, nil
}

// CreateMeter stores a new meter and fills in m.ID. It returns an error
// wrapping ErrConflict when the username or the key is already registered.
func (s *Store) CreateMeter(ctx context.Context, m *Meter) error {
	const q = `
		INSERT INTO meters (username, public_key, fingerprint, algorithm, registered_at)
		VALUES ($1, $2, $3, $4, $5)
		RETURNING id`
	err := s.db.GetContext(ctx, &m.ID, q, m.Username, m.PublicKey, m.Fingerprint[:], m.Algorithm, m.RegisteredAt.UTC())
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

// MeterByFingerprint returns the meter whose public key has fingerprint fp,
// or an error wrapping ErrNotFound.
func (s *Store) MeterByFingerprint(ctx context.Context, fp crypto.Fingerprint) (Meter, error) {
	const q = `
		SELECT id, username, public_key, fingerprint, algorithm, registered_at
		FROM meters
		WHERE fingerprint = $1`
	var row meterRow
	err := s.db.GetContext(ctx, &row, q, fp[:])
	if errors.Is(err, sql.ErrNoRows) {
		return Meter{}, fmt.Errorf("meter with key %s: %w", fp, ErrNotFound)
	}
	if err != nil {
		return Meter{}, fmt.Errorf("get meter by key: %w", err)
	}
	return row.meter()
}

// MeterByID returns the meter with the given id, or an error wrapping
// ErrNotFound.
func (s *Store) MeterByID(ctx context.Context, id int64) (Meter, error) {
	const q = `
		SELECT id, username, public_key, fingerprint, algorithm, registered_at
		FROM meters
		WHERE id = $1`
	var row meterRow
	err := s.db.GetContext(ctx, &row, q, id)
	if errors.Is(err, sql.ErrNoRows) {
		return Meter{}, fmt.Errorf("meter %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return Meter{}, fmt.Errorf("get meter %d: %w", id, err)
	}
	return row.meter()
}
