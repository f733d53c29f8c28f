package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"smartmeters/db/dbtest"
	"smartmeters/store"
)

// BenchmarkInsertReadings writes batches of new readings as the group
// commit does, on every backend: of many meters, a reading each (a commit
// of concurrent single reports), and of one meter (a batch report from
// one meter's buffer). ns/op is per batch; readings/s is what one writer
// sustains.
func BenchmarkInsertReadings(b *testing.B) {
	run := 0
	for _, be := range dbtest.Backends(b) {
		for _, shape := range []string{"many-meters", "one-meter"} {
			for _, size := range []int{1, 100, 1000} {
				if shape == "one-meter" && size == 1 {
					continue // the same as many-meters
				}
				b.Run(fmt.Sprintf("%s/%s/batch=%d", be.Name, shape, size), func(b *testing.B) {
					st := store.New(be.OpenMigrated(b))
					ctx := context.Background()
					meters := make([]int64, size)
					run++ // -count runs this again on the same database
					for i := range meters {
						if shape == "many-meters" || i == 0 {
							meters[i] = newMeter(b, st, fmt.Sprintf("bench-%d-%d", run, i)).ID
						} else {
							meters[i] = meters[0]
						}
					}
					batch := make([]store.Reading, size)
					ts := int64(1764141000000)
					b.ReportAllocs()
					for b.Loop() {
						for i := range batch {
							ts += 1000
							batch[i] = reading(meters[i], ts, ts/1000, 0)
						}
						if _, err := st.InsertReadings(ctx, batch); err != nil {
							b.Fatal(err)
						}
					}
					b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "readings/s")
				})
			}
		}
	}
}

// BenchmarkInsertReadingsHistory writes new readings, a batch of one
// reading per meter as the group commit does, into a PostgreSQL database
// that keeps months of readings, a monthly partition each holding a
// reading of every meter: the cost of a reading must not grow with the
// months kept. batch=1 is the path of a lone report.
func BenchmarkInsertReadingsHistory(b *testing.B) {
	run := 0
	for _, be := range dbtest.Backends(b) {
		if be.Driver() != "postgres" {
			continue
		}
		for _, months := range []int{1, 36} {
			for _, size := range []int{1, 100} {
				b.Run(fmt.Sprintf("%s/months=%d/batch=%d", be.Name, months, size), func(b *testing.B) {
					st := store.New(be.OpenMigrated(b))
					ctx := context.Background()
					run++ // -count runs this again on the same database
					now := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
					if _, err := st.EnsurePartitions(ctx, now.AddDate(0, -months, 0), now.AddDate(0, 2, 0)); err != nil {
						b.Fatal(err)
					}
					meters := make([]int64, size)
					var history []store.Reading
					for i := range meters {
						meters[i] = newMeter(b, st, fmt.Sprintf("history-%d-%d", run, i)).ID
						for m := months; m >= 1; m-- {
							ts := now.AddDate(0, -m, 0).UnixMilli()
							history = append(history, reading(meters[i], ts, ts/1000, 0))
						}
					}
					if _, err := st.InsertReadings(ctx, history); err != nil {
						b.Fatal(err)
					}
					batch := make([]store.Reading, size)
					ts := now.UnixMilli()
					for b.Loop() {
						for i := range batch {
							ts += 1000
							batch[i] = reading(meters[i], ts, ts/1000, 0)
						}
						if _, err := st.InsertReadings(ctx, batch); err != nil {
							b.Fatal(err)
						}
					}
					b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "readings/s")
				})
			}
		}
	}
}
