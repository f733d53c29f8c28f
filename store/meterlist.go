package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"smartmeters/crypto"
)

// MeterSummary is a meter with its most recent reading, if it has one.
type MeterSummary struct {
	Meter
	LastReading *Reading // nil when the meter has never reported
}

// MeterFilter selects a page of meters for ListMeters.
type MeterFilter struct {
	// UsernamePrefix keeps meters whose username starts with it, compared
	// character by character (case-sensitive, no wildcards); empty keeps
	// all. It must be valid UTF-8, as usernames are.
	UsernamePrefix string
	// Activity keeps meters by their key and their latest reading as of
	// Since; AnyActivity keeps all.
	Activity Activity
	Since    time.Time
	AfterID  int64 // keeps meters with a larger id: the page cursor
	Limit    int   // at most this many; must be positive
}

// Activity selects meters by whether their key is revoked and whether
// they have reported since an instant (MeterFilter.Since), compared with
// the readings' own timestamps.
type Activity int

const (
	// AnyActivity keeps every meter.
	AnyActivity Activity = iota
	// ReportedSince keeps meters whose key is not revoked and that have a
	// reading timestamped at or after Since.
	ReportedSince
	// SilentSince keeps meters whose key is not revoked and that have no
	// reading timestamped at or after Since.
	SilentSince
	// Revoked keeps meters whose key is revoked.
	Revoked
)

// ListMeters returns meters in id order with their latest readings. The
// latest reading comes from the primary key of readings, one index probe per
// listed meter, so a page costs the same however many readings are stored.
func (s *Store) ListMeters(ctx context.Context, f MeterFilter) ([]MeterSummary, error) {
	// substr/length rather than LIKE: LIKE would need its wildcards escaped
	// and is case-insensitive on SQLite but not on PostgreSQL.
	const q = `
		SELECT m.id, m.username, m.public_key, m.fingerprint, m.algorithm, m.key_seq, m.registered_at, m.revoked_at,
			r.timestamp, r.wh_in, r.wh_out, r.received_at
		FROM meters m
		LEFT JOIN readings r ON r.meter_id = m.id
			AND r.timestamp = (SELECT max(timestamp) FROM readings WHERE meter_id = m.id)
		WHERE m.id > $1
			AND (CAST($2 AS TEXT) = '' OR substr(m.username, 1, length(CAST($2 AS TEXT))) = CAST($2 AS TEXT))
			AND (CAST($4 AS INTEGER) = 0
				OR (CAST($4 AS INTEGER) = 1 AND m.revoked_at IS NULL AND r.timestamp >= $5)
				OR (CAST($4 AS INTEGER) = 2 AND m.revoked_at IS NULL AND (r.timestamp IS NULL OR r.timestamp < $5))
				OR (CAST($4 AS INTEGER) = 3 AND m.revoked_at IS NOT NULL))
		ORDER BY m.id
		LIMIT $3`
	rows, err := s.db.QueryContext(ctx, q, f.AfterID, f.UsernamePrefix, f.Limit, int(f.Activity), f.Since.UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("list meters: %w", err)
	}
	defer rows.Close()
	var out []MeterSummary
	for rows.Next() {
		ms, err := scanMeterSummary(rows)
		if err != nil {
			return nil, fmt.Errorf("list meters: %w", err)
		}
		out = append(out, ms)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list meters: %w", err)
	}
	return out, nil
}

