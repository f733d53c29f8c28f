package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
)

// On PostgreSQL readings is partitioned by RANGE on timestamp (Unix
// milliseconds of the meter's clock), one partition per calendar month in
// UTC, named readings_pYYYY_MM, plus readings_default for a reading no
// month's partition takes. SQLite has one plain table and every method here
// does nothing there.
//
// DDL cannot take bound parameters, so partition names and bounds are
// formatted into these statements; they are computed from times, never
// from input, and names are quoted.

const (
	partitionPrefix  = "readings_p"
	defaultPartition = "readings_default"
	// partitionLockKey serialises partition maintenance across servers and
	// `migrate up` (pg_advisory_xact_lock).
	partitionLockKey = 0x736d5f7061727473 // "sm_parts"
)

// Partition is one month's partition of readings: it holds timestamps in
// [From, To).
type Partition struct {
	Name     string
	From, To time.Time
}

// monthOf returns the partition holding instant t.
func monthOf(t time.Time) Partition {
	t = t.UTC()
	from := time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
	return Partition{
		Name: fmt.Sprintf("%s%04d_%02d", partitionPrefix, from.Year(), int(from.Month())),
		From: from,
		To:   from.AddDate(0, 1, 0),
	}
}

// parsePartition returns the partition a table name stands for, and false
// for a name that is not a month's partition.
func parsePartition(name string) (Partition, bool) {
	var y, m int
	if n, err := fmt.Sscanf(name, partitionPrefix+"%4d_%2d", &y, &m); err != nil || n != 2 || m < 1 || m > 12 {
		return Partition{}, false
	}
	p := monthOf(time.Date(y, time.Month(m), 1, 0, 0, 0, 0, time.UTC))
	return p, p.Name == name
}

// Partitions returns the months readings is partitioned into, oldest first;
// none on SQLite.
func (s *Store) Partitions(ctx context.Context) ([]Partition, error) {
	if !s.postgres {
		return nil, nil
	}
	return partitions(ctx, s.db)
}

func partitions(ctx context.Context, q sqlx.QueryerContext) ([]Partition, error) {
	const query = `
		SELECT c.relname
		FROM pg_inherits i
		JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = 'readings'::regclass
		ORDER BY c.relname`
	var names []string
	if err := sqlx.SelectContext(ctx, q, &names, query); err != nil {
		return nil, fmt.Errorf("list partitions of readings: %w", err)
	}
	var out []Partition
	for _, n := range names {
		if p, ok := parsePartition(n); ok {
			out = append(out, p)
		}
	}
	return out, nil
}

// PartitionsAhead is how far ahead of now `migrate up` and, by default,
// `serve` create readings partitions: two months, so that a month's
// partition exists long before its first reading.
const PartitionsAhead = 62 * 24 * time.Hour

// EnsurePartitions creates the partitions of every month from the one
// holding from to the one holding to, where missing, and returns those it
// created. Rows the default partition holds for a created month move into
// it. Servers and `migrate up` may call it concurrently.
func (s *Store) EnsurePartitions(ctx context.Context, from, to time.Time) ([]Partition, error) {
	if !s.postgres {
		return nil, nil
	}
	have, err := s.Partitions(ctx)
	if err != nil {
		return nil, err
	}
	exists := make(map[string]bool, len(have))
	for _, p := range have {
		exists[p.Name] = true
	}
	var created []Partition
	for p := monthOf(from); !p.From.After(to); p = monthOf(p.To) {
		if exists[p.Name] {
			continue
		}
		made, err := s.createPartition(ctx, p)
		if err != nil {
			return created, err
		}
		if made {
			created = append(created, p)
		}
	}
	return created, nil
}

// createPartition creates p unless another process just did, and reports
// whether it did. The partition is built beside readings and attached, so
// that rows already in the default partition can move into it first and
// ingest is held up only for the attach.
func (s *Store) createPartition(ctx context.Context, p Partition) (bool, error) {
	made := false
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(partitionLockKey)); err != nil {
			return err
		}
		var found bool
		if err := tx.GetContext(ctx, &found, `SELECT to_regclass($1) IS NOT NULL`, p.Name); err != nil {
			return err
		}
		if found {
			return nil
		}
		name := pq.QuoteIdentifier(p.Name)
		from, to := p.From.UnixMilli(), p.To.UnixMilli()
		if _, err := tx.ExecContext(ctx, `CREATE TABLE `+name+` (LIKE readings INCLUDING DEFAULTS INCLUDING CONSTRAINTS)`); err != nil {
			return err
		}
		move := `
			WITH moved AS (
				DELETE FROM ` + defaultPartition + ` WHERE timestamp >= $1 AND timestamp < $2
				RETURNING meter_id, key_seq, timestamp, wh_in, wh_out, signature, received_at)
			INSERT INTO ` + name + ` (meter_id, key_seq, timestamp, wh_in, wh_out, signature, received_at)
			SELECT meter_id, key_seq, timestamp, wh_in, wh_out, signature, received_at FROM moved`
		if _, err := tx.ExecContext(ctx, move, from, to); err != nil {
			return err
		}
		attach := fmt.Sprintf(`ALTER TABLE readings ATTACH PARTITION %s FOR VALUES FROM (%d) TO (%d)`, name, from, to)
		if _, err := tx.ExecContext(ctx, attach); err != nil {
			return err
		}
		made = true
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("create partition %s: %w", p.Name, err)
	}
	return made, nil
}

// DropPartitionsBefore drops every month's partition that ends at or
// before horizon, with its readings, and deletes the default partition's
// readings timestamped before horizon. It returns the partitions dropped
// and the number of default-partition rows deleted.
func (s *Store) DropPartitionsBefore(ctx context.Context, horizon time.Time) ([]Partition, int64, error) {
	if !s.postgres {
		return nil, 0, nil
	}
	have, err := s.Partitions(ctx)
	if err != nil {
		return nil, 0, err
	}
	var dropped []Partition
	for _, p := range have {
		if p.To.After(horizon) {
			continue
		}
		err := s.inTx(ctx, func(tx *sqlx.Tx) error {
			if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(partitionLockKey)); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, `DROP TABLE IF EXISTS `+pq.QuoteIdentifier(p.Name))
			return err
		})
		if err != nil {
			return dropped, 0, fmt.Errorf("drop partition %s: %w", p.Name, err)
		}
		dropped = append(dropped, p)
	}
	const q = `DELETE FROM ` + defaultPartition + ` WHERE timestamp < $1`
	res, err := s.db.ExecContext(ctx, q, horizon.UnixMilli())
	if err != nil {
		return dropped, 0, fmt.Errorf("expire default partition: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return dropped, 0, fmt.Errorf("expire default partition: %w", err)
	}
	return dropped, n, nil
}
