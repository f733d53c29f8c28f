package db_test

import (
	"context"
	"testing"
	"time"

	"smartmeters/db"
	"smartmeters/db/dbtest"
)

// TestPartitionMigration checks that migration 00004 turns a readings table
// with rows into a partitioned one holding the same rows, each in its
// month's partition, and that rolling it back restores a plain table with
// them all.
func TestPartitionMigration(t *testing.T) {
	b, ok := dbtest.Postgres(t)
	if !ok {
		t.Skipf("needs PostgreSQL: set %s", dbtest.EnvURL)
	}
	ctx := context.Background()
	d := b.Open(t)
	p, err := db.NewMigrator(d)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(ctx, 3); err != nil {
		t.Fatal(err)
	}
	if _, err := d.ExecContext(ctx, `
		INSERT INTO meters (username, public_key, fingerprint, algorithm, registered_at)
		VALUES ('m', '\x00', sha256('m'), 'ed25519', now())`); err != nil {
		t.Fatal(err)
	}
	// Three readings in each of 14 months, and one at the epoch.
	start := time.Date(2025, 1, 15, 0, 0, 0, 0, time.UTC)
	var stamps []int64
	for m := range 14 {
		for i := range 3 {
			stamps = append(stamps, start.AddDate(0, m, i).UnixMilli())
		}
	}
	stamps = append(stamps, 0)
	for i, ts := range stamps {
		if _, err := d.ExecContext(ctx, `
			INSERT INTO readings (meter_id, timestamp, wh_in, wh_out, signature, received_at)
			SELECT id, $1, $2, 0, '\x01', now() FROM meters`, ts, i); err != nil {
			t.Fatal(err)
		}
	}
	count := func(q string) int {
		t.Helper()
		var n int
		if err := d.GetContext(ctx, &n, q); err != nil {
			t.Fatal(err)
		}
		return n
	}
	const sum = `SELECT count(*) + coalesce(sum(wh_in), 0) FROM readings`
	want := count(sum)

	if _, err := p.UpTo(ctx, 4); err != nil {
		t.Fatalf("up to 4: %v", err)
	}
	if got := count(sum); got != want {
		t.Fatalf("after up: rows+sum %d, want %d", got, want)
	}
	if n := count(`SELECT count(*) FROM pg_partitioned_table WHERE partrelid = 'readings'::regclass`); n != 1 {
		t.Fatal("readings is not partitioned after up")
	}
	// 15 months with rows (14 and January 1970) and at least this month
	// and the next two, plus the default partition.
	if n := count(`SELECT count(*) FROM pg_inherits WHERE inhparent = 'readings'::regclass`); n < 15+1+1 {
		t.Fatalf("%d partitions, want at least 17", n)
	}
	if n := count(`SELECT count(*) FROM readings_default`); n != 0 {
		t.Fatalf("%d rows in the default partition, want every row in its month", n)
	}
	if n := count(`SELECT count(*) FROM readings_p2025_03`); n != 3 {
		t.Fatalf("readings_p2025_03 has %d rows, want 3", n)
	}

	if _, err := p.DownTo(ctx, 3); err != nil {
		t.Fatalf("down to 3: %v", err)
	}
	if got := count(sum); got != want {
		t.Fatalf("after down: rows+sum %d, want %d", got, want)
	}
	if n := count(`SELECT count(*) FROM pg_class WHERE oid = 'readings'::regclass AND relkind = 'r'`); n != 1 {
		t.Fatal("readings is not a plain table after down")
	}
	if n := count(`SELECT count(*) FROM pg_indexes WHERE schemaname = current_schema() AND indexname IN ('readings_pkey', 'readings_timestamp_idx')`); n != 2 {
		t.Fatalf("after down, %d of readings_pkey and readings_timestamp_idx exist", n)
	}
	if _, err := p.Up(ctx); err != nil {
		t.Fatalf("up again: %v", err)
	}
	if got := count(sum); got != want {
		t.Fatalf("after up again: rows+sum %d, want %d", got, want)
	}
}
