package store

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/jmoiron/sqlx"

	"smartmeters/crypto"
)

// A meter's registers are cumulative: in timestamp order, neither whIn nor
// whOut may ever go down. InsertReadings keeps that true for every meter
// by deciding each reading against its nearest stored neighbours in time,
// inside the transaction that inserts it. This file is that decision on
// SQLite, whose write transaction holds the whole database:
//
//  1. currentKeys reads each meter's current key;
//  2. neighboursOf fetches, in one query, each new reading's stored
//     predecessor, successor and same-timestamp reading;
//  3. decide walks the batch in order against those neighbours and the
//     readings it has accepted so far, as if the readings had arrived one
//     by one.
//
// On PostgreSQL the database function ingest_readings makes the same
// decision (ingest.go); the conformance suite holds both to it.

// stored is a reading found in the database, or none (ok false).
type stored struct {
	ok bool
	crypto.Reading
}

// around is what the database holds next to a new reading's timestamp.
type around struct {
	prev, same, next stored
}

// neighboursOf returns, for each distinct (meter, timestamp) of rs, the
// stored reading at it or, failing that, the one just before it, and the
// one just after it: two index probes a reading, in one query.
func (s *Store) neighboursOf(ctx context.Context, tx *sqlx.Tx, rs []Reading) (map[readingKey]around, error) {
	keys := distinctKeys(rs)
	rows, err := s.queryNeighbours(ctx, tx, keys)
	if err != nil {
		return nil, fmt.Errorf("look up neighbours of %d readings: %w", len(keys), err)
	}
	defer rows.Close()
	out := make(map[readingKey]around, len(keys))
	for rows.Next() {
		k, a, err := scanNeighbours(rows)
		if err != nil {
			return nil, err
		}
		out[k] = a
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("look up neighbours of %d readings: %w", len(keys), err)
	}
	if len(out) != len(keys) {
		return nil, fmt.Errorf("look up neighbours of %d readings: got %d rows", len(keys), len(out))
	}
	return out, nil
}

// distinctKeys returns the distinct (meter, timestamp) pairs of rs, in
// order of first appearance.
func distinctKeys(rs []Reading) []readingKey {
	keys := make([]readingKey, 0, len(rs))
	seen := make(map[readingKey]struct{}, len(rs))
	for _, r := range rs {
		k := readingKey{r.MeterID, r.Timestamp}
		if _, ok := seen[k]; !ok {
			seen[k] = struct{}{}
			keys = append(keys, k)
		}
	}
	return keys
}

// queryNeighbours runs the neighbour query: one row per key, with the predecessor's (at or before) and the successor's
// timestamp and registers, NULL where there is none.
func (s *Store) queryNeighbours(ctx context.Context, tx *sqlx.Tx, keys []readingKey) (*sql.Rows, error) {
	// The keys travel as one JSON array of [meter, timestamp] pairs, so
	// that one fixed statement serves any batch size.
	const q = `
		WITH u (m, t) AS (
			SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each($1)
		)
		SELECT u.m, u.t,
			p.timestamp, p.wh_in, p.wh_out,
			n.timestamp, n.wh_in, n.wh_out
		FROM u
		LEFT JOIN readings p ON p.meter_id = u.m AND p.timestamp = (
			SELECT timestamp FROM readings WHERE meter_id = u.m AND timestamp <= u.t
			ORDER BY timestamp DESC LIMIT 1)
		LEFT JOIN readings n ON n.meter_id = u.m AND n.timestamp = (
			SELECT timestamp FROM readings WHERE meter_id = u.m AND timestamp > u.t
			ORDER BY timestamp ASC LIMIT 1)`
	return tx.QueryContext(ctx, q, keysJSON(keys))
}

// scanNeighbours reads one row of queryNeighbours.
func scanNeighbours(rows *sql.Rows) (readingKey, around, error) {
	var k readingKey
	var cols [6]sql.NullInt64
	if err := rows.Scan(&k.meterID, &k.timestamp, &cols[0], &cols[1], &cols[2], &cols[3], &cols[4], &cols[5]); err != nil {
		return k, around{}, fmt.Errorf("scan neighbours: %w", err)
	}
	at := func(c int) stored {
		return stored{ok: cols[c].Valid, Reading: crypto.Reading{Timestamp: cols[c].Int64, WhIn: cols[c+1].Int64, WhOut: cols[c+2].Int64}}
	}
	a := around{prev: at(0), next: at(3)}
	// The reading at or before the timestamp is the same-timestamp one
	// when there is one: then it decides, and the one before it does not
	// matter.
	if a.prev.ok && a.prev.Timestamp == k.timestamp {
		a.same, a.prev = a.prev, stored{}
	}
	return k, a, nil
}

