package store

import (
	"context"
	"fmt"

	"github.com/jmoiron/sqlx"

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
