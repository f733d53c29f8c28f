package store_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"smartmeters/crypto"
	"smartmeters/store"
)

func testEachRegisterBetween(t *testing.T, st *store.Store) {
	ctx := context.Background()
	// An era of its own, so that the window holds only this test's readings.
	t0 := time.Date(2033, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	a, b := newMeter(t, st, "fleet-a"), newMeter(t, st, "fleet-b")
	// a reports at t0+1s, 3s, 5s and b at t0+2s, 4s, 6s; stored meter by
	// meter and out of time order, so that only the query's order shows.
	row := func(m store.Meter, s int64) string {
		return fmt.Sprintf("%s@%d:%d/%d", m.Username, s, 10*s, s)
	}
	put := func(m store.Meter, s int64) store.Reading { return reading(m.ID, t0+s*1000, 10*s, s) }
	storeReadings(t, st, put(a, 5), put(a, 1), put(a, 3), put(b, 6), put(b, 2), put(b, 4))
	name := map[int64]store.Meter{a.ID: a, b.ID: b}

	collect := func(t *testing.T, from, to int64) []string {
		t.Helper()
		var got []string
		last := int64(-1 << 63)
		err := st.EachRegisterBetween(ctx, from, to, func(id int64, r crypto.Reading) error {
			if r.Timestamp < last {
				t.Errorf("meter %d at %d after a reading at %d: not in timestamp order", id, r.Timestamp, last)
			}
			last = r.Timestamp
			m, ok := name[id]
			if !ok {
				t.Errorf("meter %d at %d is none of this test's", id, r.Timestamp)
				return nil
			}
			got = append(got, fmt.Sprintf("%s@%d:%d/%d", m.Username, (r.Timestamp-t0)/1000, r.WhIn, r.WhOut))
			return nil
		})
		if err != nil {
			t.Fatalf("EachRegisterBetween: %v", err)
		}
		return got
	}
	tests := []struct {
		name     string
		from, to int64 // milliseconds after t0
		want     []string
	}{
		{"All", 0, 10000, []string{row(a, 1), row(b, 2), row(a, 3), row(b, 4), row(a, 5), row(b, 6)}},
		{"BoundsInclusive", 2000, 5000, []string{row(b, 2), row(a, 3), row(b, 4), row(a, 5)}},
		{"JustOutsideBounds", 1999, 5001, []string{row(b, 2), row(a, 3), row(b, 4), row(a, 5)}},
		{"JustInsideBounds", 2001, 4999, []string{row(a, 3), row(b, 4)}},
		{"Instant", 3000, 3000, []string{row(a, 3)}},
		{"InstantBetween", 3500, 3500, nil},
		{"Before", -10000, 999, nil},
		{"After", 6001, 10000, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := collect(t, t0+tt.from, t0+tt.to); !slices.Equal(got, tt.want) {
				t.Fatalf("EachRegisterBetween([t0%+dms, t0%+dms]) = %q, want %q", tt.from, tt.to, got, tt.want)
			}
		})
	}
	t.Run("ErrStops", func(t *testing.T) {
		for stopAt := 1; stopAt <= 6; stopAt++ {
			calls := 0
			err := st.EachRegisterBetween(ctx, t0, t0+10000, func(int64, crypto.Reading) error {
				calls++
				if calls == stopAt {
					return errStop
				}
				return nil
			})
			if !errors.Is(err, errStop) || calls != stopAt {
				t.Fatalf("fn failing on call %d: EachRegisterBetween = %v after %d calls; want errStop after %d", stopAt, err, calls, stopAt)
			}
		}
	})
}
