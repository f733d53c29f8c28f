package store

import (
	"context"
	"fmt"

	"smartmeters/crypto"
)

// EachRegisterBetween calls fn with the registers of every reading of every
// meter with from <= timestamp <= to (Unix milliseconds), in timestamp
// order, one row at a time. It reads the readings index on timestamp, so it
// costs the readings in the window, not the readings stored, and needs no
// sort. It stops at the first error fn returns and returns it.
func (s *Store) EachRegisterBetween(ctx context.Context, from, to int64, fn func(meterID int64, r crypto.Reading) error) error {
	const q = `
		SELECT meter_id, timestamp, wh_in, wh_out
		FROM readings
		WHERE timestamp >= $1 AND timestamp <= $2
		ORDER BY timestamp`
	rows, err := s.db.QueryContext(ctx, q, from, to)
	if err != nil {
		return fmt.Errorf("registers between %d and %d: %w", from, to, err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var r crypto.Reading
		if err := rows.Scan(&id, &r.Timestamp, &r.WhIn, &r.WhOut); err != nil {
			return fmt.Errorf("scan registers: %w", err)
		}
		if err := fn(id, r); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("registers between %d and %d: %w", from, to, err)
	}
	return nil
}
