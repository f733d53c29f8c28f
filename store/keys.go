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
)

// ErrRevoked means the meter's key is already revoked.
var ErrRevoked = errors.New("key already revoked")

// Key actions recorded in a meter's key history.
const (
	ActionRegister = "register" // the meter was registered with its first key
	ActionRevoke   = "revoke"   // the meter's key was revoked; it has none until replaced
	ActionReplace  = "replace"  // the meter's key was replaced by another (a meter swap)
)

// KeyEvent is one entry of a meter's key history.
type KeyEvent struct {
	MeterID        int64
	Action         string              // ActionRegister, ActionRevoke or ActionReplace
	OldFingerprint *crypto.Fingerprint // the key retired; nil for a registration
	NewFingerprint *crypto.Fingerprint // the key taken into use; nil for a revocation
	Reason         string
	At             time.Time
}

// MeterKey is a key a meter has, or had: it was the meter's key from
// AddedAt until RetiredAt (nil while current).
type MeterKey struct {
	MeterID     int64
	PublicKey   []byte // DER SubjectPublicKeyInfo
	Fingerprint crypto.Fingerprint
	Algorithm   string
	AddedAt     time.Time
	RetiredAt   *time.Time
}

// NewKey is the key ReplaceKey gives a meter.
type NewKey struct {
	PublicKey   []byte // DER SubjectPublicKeyInfo
	Fingerprint crypto.Fingerprint
	Algorithm   string
}

// RevokeKey revokes the current key of meter id at at, for reason: from
// then on the key is refused, while the meter, its username and its stored
// readings stay. It returns the recorded event, or an error wrapping
// ErrNotFound for no such meter or ErrRevoked when its key is already
// revoked. On PostgreSQL listening servers are told once it is committed.
func (s *Store) RevokeKey(ctx context.Context, id int64, reason string, at time.Time) (KeyEvent, error) {
	ev := KeyEvent{MeterID: id, Action: ActionRevoke, Reason: reason, At: at.UTC()}
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		// The conditional update is the lock: of two concurrent revocations
		// one updates the row and the other finds nothing left to revoke.
		const q = `
			UPDATE meters SET revoked_at = $2
			WHERE id = $1 AND revoked_at IS NULL
			RETURNING fingerprint`
		var fp []byte
		err := tx.GetContext(ctx, &fp, q, id, ev.At)
		if errors.Is(err, sql.ErrNoRows) {
			if _, err := meterByID(ctx, tx, id); err != nil {
				return err
			}
			return ErrRevoked
		}
		if err != nil {
			return err
		}
		old := crypto.Fingerprint(fp)
		ev.OldFingerprint = &old
		if err := retireMeterKey(ctx, tx, old, ev.At); err != nil {
			return err
		}
		return s.recordKeyEvent(ctx, tx, &ev)
	})
	if err != nil {
		return KeyEvent{}, fmt.Errorf("revoke key of meter %d: %w", id, err)
	}
	return ev, nil
}

