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
// AddedAt until RetiredAt (nil while current), both included. Seq numbers
// a meter's keys from 1 in the order they were taken into use; every
// stored reading names the key that signed it by its Seq.
type MeterKey struct {
	MeterID     int64
	Seq         int
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

// RevokeKey revokes the current key of meter id, for reason: from then on
// the key is refused, while the meter, its username and its stored
// readings stay. The revocation is recorded at at, or just after the last
// reading the meter stored if that is later, so that every reading the
// key signed lies within its validity. It returns the recorded event, or
// an error wrapping ErrNotFound for no such meter or ErrRevoked when its
// key is already revoked. On PostgreSQL listening servers are told once it
// is committed.
//
// Key changes and the inserts of a meter's readings are serialised by the
// meter's lock (ingest_readings takes it too), so that a reading is stored
// only if the key that signed it is, when it is stored, the meter's
// current key.
func (s *Store) RevokeKey(ctx context.Context, id int64, reason string, at time.Time) (KeyEvent, error) {
	ev := KeyEvent{MeterID: id, Action: ActionRevoke, Reason: reason}
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		m, err := s.lockedMeter(ctx, tx, id)
		if err != nil {
			return err
		}
		if m.RevokedAt != nil {
			return ErrRevoked
		}
		if ev.At, err = keyChangeTime(ctx, tx, id, at); err != nil {
			return err
		}
		old := m.Fingerprint
		ev.OldFingerprint = &old
		const q = `UPDATE meters SET revoked_at = $2 WHERE id = $1`
		if _, err := tx.ExecContext(ctx, q, id, ev.At); err != nil {
			return err
		}
		if err := retireMeterKey(ctx, tx, id, m.KeySeq, ev.At); err != nil {
			return err
		}
		return s.recordKeyEvent(ctx, tx, &ev)
	})
	if err != nil {
		return KeyEvent{}, fmt.Errorf("revoke key of meter %d: %w", id, err)
	}
	return ev, nil
}

// ReplaceKey gives meter id the key k, for reason, retiring its current
// key (revoked or not): a meter swap that keeps the meter's id, username
// and readings. It is recorded at at, or just after the meter's last
// stored reading if that is later (see RevokeKey). It returns the recorded
// event, or an error wrapping ErrNotFound for no such meter or ErrKeyTaken
// when k belongs, or ever belonged, to any meter. Two replacements of one
// meter's key at once are applied one after the other. On PostgreSQL
// listening servers are told once it is committed.
func (s *Store) ReplaceKey(ctx context.Context, id int64, k NewKey, reason string, at time.Time) (KeyEvent, error) {
	ev := KeyEvent{MeterID: id, Action: ActionReplace, NewFingerprint: &k.Fingerprint, Reason: reason}
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		m, err := s.lockedMeter(ctx, tx, id)
		if err != nil {
			return err
		}
		if ev.At, err = keyChangeTime(ctx, tx, id, at); err != nil {
			return err
		}
		old := m.Fingerprint
		ev.OldFingerprint = &old
		seq := m.KeySeq + 1
		if err := addMeterKey(ctx, tx, id, seq, k.PublicKey, k.Fingerprint, k.Algorithm, ev.At); err != nil {
			return err
		}
		if err := retireMeterKey(ctx, tx, id, m.KeySeq, ev.At); err != nil {
			return err
		}
		const q = `
			UPDATE meters SET public_key = $2, fingerprint = $3, algorithm = $4, key_seq = $5, revoked_at = NULL
			WHERE id = $1`
		if _, err := tx.ExecContext(ctx, q, id, k.PublicKey, k.Fingerprint[:], k.Algorithm, seq); err != nil {
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

// lockedMeter takes meter id's lock for the rest of tx and returns the
// meter as it then is. It is the lock ingest_readings takes, by the same
// statement on meters, so that on a cluster it is taken on the node that
// holds the meter. SQLite needs no lock: its write transactions run one at
// a time.
func (s *Store) lockedMeter(ctx context.Context, tx *sqlx.Tx, id int64) (Meter, error) {
	if s.postgres {
		const q = `SELECT pg_advisory_xact_lock(id) FROM meters WHERE id = $1`
		if _, err := tx.ExecContext(ctx, q, id); err != nil {
			return Meter{}, fmt.Errorf("lock meter %d: %w", id, err)
		}
	}
	return meterByID(ctx, tx, id)
}

// keyChangeTime returns when a key change of meter id takes effect: at,
// or the time of the meter's last stored reading if that is later. The
// meter is locked, so no reading can be stored after it meanwhile.
func keyChangeTime(ctx context.Context, tx *sqlx.Tx, id int64, at time.Time) (time.Time, error) {
	const q = `SELECT received_at FROM readings WHERE meter_id = $1 ORDER BY received_at DESC LIMIT 1`
	var last time.Time
	err := tx.GetContext(ctx, &last, q, id)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, fmt.Errorf("last reading of meter %d: %w", id, err)
	}
	at = at.UTC()
	if last.After(at) {
		at = last.UTC()
	}
	return at, nil
}

// MeterKeys returns every key meter id has had, oldest first. A meter
// registered before key histories were kept has none; callers fall back to
// its current key.
func (s *Store) MeterKeys(ctx context.Context, id int64) ([]MeterKey, error) {
	const q = `
		SELECT meter_id, seq, public_key, fingerprint, algorithm, added_at, retired_at
		FROM meter_keys
		WHERE meter_id = $1
		ORDER BY seq`
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
		if err := rows.Scan(&k.MeterID, &k.Seq, &k.PublicKey, &fp, &k.Algorithm, &k.AddedAt, &retired); err != nil {
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

// addMeterKey records der as key seq of meter id from at on. Its
// fingerprint is unique over every key ever recorded (key_fingerprints),
// so a retired key cannot come back.
func addMeterKey(ctx context.Context, tx *sqlx.Tx, id int64, seq int, der []byte, fp crypto.Fingerprint, algorithm string, at time.Time) error {
	const claim = `INSERT INTO key_fingerprints (fingerprint, meter_id, seq) VALUES ($1, $2, $3)`
	if _, err := tx.ExecContext(ctx, claim, fp[:], id, seq); err != nil {
		return err
	}
	const q = `
		INSERT INTO meter_keys (meter_id, seq, fingerprint, public_key, algorithm, added_at)
		VALUES ($1, $2, $3, $4, $5, $6)`
	_, err := tx.ExecContext(ctx, q, id, seq, fp[:], der, algorithm, at.UTC())
	return err
}

// retireMeterKey ends the validity of key seq of meter id at at, unless it
// already ended (a revoked key that is now replaced keeps its revocation
// time).
func retireMeterKey(ctx context.Context, tx *sqlx.Tx, id int64, seq int, at time.Time) error {
	const q = `UPDATE meter_keys SET retired_at = $3 WHERE meter_id = $1 AND seq = $2 AND retired_at IS NULL`
	_, err := tx.ExecContext(ctx, q, id, seq, at.UTC())
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
