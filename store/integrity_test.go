package store_test

import (
	"context"
	"fmt"
	"math"
	"slices"
	"testing"

	"smartmeters/store"
)

// testInsertReadingsCumulative checks that no reading which would make a
// register go down is stored: against stored readings before and after it
// in time, and against readings earlier in the same batch, in any order.
func testInsertReadingsCumulative(t *testing.T, st *store.Store) {
	ctx := context.Background()
	const t0 = 1764141000000
	// Each case starts from a fresh meter holding readings at t0+10s
	// (whIn 100, whOut 10) and t0+20s (200, 20).
	type r struct{ dt, in, out int64 } // dt in seconds
	const day = 86400
	tests := []struct {
		name  string
		batch []r
		want  []store.Outcome
	}{
		{"Between", []r{{15, 150, 15}}, []store.Outcome{store.Stored}},
		{"EqualToNeighbours", []r{{11, 100, 10}, {19, 200, 20}}, []store.Outcome{store.Stored, store.Stored}},
		{"BeforeAll", []r{{5, 50, 5}}, []store.Outcome{store.Stored}},
		{"AfterAll", []r{{30, 300, 30}}, []store.Outcome{store.Stored}},
		{"WhInBelowPrevious", []r{{15, 99, 15}}, []store.Outcome{store.Decreased}},
		{"WhOutBelowPrevious", []r{{15, 150, 9}}, []store.Outcome{store.Decreased}},
		{"WhInAboveNext", []r{{15, 201, 15}}, []store.Outcome{store.Decreased}},
		{"WhOutAboveNext", []r{{15, 150, 21}}, []store.Outcome{store.Decreased}},
		{"BeforeAllAboveFirst", []r{{5, 101, 5}}, []store.Outcome{store.Decreased}},
		{"AfterAllBelowLast", []r{{30, 300, 19}}, []store.Outcome{store.Decreased}},
		{"DuplicateStaysDuplicate", []r{{10, 100, 10}}, []store.Outcome{store.Duplicate}},
		{"ConflictStaysConflict", []r{{10, 0, 0}}, []store.Outcome{store.Conflict}},
		// Within one batch, each reading is checked against those before it.
		{"BatchAscending", []r{{30, 300, 30}, {40, 400, 40}, {50, 500, 50}}, []store.Outcome{store.Stored, store.Stored, store.Stored}},
		{"BatchDescending", []r{{50, 500, 50}, {40, 400, 40}, {30, 300, 30}}, []store.Outcome{store.Stored, store.Stored, store.Stored}},
		{"BatchShuffled", []r{{40, 400, 40}, {12, 120, 12}, {50, 500, 50}, {15, 150, 15}, {30, 300, 30}}, []store.Outcome{store.Stored, store.Stored, store.Stored, store.Stored, store.Stored}},
		{"BatchLaterBelowEarlier", []r{{30, 300, 30}, {40, 250, 40}}, []store.Outcome{store.Stored, store.Decreased}},
		{"BatchEarlierAboveLater", []r{{40, 400, 40}, {30, 450, 30}}, []store.Outcome{store.Stored, store.Decreased}},
		{"BatchBetweenTwoNew", []r{{30, 300, 30}, {50, 500, 50}, {40, 600, 40}, {40, 400, 40}}, []store.Outcome{store.Stored, store.Stored, store.Decreased, store.Stored}},
		// A rejected reading is not a neighbour of the ones after it.
		{"BatchAfterRejected", []r{{15, 999, 15}, {16, 160, 16}}, []store.Outcome{store.Decreased, store.Stored}},
		{"BatchRepeat", []r{{30, 300, 30}, {30, 300, 30}, {30, 301, 30}}, []store.Outcome{store.Stored, store.Duplicate, store.Conflict}},
		{"BatchNewBelowStoredAfterNew", []r{{25, 250, 25}, {24, 199, 24}}, []store.Outcome{store.Stored, store.Decreased}},
		// Neighbours weeks away, in other partitions: beyond the week in
		// which PostgreSQL looks for a previous neighbour first.
		{"FarAfterBelowLast", []r{{40 * day, 199, 20}}, []store.Outcome{store.Decreased}},
		{"FarAfterAboveLast", []r{{40 * day, 201, 20}}, []store.Outcome{store.Stored}},
		{"BatchFarAfterBelowLast", []r{{40 * day, 199, 20}, {40*day + 10, 300, 30}, {40*day + 20, 400, 40}}, []store.Outcome{store.Decreased, store.Stored, store.Stored}},
		{"BatchFarThenBetween", []r{{40 * day, 300, 30}, {20 * day, 350, 25}, {20 * day, 250, 25}}, []store.Outcome{store.Stored, store.Decreased, store.Stored}},
		{"BatchFarAfterEachOther", []r{{10 * day, 300, 30}, {20 * day, 250, 40}, {30 * day, 400, 40}}, []store.Outcome{store.Stored, store.Decreased, store.Stored}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newMeter(t, st, fmt.Sprintf("cumulative-%d", i))
			seed := []store.Reading{reading(m.ID, t0+10000, 100, 10), reading(m.ID, t0+20000, 200, 20)}
			if _, err := st.InsertReadings(ctx, seed); err != nil {
				t.Fatal(err)
			}
			batch := make([]store.Reading, len(tt.batch))
			for j, b := range tt.batch {
				batch[j] = reading(m.ID, t0+b.dt*1000, b.in, b.out)
			}
			got, err := st.InsertReadings(ctx, batch)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("InsertReadings = %v, want %v", got, tt.want)
			}
			stored, err := st.ReadingsBetween(ctx, m.ID, 0, math.MaxInt64, 100)
			if err != nil {
				t.Fatal(err)
			}
			wantRows := len(seed)
			for _, o := range got {
				if o == store.Stored {
					wantRows++
				}
			}
			if len(stored) != wantRows {
				t.Fatalf("meter holds %d readings, want %d", len(stored), wantRows)
			}
			if err := checkCumulative(stored); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// checkCumulative returns an error unless rs, in timestamp order, never
// has a register go down.
func checkCumulative(rs []store.Reading) error {
	for i := 1; i < len(rs); i++ {
		if rs[i].WhIn < rs[i-1].WhIn || rs[i].WhOut < rs[i-1].WhOut {
			return fmt.Errorf("register decreases from %+v to %+v", rs[i-1].Reading, rs[i].Reading)
		}
	}
	return nil
}