// ReplaceKey gives meter id the key k at at, for reason, retiring its
// current key (revoked or not): a meter swap that keeps the meter's id,
// username and readings. It returns the recorded event, or an error
// wrapping ErrNotFound for no such meter or ErrKeyTaken when k belongs, or
// ever belonged, to any meter. On PostgreSQL listening servers are told
// once it is committed.
func (s *Store) ReplaceKey(ctx context.Context, id int64, k NewKey, reason string, at time.Time) (KeyEvent, error) {
	ev := KeyEvent{MeterID: id, Action: ActionReplace, NewFingerprint: &k.Fingerprint, Reason: reason, At: at.UTC()}
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		m, err := meterByID(ctx, tx, id)
		if err != nil {
			return err
		}
		old := m.Fingerprint
		ev.OldFingerprint = &old
		// Matching the old fingerprint makes a concurrent replacement of the
		// same meter fail here rather than retire the wrong key.
		const q = `
			UPDATE meters SET public_key = $2, fingerprint = $3, algorithm = $4, revoked_at = NULL
			WHERE id = $1 AND fingerprint = $5`
		res, err := tx.ExecContext(ctx, q, id, k.PublicKey, k.Fingerprint[:], k.Algorithm, old[:])
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n != 1 {
			return fmt.Errorf("meter %d changed its key concurrently: %w", id, ErrConflict)
		}
		if err := retireMeterKey(ctx, tx, old, ev.At); err != nil {
			return err
		}
		if err := addMeterKey(ctx, tx, id, k.PublicKey, k.Fingerprint, k.Algorithm, ev.At); err != nil {
			return err
		}
		return s.recordKeyEvent(ctx, tx, &ev)
	})
	if _, ok := uniqueViolation(err); ok {
		return KeyEvent{}, fmt.Errorf("replace key of meter %d: %w", id, ErrKeyTaken)
	}
	if err != nil {
		return KeyEvent{}, fmt.Errorf("replace key of meter %d: %w", id, err)
	}
	return ev, nil
}

// MeterKeys returns every key meter id has had, oldest first. A meter
// registered before key histories were kept has none; callers fall back to
// its current key.
func (s *Store) MeterKeys(ctx context.Context, id int64) ([]MeterKey, error) {
	const q = `
		SELECT meter_id, public_key, fingerprint, algorithm, added_at, retired_at
		FROM meter_keys
		WHERE meter_id = $1
		ORDER BY added_at, retired_at IS NULL, retired_at`
	rows, err := s.db.QueryContext(ctx, q, id)
	if err != nil {
		return nil, fmt.Errorf("keys of meter %d: %w", id, err)
	}
	defer rows.Close()
	var out []MeterKey
	for rows.Next() {
		var (
			k       MeterKey
			fp      []byte
			retired sql.NullTime
		)
		if err := rows.Scan(&k.MeterID, &k.PublicKey, &fp, &k.Algorithm, &k.AddedAt, &retired); err != nil {
			return nil, fmt.Errorf("scan key of meter %d: %w", id, err)
		}
		if len(fp) != len(k.Fingerprint) {
			return nil, fmt.Errorf("key of meter %d: stored fingerprint has %d bytes", id, len(fp))
		}
		k.Fingerprint = crypto.Fingerprint(fp)
		k.AddedAt = k.AddedAt.UTC()
		if retired.Valid {
			t := retired.Time.UTC()
			k.RetiredAt = &t
		}
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("keys of meter %d: %w", id, err)
	}
	return out, nil
}

// KeyEvents returns the key history of meter id, oldest first.
func (s *Store) KeyEvents(ctx context.Context, id int64) ([]KeyEvent, error) {
	const q = `
		SELECT meter_id, action, old_fingerprint, new_fingerprint, reason, at
		FROM meter_key_events
		WHERE meter_id = $1
		ORDER BY id`
	rows, err := s.db.QueryContext(ctx, q, id)
	if err != nil {
		return nil, fmt.Errorf("key events of meter %d: %w", id, err)
	}
	defer rows.Close()
	var out []KeyEvent
	for rows.Next() {
		var (
			ev           KeyEvent
			oldFP, newFP []byte
		)
		if err := rows.Scan(&ev.MeterID, &ev.Action, &oldFP, &newFP, &ev.Reason, &ev.At); err != nil {
			return nil, fmt.Errorf("scan key event of meter %d: %w", id, err)
		}
		ev.At = ev.At.UTC()
		ev.OldFingerprint, ev.NewFingerprint = fingerprintOrNil(oldFP), fingerprintOrNil(newFP)
		out = append(out, ev)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("key events of meter %d: %w", id, err)
	}
	return out, nil
}

