package store_test

import (
	"context"
	"testing"
	"time"

	"smartmeters/crypto"
	"smartmeters/db/dbtest"
	"smartmeters/store"
)

func TestPartitions(t *testing.T) {
	ctx := context.Background()
	t.Run("sqlite", func(t *testing.T) {
		st := store.New(dbtest.SQLite(t).OpenMigrated(t))
		created, err := st.EnsurePartitions(ctx, time.Now(), time.Now().AddDate(1, 0, 0))
		if err != nil || len(created) != 0 {
			t.Fatalf("EnsurePartitions on SQLite = %v, %v; want nothing", created, err)
		}
	})
	for _, b := range dbtest.PostgresBackends(t) {
		t.Run(b.Name, func(t *testing.T) {
			conn := b.OpenMigrated(t)
			st := store.New(conn)
			m := newMeter(t, st, "partitioned")
			// Before every partition the migration made: into the default.
			old := time.Date(2019, 6, 10, 0, 0, 0, 0, time.UTC)
			put := func(at time.Time, whIn int64) {
				t.Helper()
				r := store.Reading{MeterID: m.ID, KeySeq: 1, Reading: crypto.Reading{WhIn: whIn, Timestamp: at.UnixMilli()}, Signature: []byte{1}, ReceivedAt: at}
				if _, err := st.InsertReadings(ctx, []store.Reading{r}); err != nil {
					t.Fatal(err)
				}
			}
			put(old, 1)
			put(old.AddDate(0, 1, 0), 2)
			inDefault := func() int {
				var n int
				if err := conn.GetContext(ctx, &n, `SELECT count(*) FROM readings_default`); err != nil {
					t.Fatal(err)
				}
				return n
			}
			if n := inDefault(); n != 2 {
				t.Fatalf("%d readings in the default partition, want 2", n)
			}

			created, err := st.EnsurePartitions(ctx, old.AddDate(0, -1, 0), old)
			if err != nil || len(created) != 2 || created[0].Name != "readings_p2019_05" || created[1].Name != "readings_p2019_06" {
				t.Fatalf("EnsurePartitions = %+v, %v", created, err)
			}
			if n := inDefault(); n != 1 {
				t.Fatalf("%d readings left in the default partition, want 1 (June moved into its partition)", n)
			}
			if again, err := st.EnsurePartitions(ctx, old, old); err != nil || len(again) != 0 {
				t.Fatalf("EnsurePartitions again = %+v, %v; want nothing new", again, err)
			}

			// Retention: everything before August 2019 goes.
			dropped, expired, err := st.DropPartitionsBefore(ctx, time.Date(2019, 8, 1, 0, 0, 0, 0, time.UTC))
			if err != nil || len(dropped) != 2 || expired != 1 {
				t.Fatalf("DropPartitionsBefore = %+v, %d, %v; want 2 partitions and 1 default row", dropped, expired, err)
			}
			var n int64
			if err := conn.GetContext(ctx, &n, `SELECT count(*) FROM readings`); err != nil || n != 0 {
				t.Fatalf("readings after retention: %d, %v; want 0", n, err)
			}
			parts, err := st.Partitions(ctx)
			if err != nil || len(parts) == 0 {
				t.Fatalf("Partitions = %v, %v", parts, err)
			}
			for _, p := range parts {
				if p.From.Before(time.Date(2019, 8, 1, 0, 0, 0, 0, time.UTC)) {
					t.Fatalf("partition %s survived retention", p.Name)
				}
			}
		})
	}
}
