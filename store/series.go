package store

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"smartmeters/crypto"
)

// ReadingsBetween returns up to limit readings of a meter with from <=
// timestamp < to (Unix milliseconds), in time order. To page, call again
// with from set to one past the last timestamp returned.
func (s *Store) ReadingsBetween(ctx context.Context, meterID, from, to int64, limit int) ([]Reading, error) {
	const q = `
		SELECT meter_id, key_seq, timestamp, wh_in, wh_out, signature, received_at
		FROM readings
		WHERE meter_id = $1 AND timestamp >= $2 AND timestamp < $3
		ORDER BY timestamp
		LIMIT $4`
	var out []Reading
	err := s.eachReading(ctx, func(r Reading) error {
		out = append(out, r)
		return nil
	}, q, meterID, from, to, limit)
	if err != nil {
		return nil, fmt.Errorf("list readings of meter %d: %w", meterID, err)
	}
	return out, nil
}

// NewestReadingsBetween returns at most limit readings of a meter with
// from <= timestamp < to (Unix milliseconds), newest first: the primary
// key read backwards.
func (s *Store) NewestReadingsBetween(ctx context.Context, meterID, from, to int64, limit int) ([]Reading, error) {
	const q = `
		SELECT meter_id, key_seq, timestamp, wh_in, wh_out, signature, received_at
		FROM readings
		WHERE meter_id = $1 AND timestamp >= $2 AND timestamp < $3
		ORDER BY timestamp DESC
		LIMIT $4`
	var out []Reading
	err := s.eachReading(ctx, func(r Reading) error {
		out = append(out, r)
		return nil
	}, q, meterID, from, to, limit)
	if err != nil {
		return nil, fmt.Errorf("list newest readings of meter %d: %w", meterID, err)
	}
	return out, nil
}

func (s *Store) eachReading(ctx context.Context, fn func(Reading) error, q string, args ...any) error {
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var r Reading
		if err := rows.Scan(&r.MeterID, &r.KeySeq, &r.Timestamp, &r.WhIn, &r.WhOut, &r.Signature, &r.ReceivedAt); err != nil {
			return fmt.Errorf("scan reading: %w", err)
		}
		r.ReceivedAt = r.ReceivedAt.UTC()
		if err := fn(r); err != nil {
			return err
		}
	}
	return rows.Err()
}

// RegisterSeries returns the registers of a meter that bracket the interval
// [from, to] (Unix milliseconds): every reading inside it, plus the last
// reading before from and the first after to when they exist, in time order.
// That is exactly what interpolating the registers at any instant of the
// interval needs, in one query.
func (s *Store) RegisterSeries(ctx context.Context, meterID, from, to int64) ([]crypto.Reading, error) {
	return registerSeries(ctx, s.db, meterID, from, to)
}

func registerSeries(ctx context.Context, q sqlx.QueryerContext, meterID, from, to int64) ([]crypto.Reading, error) {
	const query = `
		SELECT timestamp, wh_in, wh_out FROM (
			SELECT timestamp, wh_in, wh_out FROM readings
			WHERE meter_id = $1 AND timestamp < $2
			ORDER BY timestamp DESC LIMIT 1) AS before_from
		UNION ALL
		SELECT timestamp, wh_in, wh_out FROM readings
		WHERE meter_id = $1 AND timestamp >= $2 AND timestamp <= $3
		UNION ALL
		SELECT timestamp, wh_in, wh_out FROM (
			SELECT timestamp, wh_in, wh_out FROM readings
			WHERE meter_id = $1 AND timestamp > $3
			ORDER BY timestamp LIMIT 1) AS after_to
		ORDER BY timestamp`
	rows, err := q.QueryContext(ctx, query, meterID, from, to)
	if err != nil {
		return nil, fmt.Errorf("registers of meter %d: %w", meterID, err)
	}
	defer rows.Close()
	var out []crypto.Reading
	for rows.Next() {
		var r crypto.Reading
		if err := rows.Scan(&r.Timestamp, &r.WhIn, &r.WhOut); err != nil {
			return nil, fmt.Errorf("scan registers: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("registers of meter %d: %w", meterID, err)
	}
	return out, nil
}

// RegistersAround returns the readings of a meter that bracket each of
// edges (Unix milliseconds): the last at or before it and the first at or
// after it, each once, in time order. Interpolating the registers at the
// edges needs exactly these, so energy per bucket over a long window
// costs two index probes a bucket edge instead of every reading in the
// window. Each probe orders by the primary key, (meter_id, timestamp), so
// that the planner walks the meter's own entries, not the fleet's index on
// timestamp.
func (s *Store) RegistersAround(ctx context.Context, meterID int64, edges []int64) ([]crypto.Reading, error) {
	seen := map[int64]bool{}
	var out []crypto.Reading
	for chunk := range slices.Chunk(edges, 1000) {
		// Bound in the order of the statement's text: the edges, then the
		// meter three times.
		var e string
		var args []any
		if s.postgres {
			e, args = `SELECT unnest(?::bigint[]) AS t`, []any{pq.Array(chunk)}
		} else {
			e = `VALUES ` + placeholders(len(chunk), 1)
			for _, t := range chunk {
				args = append(args, t)
			}
		}
		args = append(args, meterID, meterID, meterID)
		q := s.db.Rebind(`
			WITH e(t) AS (` + e + `)
			SELECT r.timestamp, r.wh_in, r.wh_out FROM readings r
			WHERE r.meter_id = ? AND r.timestamp IN (
				SELECT (SELECT x.timestamp FROM readings x WHERE x.meter_id = ? AND x.timestamp <= e.t
					ORDER BY x.meter_id DESC, x.timestamp DESC LIMIT 1) FROM e
				UNION
				SELECT (SELECT x.timestamp FROM readings x WHERE x.meter_id = ? AND x.timestamp >= e.t
					ORDER BY x.meter_id, x.timestamp LIMIT 1) FROM e)`)
		rows, err := s.db.QueryContext(ctx, q, args...)
		if err != nil {
			return nil, fmt.Errorf("registers of meter %d around %d edges: %w", meterID, len(chunk), err)
		}
		for rows.Next() {
			var r crypto.Reading
			if err := rows.Scan(&r.Timestamp, &r.WhIn, &r.WhOut); err != nil {
				rows.Close()
				return nil, fmt.Errorf("scan registers: %w", err)
			}
			if !seen[r.Timestamp] {
				seen[r.Timestamp] = true
				out = append(out, r)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("registers of meter %d: %w", meterID, err)
		}
	}
	slices.SortFunc(out, func(a, b crypto.Reading) int { return cmp.Compare(a.Timestamp, b.Timestamp) })
	return out, nil
}
