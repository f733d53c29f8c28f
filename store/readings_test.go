package store_test

import (
	"context"
	"fmt"
	"math"
	"testing"

	"smartmeters/store"
)

func TestOutcomeString(t *testing.T) {
	tests := []struct {
		o    store.Outcome
		want string
	}{
		{store.Stored, "stored"},
		{store.Duplicate, "duplicate"},
		{store.Conflict, "conflict"},
		{store.Decreased, "decreased"},
		{0, "Outcome(0)"},
		{200, "Outcome(200)"},
	}
	for _, tt := range tests {
		if got := tt.o.String(); got != tt.want {
			t.Errorf("Outcome(%d).String() = %q, want %q", uint8(tt.o), got, tt.want)
		}
	}
}

// testInsertReadingsAtomic checks that a batch is committed whole or not
// at all.
func testInsertReadingsAtomic(t *testing.T, st *store.Store) {
	ctx := context.Background()
	const t0 = 1764141000000
	t.Run("Empty", func(t *testing.T) {
		got, err := st.InsertReadings(ctx, nil)
		if err != nil || len(got) != 0 {
			t.Fatalf("InsertReadings(nil) = %v, %v; want no outcomes", got, err)
		}
	})
	tests := []struct {
		name string
		bad  func(m store.Meter) store.Reading
	}{
		{"ErrUnknownMeter", func(store.Meter) store.Reading { return reading(-1, t0, 1, 0) }},
		{"ErrNegativeRegister", func(m store.Meter) store.Reading { return reading(m.ID, t0-2000, -1, 0) }},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newMeter(t, st, fmt.Sprintf("atomic-%d", i))
			good := reading(m.ID, t0, 1, 0)
			if got, err := st.InsertReadings(ctx, []store.Reading{good, tt.bad(m)}); err == nil {
				t.Fatalf("InsertReadings(batch with a bad reading) = %v, nil; want an error", got)
			}
			if rs, err := st.ReadingsBetween(ctx, m.ID, 0, math.MaxInt64, 10); err != nil || len(rs) != 0 {
				t.Fatalf("after a failed batch the meter holds %v, %v; want nothing", readingStrings(rs), err)
			}
			got, err := st.InsertReadings(ctx, []store.Reading{good})
			if err != nil || len(got) != 1 || got[0] != store.Stored {
				t.Fatalf("InsertReadings(good reading alone) = %v, %v; want stored", got, err)
			}
		})
	}
}
