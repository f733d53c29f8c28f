package store_test

import (
	"context"
	"fmt"
	"testing"

	"smartmeters/db/dbtest"
	"smartmeters/store"
)

// BenchmarkInsertReadings writes batches of new readings, as the group
// commit does, on every backend; ns/op is per batch, and the readings/s
// metric is what one writer sustains.
func BenchmarkInsertReadings(b *testing.B) {
	for _, be := range dbtest.Backends(b) {
		for _, size := range []int{1, 100, 1000} {
			b.Run(fmt.Sprintf("%s/batch=%d", be.Name, size), func(b *testing.B) {
				st := store.New(be.OpenMigrated(b))
				ctx := context.Background()
				m := newMeter(b, st, fmt.Sprintf("bench-%d", size))
				batch := make([]store.Reading, size)
				ts := int64(1764141000000)
				b.ReportAllocs()
				for b.Loop() {
					for i := range batch {
						ts += 1000
						batch[i] = reading(m.ID, ts, ts/1000, 0)
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
