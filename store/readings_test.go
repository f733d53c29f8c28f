package store_test

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

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

// testInsertReadingsAtomic checks that a batch with a reading the store
// refuses fails, and stores nothing it does not report stored: on one
// database nothing at all, on a cluster what other shards committed.
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
			got, err := st.InsertReadings(ctx, []store.Reading{good, tt.bad(m)})
			if err == nil {
				t.Fatalf("InsertReadings(batch with a bad reading) = %v, nil; want an error", got)
			}
			if len(got) != 2 || got[1] != 0 {
				t.Fatalf("InsertReadings(batch with a bad reading) = %v; want two outcomes, the bad one 0", got)
			}
			rs, err := st.ReadingsBetween(ctx, m.ID, 0, math.MaxInt64, 10)
			if err != nil {
				t.Fatal(err)
			}
			if want := map[store.Outcome]int{0: 0, store.Stored: 1}; want[got[0]] != len(rs) || (got[0] != 0 && got[0] != store.Stored) {
				t.Fatalf("after a failed batch with outcomes %v the meter holds %v", got, readingStrings(rs))
			}
			if got[0] == 0 {
				got, err = st.InsertReadings(ctx, []store.Reading{good})
				if err != nil || len(got) != 1 || got[0] != store.Stored {
					t.Fatalf("InsertReadings(good reading alone) = %v, %v; want stored", got, err)
				}
			}
		})
	}
}

// testReceivedAfterKey stores readings that arrive, by the server's
// clock, before their meter's key was added (a server whose clock is
// behind), alone, in a batch of several meters and in a batch of one
// meter: each is recorded as received when its key was added, never
// before, so that a reading always lies within its key's validity.
func testReceivedAfterKey(t *testing.T, st *store.Store) {
	ctx := context.Background()
	var ms []store.Meter
	for i := range 3 {
		ms = append(ms, newMeter(t, st, fmt.Sprintf("early-%d", i)))
	}
	early := func(r store.Reading) store.Reading {
		r.ReceivedAt = registeredAt.Add(-time.Hour)
		return r
	}
	const t0 = 1764141000000
	batches := [][]store.Reading{
		{early(reading(ms[0].ID, t0, 1, 0))},
		{early(reading(ms[0].ID, t0+1000, 2, 0)), early(reading(ms[1].ID, t0, 1, 0)), early(reading(ms[2].ID, t0, 1, 0))},
		{early(reading(ms[1].ID, t0+1000, 2, 0)), early(reading(ms[1].ID, t0+2000, 3, 0)), early(reading(ms[1].ID, t0+3000, 4, 0))},
	}
	for _, b := range batches {
		got, err := st.InsertReadings(ctx, b)
		if err != nil {
			t.Fatal(err)
		}
		for i, o := range got {
			if o != store.Stored {
				t.Fatalf("reading %d: %s", i, o)
			}
		}
	}
	for _, m := range ms {
		rs, err := st.ReadingsBetween(ctx, m.ID, 0, math.MaxInt64, 10)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			if !r.ReceivedAt.Equal(registeredAt) {
				t.Errorf("meter %s, reading at %d: received %s, want %s (when its key was added)", m.Username, r.Timestamp, r.ReceivedAt, registeredAt)
			}
		}
	}
}
