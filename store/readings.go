package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	"smartmeters/crypto"
)

// Reading is a verified reading of one meter, ready to store: KeySeq
// names the meter's key that signed it (MeterKey.Seq).
type Reading struct {
	MeterID int64
	KeySeq  int
	crypto.Reading
	Signature  []byte
	ReceivedAt time.Time
}

// Outcome is what InsertReadings did with one reading.
type Outcome uint8

const (
	// Stored means the reading was new and is now committed.
	Stored Outcome = iota + 1
	// Duplicate means an identical reading (same meter, timestamp and
	// registers) was already stored; nothing changed.
	Duplicate
	// Conflict means a different reading for the same meter and timestamp
	// is stored; nothing changed.
	Conflict
	// Decreased means the reading's whIn or whOut is lower than the
	// meter's reading just before it in time, or higher than the one just
	// after it: storing it would make a cumulative register go down.
	// Nothing changed.
	Decreased
	// KeyReplaced means the key that signed the reading is no longer the
	// meter's key: it was replaced. Nothing changed.
	KeyReplaced
	// KeyRevoked means the key that signed the reading is the meter's key
	// but revoked. Nothing changed.
	KeyRevoked
)

func (o Outcome) String() string {
	switch o {
	case Stored:
		return "stored"
	case Duplicate:
		return "duplicate"
	case Conflict:
		return "conflict"
	case Decreased:
		return "decreased"
	case KeyReplaced:
		return "key replaced"
	case KeyRevoked:
		return "key revoked"
	}
	return fmt.Sprintf("Outcome(%d)", o)
}

type readingKey struct{ meterID, timestamp int64 }

// InsertReadings stores a batch of readings and returns the outcome of
// each, in order. When it returns no error, every reading is decided and
// every Stored one committed. When it returns an error, the readings whose
// outcome is 0 were not stored, and the caller may retry them; the others
// are decided and committed as reported. (On one database a batch is one
// transaction, so an error leaves every outcome 0; on a cluster each
// shard's readings commit on their own.)
//
// A reading is stored only if the key that signed it (KeySeq) is, at that
// moment, its meter's current key and not revoked (KeyReplaced and
// KeyRevoked otherwise), and never with a ReceivedAt before that key was
// taken into use: the meters are locked against key changes too.
//
// The readings of the batch are decided as if they had arrived one by one,
// in order: a reading whose meter and timestamp are taken is a Duplicate or
// a Conflict; one whose whIn or whOut is below the meter's reading just
// before it in time, or above the one just after it (stored, or stored
// earlier in the batch), is Decreased and not stored. This holds whatever
// other batches commit concurrently, from this process or another one on
// the same database: the meters are locked for the decision and the insert.
// On PostgreSQL the database function ingest_readings does all of it in
// one call (migration 00008); on SQLite, integrity.go in one transaction.
func (s *Store) InsertReadings(ctx context.Context, rs []Reading) ([]Outcome, error) {
	if len(rs) == 0 {
		return []Outcome{}, nil
	}
	var (
		out []Outcome
		err error
	)
	if s.postgres {
		out, err = s.ingestPostgres(ctx, rs)
	} else {
		out, err = s.insertReadingsTx(ctx, rs)
	}
	if err != nil {
		if len(out) != len(rs) {
			out = make([]Outcome, len(rs))
		}
		return out, fmt.Errorf("insert %d readings: %w", len(rs), err)
	}
	return out, nil
}

// insertReadingsTx decides and stores rs in one SQLite transaction, which
// runs alone: SQLite's write transactions (BEGIN IMMEDIATE) take the
// database's one write lock first.
func (s *Store) insertReadingsTx(ctx context.Context, rs []Reading) ([]Outcome, error) {
	defer s.lockWriter()()
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	keys, err := s.currentKeys(ctx, tx, rs)
	if err != nil {
		return nil, err
	}
	nb, err := s.neighboursOf(ctx, tx, rs)
	if err != nil {
		return nil, err
	}
	out := decide(rs, nb, keys)
	accepted := make([]Reading, 0, len(rs))
	for i, o := range out {
		if o == Stored {
			r := rs[i]
			if added := keys[r.MeterID].addedAt; r.ReceivedAt.Before(added) {
				r.ReceivedAt = added // a server whose clock is behind
			}
			accepted = append(accepted, r)
		}
	}
	if len(accepted) > 0 {
		n, err := s.insertRows(ctx, tx, accepted)
		if err != nil {
			return nil, err
		}
		// The database is locked, so nothing can have taken a key since
		// neighboursOf looked; a writer that bypassed the lock would show
		// here, and the batch is refused rather than misreported.
		if n != len(accepted) {
			return nil, fmt.Errorf("inserted %d of %d new readings: a concurrent writer bypassed the lock", n, len(accepted))
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	return out, nil
}

// compare tells a harmless resend from a contradicting reading. Signatures
// are not compared: ECDSA signs with fresh randomness, so one reading signed
// twice has two valid signatures.
func compare(stored, sent crypto.Reading) Outcome {
	if stored == sent {
		return Duplicate
	}
	return Conflict
}

// insertRows inserts rs, whose keys must all be distinct, skipping keys
// already stored, and returns how many it inserted. Only placeholders are
// added to the statement; every value is bound.
func (s *Store) insertRows(ctx context.Context, tx *sqlx.Tx, rs []Reading) (int, error) {
	args := make([]any, 0, 7*len(rs))
	for _, r := range rs {
		args = append(args, r.MeterID, r.KeySeq, r.Timestamp, r.WhIn, r.WhOut, r.Signature, r.ReceivedAt.UTC())
	}
	q := `INSERT INTO readings (meter_id, key_seq, timestamp, wh_in, wh_out, signature, received_at) VALUES ` +
		placeholders(len(rs), 7) + ` ON CONFLICT (meter_id, timestamp) DO NOTHING`
	res, err := tx.ExecContext(ctx, q, args...)
	if err != nil {
		return 0, fmt.Errorf("insert: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("insert: %w", err)
	}
	return int(n), nil
}