// MeterSummaryByID returns one meter with its latest reading, or an error
// wrapping ErrNotFound.
func (s *Store) MeterSummaryByID(ctx context.Context, id int64) (MeterSummary, error) {
	const q = `
		SELECT m.id, m.username, m.public_key, m.fingerprint, m.algorithm, m.key_seq, m.registered_at, m.revoked_at,
			r.timestamp, r.wh_in, r.wh_out, r.received_at
		FROM meters m
		LEFT JOIN readings r ON r.meter_id = m.id
			AND r.timestamp = (SELECT max(timestamp) FROM readings WHERE meter_id = m.id)
		WHERE m.id = $1`
	rows, err := s.db.QueryContext(ctx, q, id)
	if err != nil {
		return MeterSummary{}, fmt.Errorf("get meter %d: %w", id, err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return MeterSummary{}, fmt.Errorf("get meter %d: %w", id, err)
		}
		return MeterSummary{}, fmt.Errorf("meter %d: %w", id, ErrNotFound)
	}
	ms, err := scanMeterSummary(rows)
	if err != nil {
		return MeterSummary{}, fmt.Errorf("get meter %d: %w", id, err)
	}
	return ms, nil
}

func scanMeterSummary(rows *sql.Rows) (MeterSummary, error) {
	var (
		row         meterRow
		ts, in, out sql.NullInt64
		received    sql.NullTime
	)
	err := rows.Scan(&row.ID, &row.Username, &row.PublicKey, &row.Fingerprint, &row.Algorithm, &row.KeySeq, &row.RegisteredAt, &row.RevokedAt,
		&ts, &in, &out, &received)
	if err != nil {
		return MeterSummary{}, fmt.Errorf("scan meter: %w", err)
	}
	m, err := row.meter()
	if err != nil {
		return MeterSummary{}, err
	}
	ms := MeterSummary{Meter: m}
	if ts.Valid {
		ms.LastReading = &Reading{
			MeterID:    m.ID,
			Reading:    crypto.Reading{WhIn: in.Int64, WhOut: out.Int64, Timestamp: ts.Int64},
			ReceivedAt: received.Time.UTC(),
		}
	}
	return ms, nil
}

// CountMeters returns how many meters are registered.
func (s *Store) CountMeters(ctx context.Context) (int64, error) {
	const q = `SELECT count(*) FROM meters`
	var n int64
	if err := s.db.GetContext(ctx, &n, q); err != nil {
		return 0, fmt.Errorf("count meters: %w", err)
	}
	return n, nil
}

// CountReportingMeters returns how many meters have a reading timestamped at
// or after since. It reads the readings index on timestamp, so it costs the
// readings in the window, not all readings.
func (s *Store) CountReportingMeters(ctx context.Context, since time.Time) (int64, error) {
	const q = `SELECT count(DISTINCT meter_id) FROM readings WHERE timestamp >= $1`
	var n int64
	if err := s.db.GetContext(ctx, &n, q, since.UnixMilli()); err != nil {
		return 0, fmt.Errorf("count reporting meters: %w", err)
	}
	return n, nil
}

// MeterCounts counts the meters by state as of an instant: Reporting and
// Silent count the meters whose key is not revoked, with and without a
// reading since then; Revoked those whose key is revoked. Registered is
// the sum of the three.
type MeterCounts struct {
	Registered, Reporting, Silent, Revoked int64
}

// CountMeterStates counts the meters by state as of since: one pass over
// the meters and, through the readings index on timestamp, over the
// readings since then.
func (s *Store) CountMeterStates(ctx context.Context, since time.Time) (MeterCounts, error) {
	const q = `
		SELECT count(*),
			coalesce(sum(CASE WHEN m.revoked_at IS NULL AND r.meter_id IS NOT NULL THEN 1 ELSE 0 END), 0),
			coalesce(sum(CASE WHEN m.revoked_at IS NOT NULL THEN 1 ELSE 0 END), 0)
		FROM meters m
		LEFT JOIN (SELECT DISTINCT meter_id FROM readings WHERE timestamp >= $1) r ON r.meter_id = m.id`
	var c MeterCounts
	if err := s.db.QueryRowContext(ctx, q, since.UnixMilli()).Scan(&c.Registered, &c.Reporting, &c.Revoked); err != nil {
		return MeterCounts{}, fmt.Errorf("count meters by state: %w", err)
	}
	c.Silent = c.Registered - c.Reporting - c.Revoked
	return c, nil
}