// KeysChangedSince returns the fingerprints named by key events recorded
// at or after since: what a server that may have missed notifications
// drops from its cache. It is meant for PostgreSQL, where several servers
// share the store.
func (s *Store) KeysChangedSince(ctx context.Context, since time.Time) ([]crypto.Fingerprint, error) {
	const q = `
		SELECT old_fingerprint, new_fingerprint
		FROM meter_key_events
		WHERE at >= $1`
	rows, err := s.db.QueryContext(ctx, q, since.UTC())
	if err != nil {
		return nil, fmt.Errorf("keys changed since %s: %w", since, err)
	}
	defer rows.Close()
	var out []crypto.Fingerprint
	for rows.Next() {
		var oldFP, newFP []byte
		if err := rows.Scan(&oldFP, &newFP); err != nil {
			return nil, fmt.Errorf("scan key event: %w", err)
		}
		for _, fp := range []*crypto.Fingerprint{fingerprintOrNil(oldFP), fingerprintOrNil(newFP)} {
			if fp != nil {
				out = append(out, *fp)
			}
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("keys changed since %s: %w", since, err)
	}
	return out, nil
}

func fingerprintOrNil(b []byte) *crypto.Fingerprint {
	if len(b) != len(crypto.Fingerprint{}) {
		return nil
	}
	fp := crypto.Fingerprint(b)
	return &fp
}

// addMeterKey records der as a key of meter id from at on. The fingerprint
// is unique over every key ever recorded, so a retired key cannot come back.
func addMeterKey(ctx context.Context, tx *sqlx.Tx, id int64, der []byte, fp crypto.Fingerprint, algorithm string, at time.Time) error {
	const q = `
		INSERT INTO meter_keys (fingerprint, meter_id, public_key, algorithm, added_at)
		VALUES ($1, $2, $3, $4, $5)`
	_, err := tx.ExecContext(ctx, q, fp[:], id, der, algorithm, at.UTC())
	return err
}

// retireMeterKey ends the validity of key fp at at, unless it already ended
// (a revoked key that is now replaced keeps its revocation time).
func retireMeterKey(ctx context.Context, tx *sqlx.Tx, fp crypto.Fingerprint, at time.Time) error {
	const q = `UPDATE meter_keys SET retired_at = $2 WHERE fingerprint = $1 AND retired_at IS NULL`
	_, err := tx.ExecContext(ctx, q, fp[:], at.UTC())
	return err
}

// recordKeyEvent appends ev to the key history and, on PostgreSQL, queues
// a notification naming its fingerprints on KeyChannel. PostgreSQL delivers
// the notification when the transaction commits, and never if it rolls back.
func (s *Store) recordKeyEvent(ctx context.Context, tx *sqlx.Tx, ev *KeyEvent) error {
	var oldFP, newFP any // NULL unless set
	var fps []string
	if ev.OldFingerprint != nil {
		oldFP = ev.OldFingerprint[:]
		fps = append(fps, ev.OldFingerprint.String())
	}
	if ev.NewFingerprint != nil {
		newFP = ev.NewFingerprint[:]
		fps = append(fps, ev.NewFingerprint.String())
	}
	const q = `
		INSERT INTO meter_key_events (meter_id, action, old_fingerprint, new_fingerprint, reason, at)
		VALUES ($1, $2, $3, $4, $5, $6)`
	if _, err := tx.ExecContext(ctx, q, ev.MeterID, ev.Action, oldFP, newFP, ev.Reason, ev.At.UTC()); err != nil {
		return fmt.Errorf("record key event: %w", err)
	}
	if !s.postgres {
		return nil
	}
	const notify = `SELECT pg_notify($1, $2)`
	if _, err := tx.ExecContext(ctx, notify, KeyChannel, strings.Join(fps, ",")); err != nil {
		return fmt.Errorf("notify key change: %w", err)
	}
	return nil
}

// inTx runs fn in a transaction and commits it if fn returns nil.
func (s *Store) inTx(ctx context.Context, fn func(tx *sqlx.Tx) error) error {
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}
