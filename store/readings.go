package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/lib/pq"

	"smartmeters/crypto"
)

// Reading is a verified reading of one meter, ready to store.
type Reading struct {
	MeterID int64
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
)

func (o Outcome) String() string {
	switch o {
	case Stored:
		return "stored"
	case Duplicate:
		return "duplicate"
	case Conflict:
		return "conflict"
	}
	return fmt.Sprintf("Outcome(%d)", o)
}

type readingKey struct{ meterID, timestamp int64 }

// InsertReadings stores a batch of readings in one statement and returns the
// outcome of each, in order. When it returns without error every Stored
// reading is committed; when it returns an error, none of the batch is
// (the statement is atomic), and the caller may retry the whole batch.
//
// Two readings with the same meter and timestamp in one batch are resolved
// as if they had arrived in order: the first is stored, the second is a
// Duplicate or a Conflict.
func (s *Store) InsertReadings(ctx context.Context, rs []Reading) ([]Outcome, error) {
	if len(rs) == 0 {
		return nil, nil
	}
	inserted, err := s.insertReadings(ctx, rs)
	if err != nil {
		return nil, fmt.Errorf("insert %d readings: %w", len(rs), err)
	}
	out := make([]Outcome, len(rs))
	// first maps each key to the batch index that decided it, so that a
	// reading repeated within the batch is compared with its predecessor.
	first := make(map[readingKey]int, len(rs))
	var missing []readingKey
	for i, r := range rs {
		k := readingKey{r.MeterID, r.Timestamp}
		if j, seen := first[k]; seen {
			if out[j] == Stored {
				out[i] = compare(rs[j].Reading, r.Reading)
			}
			continue
		}
		first[k] = i
		if _, ok := inserted[k]; ok {
			out[i] = Stored
		} else {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		existing, err := s.readingsByKey(ctx, missing)
		if err != nil {
			return nil, err
		}
		for i, r := range rs {
			if out[i] != 0 {
				continue
			}
			k := readingKey{r.MeterID, r.Timestamp}
			j := first[k]
			if out[j] == Stored {
				out[i] = compare(rs[j].Reading, r.Reading)
				continue
			}
			stored, ok := existing[k]
			if !ok {
				return nil, fmt.Errorf("reading of meter %d at %d was neither inserted nor found", k.meterID, k.timestamp)
			}
			out[i] = compare(stored, r.Reading)
		}
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

// insertReadings inserts rs, skipping keys already stored, and returns the
// keys it inserted.
func (s *Store) insertReadings(ctx context.Context, rs []Reading) (map[readingKey]struct{}, error) {
	var (
		query string
		args  []any
	)
	if s.postgres {
		// One fixed statement for any batch size: the columns travel as arrays.
		query = `
			INSERT INTO readings (meter_id, timestamp, wh_in, wh_out, signature, received_at)
			SELECT m, t, i, o, s, to_timestamp(r::double precision / 1000)
			FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bytea[], $6::bigint[])
				AS u (m, t, i, o, s, r)
			ON CONFLICT (meter_id, timestamp) DO NOTHING
			RETURNING meter_id, timestamp`
		cols := make([]pq.Int64Array, 5)
		for c := range cols {
			cols[c] = make(pq.Int64Array, len(rs))
		}
		sigs := make(pq.ByteaArray, len(rs))
		for i, r := range rs {
			cols[0][i], cols[1][i], cols[2][i], cols[3][i] = r.MeterID, r.Timestamp, r.WhIn, r.WhOut
			cols[4][i] = r.ReceivedAt.UnixMilli()
			sigs[i] = r.Signature
		}
		args = []any{cols[0], cols[1], cols[2], cols[3], sigs, cols[4]}
	} else {
		var b strings.Builder
		b.WriteString(`INSERT INTO readings (meter_id, timestamp, wh_in, wh_out, signature, received_at) VALUES `)
		args = make([]any, 0, 6*len(rs))
		for i, r := range rs {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString("(?,?,?,?,?,?)")
			args = append(args, r.MeterID, r.Timestamp, r.WhIn, r.WhOut, r.Signature, r.ReceivedAt.UTC())
		}
		b.WriteString(` ON CONFLICT (meter_id, timestamp) DO NOTHING RETURNING meter_id, timestamp`)
		query = b.String()
	}
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	inserted := make(map[readingKey]struct{}, len(rs))
	for rows.Next() {
		var k readingKey
		if err := rows.Scan(&k.meterID, &k.timestamp); err != nil {
			return nil, err
		}
		inserted[k] = struct{}{}
	}
	return inserted, rows.Err()
}

// readingsByKey returns the stored registers for the given keys.
func (s *Store) readingsByKey(ctx context.Context, keys []readingKey) (map[readingKey]crypto.Reading, error) {
	var (
		query string
		args  []any
	)
	if s.postgres {
		query = `
			SELECT meter_id, timestamp, wh_in, wh_out
			FROM readings
			WHERE (meter_id, timestamp) IN (SELECT * FROM unnest($1::bigint[], $2::bigint[]))`
		ids, ts := make(pq.Int64Array, len(keys)), make(pq.Int64Array, len(keys))
		for i, k := range keys {
			ids[i], ts[i] = k.meterID, k.timestamp
		}
		args = []any{ids, ts}
	} else {
		var b strings.Builder
		b.WriteString(`SELECT meter_id, timestamp, wh_in, wh_out FROM readings WHERE (meter_id, timestamp) IN (VALUES `)
		args = make([]any, 0, 2*len(keys))
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString("(?,?)")
			args = append(args, k.meterID, k.timestamp)
		}
		b.WriteByte(')')
		query = b.String()
	}
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("look up %d stored readings: %w", len(keys), err)
	}
	defer rows.Close()
	found := make(map[readingKey]crypto.Reading, len(keys))
	for rows.Next() {
		var k readingKey
		var r crypto.Reading
		if err := rows.Scan(&k.meterID, &k.timestamp, &r.WhIn, &r.WhOut); err != nil {
			return nil, fmt.Errorf("scan stored reading: %w", err)
		}
		r.Timestamp = k.timestamp
		found[k] = r
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("look up %d stored readings: %w", len(keys), err)
	}
	return found, nil
}

// ReadingsByMeter returns a meter's stored readings in time order, at most
// limit of them, starting at timestamp from (inclusive).
func (s *Store) ReadingsByMeter(ctx context.Context, meterID, from int64, limit int) ([]Reading, error) {
	const q = `
		SELECT meter_id, timestamp, wh_in, wh_out, signature, received_at
		FROM readings
		WHERE meter_id = $1 AND timestamp >= $2
		ORDER BY timestamp
		LIMIT $3`
	rows, err := s.db.QueryContext(ctx, q, meterID, from, limit)
	if err != nil {
		return nil, fmt.Errorf("list readings of meter %d: %w", meterID, err)
	}
	defer rows.Close()
	var out []Reading
	for rows.Next() {
		var r Reading
		if err := rows.Scan(&r.MeterID, &r.Timestamp, &r.WhIn, &r.WhOut, &r.Signature, &r.ReceivedAt); err != nil {
			return nil, fmt.Errorf("scan reading: %w", err)
		}
		r.ReceivedAt = r.ReceivedAt.UTC()
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list readings of meter %d: %w", meterID, err)
	}
	return out, nil
}

// CountReadings returns how many readings are stored.
func (s *Store) CountReadings(ctx context.Context) (int64, error) {
	const q = `SELECT count(*) FROM readings`
	var n int64
	if err := s.db.GetContext(ctx, &n, q); err != nil {
		return 0, fmt.Errorf("count readings: %w", err)
	}
	return n, nil
}
