package store_test

import (
	"context"
	"math"
	"slices"
	"testing"
	"time"

	"smartmeters/db"
	"smartmeters/store"
)

// testPartitionMaintenance checks partition maintenance through the
// conformance suite: on PostgreSQL it creates, lists and drops monthly
// partitions and expires the default partition's rows; on SQLite every
// method does nothing and no reading goes. Its readings are in 1999, far
// from every other subtest's and from the partitions the migration makes.
func testPartitionMaintenance(t *testing.T, st *store.Store, backend string) {
	ctx := context.Background()
	postgres := backend == db.Postgres
	utc := func(y int, mo time.Month, d int) time.Time { return time.Date(y, mo, d, 0, 0, 0, 0, time.UTC) }
	m := newMeter(t, st, "retention")
	june, july, august := reading(m.ID, utc(1999, 6, 10).UnixMilli(), 1, 0), reading(m.ID, utc(1999, 7, 10).UnixMilli(), 2, 0),
		reading(m.ID, utc(1999, 8, 1).UnixMilli(), 3, 0)
	recent := reading(m.ID, 1764141000000, 4, 0)
	storeReadings(t, st, june, july, august, recent)
	checkReadings := func(t *testing.T, want ...store.Reading) {
		t.Helper()
		got, err := st.ReadingsBetween(ctx, m.ID, 0, math.MaxInt64, 10)
		if err != nil {
			t.Fatal(err)
		}
		if g, w := readingStrings(got), readingStrings(want); !slices.Equal(g, w) {
			t.Fatalf("readings =\n\t%v\nwant\n\t%v", g, w)
		}
	}
	names := func(ps []store.Partition) []string {
		var out []string
		for _, p := range ps {
			out = append(out, p.Name)
		}
		return out
	}
	p199906 := store.Partition{Name: "readings_p1999_06", From: utc(1999, 6, 1), To: utc(1999, 7, 1)}

	// June gets a partition, and its reading moves there; July stays in
	// the default partition.
	created, err := st.EnsurePartitions(ctx, utc(1999, 6, 10), utc(1999, 6, 30).In(time.FixedZone("AEST", 10*3600)))
	if err != nil {
		t.Fatalf("EnsurePartitions: %v", err)
	}
	var want []store.Partition
	if postgres {
		want = []store.Partition{p199906}
	}
	if !slices.EqualFunc(created, want, func(a, b store.Partition) bool {
		return a.Name == b.Name && a.From.Equal(b.From) && a.To.Equal(b.To)
	}) {
		t.Fatalf("EnsurePartitions = %+v, want %+v", created, want)
	}
	if again, err := st.EnsurePartitions(ctx, utc(1999, 6, 1), utc(1999, 6, 1)); err != nil || len(again) != 0 {
		t.Fatalf("EnsurePartitions again = %v, %v; want nothing new", names(again), err)
	}
	checkReadings(t, june, july, august, recent)

	parts, err := st.Partitions(ctx)
	if err != nil {
		t.Fatalf("Partitions: %v", err)
	}
	if !postgres && len(parts) != 0 {
		t.Fatalf("Partitions on %s = %v, want none", backend, names(parts))
	}
	if postgres {
		if len(parts) == 0 || parts[0] != p199906 {
			t.Fatalf("Partitions = %v, want %s first", names(parts), p199906.Name)
		}
		for i := 1; i < len(parts); i++ {
			if parts[i].From.Before(parts[i-1].To) {
				t.Fatalf("Partitions = %v: not oldest first", names(parts))
			}
		}
	}

	// A partition ending at the horizon goes; the default partition's
	// rows at or after it stay.
	dropped, expired, err := st.DropPartitionsBefore(ctx, utc(1999, 7, 1))
	if err != nil {
		t.Fatalf("DropPartitionsBefore(July): %v", err)
	}
	if postgres {
		if !slices.Equal(names(dropped), []string{p199906.Name}) || expired != 0 {
			t.Fatalf("DropPartitionsBefore(July) = %v, %d; want [%s], 0", names(dropped), expired, p199906.Name)
		}
		checkReadings(t, july, august, recent)
	} else {
		if len(dropped) != 0 || expired != 0 {
			t.Fatalf("DropPartitionsBefore(July) on %s = %v, %d; want nothing", backend, names(dropped), expired)
		}
		checkReadings(t, june, july, august, recent)
	}

	// The default partition's rows before the horizon go, the one at it
	// stays.
	dropped, expired, err = st.DropPartitionsBefore(ctx, utc(1999, 8, 1))
	if err != nil {
		t.Fatalf("DropPartitionsBefore(August): %v", err)
	}
	if postgres {
		if len(dropped) != 0 || expired != 1 {
			t.Fatalf("DropPartitionsBefore(August) = %v, %d; want none, 1", names(dropped), expired)
		}
		checkReadings(t, august, recent)
	} else {
		if len(dropped) != 0 || expired != 0 {
			t.Fatalf("DropPartitionsBefore(August) on %s = %v, %d; want nothing", backend, names(dropped), expired)
		}
		checkReadings(t, june, july, august, recent)
	}
}