// keysJSON encodes keys as a JSON array of [meter, timestamp] pairs.
func keysJSON(keys []readingKey) string {
	b := make([]byte, 0, 2+len(keys)*32)
	b = append(b, '[')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '[')
		b = strconv.AppendInt(b, k.meterID, 10)
		b = append(b, ',')
		b = strconv.AppendInt(b, k.timestamp, 10)
		b = append(b, ']')
	}
	return string(append(b, ']'))
}

// keyState is a meter's current key as a commit finds it, the meter
// locked: its number, whether it is revoked, and since when it is the
// meter's key.
type keyState struct {
	seq     int
	revoked bool
	addedAt time.Time
}

// currentKeys returns the current key of each meter of rs, or an error if
// one of them does not exist.
func (s *Store) currentKeys(ctx context.Context, tx *sqlx.Tx, rs []Reading) (map[int64]keyState, error) {
	ids := make([]int64, 0, len(rs))
	seen := make(map[int64]bool, len(rs))
	for _, r := range rs {
		if !seen[r.MeterID] {
			seen[r.MeterID] = true
			ids = append(ids, r.MeterID)
		}
	}
	const q = `
		SELECT m.id, m.key_seq, m.revoked_at IS NOT NULL, k.added_at
		FROM meters m JOIN meter_keys k ON k.meter_id = m.id AND k.seq = m.key_seq
		WHERE m.id IN (SELECT value FROM json_each($1))`
	rows, err := tx.QueryContext(ctx, q, idsJSON(ids))
	if err != nil {
		return nil, fmt.Errorf("current keys of %d meters: %w", len(ids), err)
	}
	defer rows.Close()
	out := make(map[int64]keyState, len(ids))
	for rows.Next() {
		var id int64
		var k keyState
		if err := rows.Scan(&id, &k.seq, &k.revoked, &k.addedAt); err != nil {
			return nil, fmt.Errorf("scan current key: %w", err)
		}
		out[id] = k
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("current keys of %d meters: %w", len(ids), err)
	}
	for _, id := range ids {
		if _, ok := out[id]; !ok {
			return nil, fmt.Errorf("meter %d: %w", id, ErrNotFound)
		}
	}
	return out, nil
}

// idsJSON encodes ids as a JSON array.
func idsJSON(ids []int64) string {
	b := make([]byte, 0, 2+len(ids)*12)
	b = append(b, '[')
	for i, id := range ids {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, id, 10)
	}
	return string(append(b, ']'))
}

// decide gives each reading of rs its outcome, in order, as if the
// readings had arrived one by one: a reading signed by a key that is not
// its meter's current key, or is revoked, is KeyReplaced or KeyRevoked;
// otherwise a reading is compared with the stored
// reading at its timestamp or, failing that, with one accepted earlier in
// the batch (Duplicate or Conflict); otherwise it must lie between its
// nearest neighbours in time, stored or accepted earlier in the batch
// (Stored), or it is Decreased. Checking the nearest neighbours suffices
// because every meter's stored sequence is already non-decreasing.
func decide(rs []Reading, nb map[readingKey]around, keys map[int64]keyState) []Outcome {
	out := make([]Outcome, len(rs))
	// accepted holds, per meter, the readings of this batch decided
	// Stored so far, in timestamp order.
	accepted := make(map[int64][]crypto.Reading)
	for i, r := range rs {
		switch k := keys[r.MeterID]; {
		case k.seq != r.KeySeq:
			out[i] = KeyReplaced
			continue
		case k.revoked:
			out[i] = KeyRevoked
			continue
		}
		a := nb[readingKey{r.MeterID, r.Timestamp}]
		acc := accepted[r.MeterID]
		j, found := slices.BinarySearchFunc(acc, r.Timestamp, func(x crypto.Reading, t int64) int {
			return cmp.Compare(x.Timestamp, t)
		})
		switch {
		case a.same.ok:
			out[i] = compare(a.same.Reading, r.Reading)
			continue
		case found:
			out[i] = compare(acc[j], r.Reading)
			continue
		}
		prev, next := a.prev, a.next
		if j > 0 && (!prev.ok || acc[j-1].Timestamp > prev.Timestamp) {
			prev = stored{ok: true, Reading: acc[j-1]}
		}
		if j < len(acc) && (!next.ok || acc[j].Timestamp < next.Timestamp) {
			next = stored{ok: true, Reading: acc[j]}
		}
		if (prev.ok && (r.WhIn < prev.WhIn || r.WhOut < prev.WhOut)) ||
			(next.ok && (r.WhIn > next.WhIn || r.WhOut > next.WhOut)) {
			out[i] = Decreased
			continue
		}
		out[i] = Stored
		accepted[r.MeterID] = slices.Insert(acc, j, r.Reading)
	}
	return out
}
