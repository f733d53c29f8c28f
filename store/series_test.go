package store_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"smartmeters/crypto"
	"smartmeters/store"
	"smartmeters/store/energy"
)

var errStop = errors.New("stop")

// readingString renders every field of r, so that readings compare as
// strings.
func readingString(r store.Reading) string {
	return fmt.Sprintf("{meter %d at %d in %d out %d sig %q received %s}", r.MeterID, r.Timestamp, r.WhIn, r.WhOut,
		r.Signature, r.ReceivedAt.Format(time.RFC3339Nano))
}

func readingStrings(rs []store.Reading) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = readingString(r)
	}
	return out
}

// storeReadings stores each of rs in a batch of its own, in the order
// given, and fails unless every one is new.
func storeReadings(t *testing.T, st *store.Store, rs ...store.Reading) {
	t.Helper()
	for _, r := range rs {
		got, err := st.InsertReadings(context.Background(), []store.Reading{r})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0] != store.Stored {
			t.Fatalf("InsertReadings(%s) = %v, want stored", readingString(r), got)
		}
	}
}

func testReadingsBetween(t *testing.T, st *store.Store) {
	ctx := context.Background()
	const t0 = 1764141000000
	m, other := newMeter(t, st, "between"), newMeter(t, st, "between-other")
	// m has readings at t0+0s, 10s, …, 40s; other has some at the same
	// instants and between them.
	var rs []store.Reading
	for i := range int64(5) {
		rs = append(rs, reading(m.ID, t0+i*10000, 100*i, i))
	}
	storeReadings(t, st, rs[3], rs[0], rs[4], rs[1], rs[2])
	storeReadings(t, st, reading(other.ID, t0, 1, 0), reading(other.ID, t0+5000, 2, 0), reading(other.ID, t0+10000, 3, 0))

	tests := []struct {
		name     string
		from, to int64
		limit    int
		want     []store.Reading
	}{
		{"All", 0, math.MaxInt64, 10, rs},
		{"FromInclusiveToExclusive", t0 + 10000, t0 + 40000, 10, rs[1:4]},
		{"ToExclusive", t0, t0 + 10000, 10, rs[:1]},
		{"JustAfterFrom", t0 + 1, t0 + 20001, 10, rs[1:3]},
		{"Between", t0 + 1, t0 + 10000, 10, nil},
		{"EmptyWindow", t0 + 10000, t0 + 10000, 10, nil},
		{"BeforeAll", 0, t0, 10, nil},
		{"AfterAll", t0 + 40001, math.MaxInt64, 10, nil},
		{"Limit", 0, math.MaxInt64, 2, rs[:2]},
		{"LimitInWindow", t0 + 10000, math.MaxInt64, 1, rs[1:2]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := st.ReadingsBetween(ctx, m.ID, tt.from, tt.to, tt.limit)
			if err != nil {
				t.Fatal(err)
			}
			if g, w := readingStrings(got), readingStrings(tt.want); !slices.Equal(g, w) {
				t.Fatalf("ReadingsBetween(%d, %d, %d) =\n\t%v\nwant\n\t%v", tt.from, tt.to, tt.limit, g, w)
			}
			// Newest first: the window's last readings, backwards.
			var wantNewest []store.Reading
			for i := len(rs) - 1; i >= 0 && len(wantNewest) < tt.limit; i-- {
				if rs[i].Timestamp >= tt.from && rs[i].Timestamp < tt.to {
					wantNewest = append(wantNewest, rs[i])
				}
			}
			got, err = st.NewestReadingsBetween(ctx, m.ID, tt.from, tt.to, tt.limit)
			if err != nil {
				t.Fatal(err)
			}
			if g, w := readingStrings(got), readingStrings(wantNewest); !slices.Equal(g, w) {
				t.Fatalf("NewestReadingsBetween(%d, %d, %d) =\n\t%v\nwant\n\t%v", tt.from, tt.to, tt.limit, g, w)
			}
		})
	}
	t.Run("Paging", func(t *testing.T) {
		var all []store.Reading
		from := int64(0)
		for pages := 0; ; pages++ {
			if pages > len(rs) {
				t.Fatal("paging did not end")
			}
			page, err := st.ReadingsBetween(ctx, m.ID, from, math.MaxInt64, 2)
			if err != nil {
				t.Fatal(err)
			}
			if len(page) > 2 {
				t.Fatalf("page of %d, limit 2", len(page))
			}
			if len(page) == 0 {
				break
			}
			all = append(all, page...)
			from = page[len(page)-1].Timestamp + 1
		}
		if g, w := readingStrings(all), readingStrings(rs); !slices.Equal(g, w) {
			t.Fatalf("pages of 2 =\n\t%v\nwant\n\t%v", g, w)
		}
	})
	t.Run("UnknownMeter", func(t *testing.T) {
		got, err := st.ReadingsBetween(ctx, -1, 0, math.MaxInt64, 10)
		if err != nil || len(got) != 0 {
			t.Fatalf("ReadingsBetween(unknown meter) = %v, %v; want none", readingStrings(got), err)
		}
	})
}

func testRegisterSeries(t *testing.T, st *store.Store) {
	ctx := context.Background()
	const t0 = 1764141000000
	m, other := newMeter(t, st, "series"), newMeter(t, st, "series-other")
	// m has readings at t0+10s, 20s, …, 50s; other has its own around them.
	at := func(s int64) crypto.Reading { return crypto.Reading{Timestamp: t0 + s*1000, WhIn: 10 * s, WhOut: s} }
	var stored []store.Reading
	for s := int64(10); s <= 50; s += 10 {
		r := at(s)
		stored = append(stored, reading(m.ID, r.Timestamp, r.WhIn, r.WhOut))
	}
	storeReadings(t, st, stored[4], stored[0], stored[2], stored[1], stored[3])
	storeReadings(t, st, reading(other.ID, t0+5000, 1, 0), reading(other.ID, t0+25000, 2, 0), reading(other.ID, t0+55000, 3, 0))

	tests := []struct {
		name     string
		from, to int64 // seconds after t0
		want     []int64
	}{
		{"Inside", 25, 35, []int64{20, 30, 40}},
		{"BoundsInclusive", 20, 40, []int64{10, 20, 30, 40, 50}},
		{"JustInsideBounds", 19, 41, []int64{10, 20, 30, 40, 50}},
		{"NothingInside", 31, 39, []int64{30, 40}},
		{"Instant", 30, 30, []int64{20, 30, 40}},
		{"InstantBetween", 35, 35, []int64{30, 40}},
		{"BeforeAll", 0, 5, []int64{10}},
		{"ToAtFirst", 0, 10, []int64{10, 20}},
		{"AfterAll", 60, 70, []int64{50}},
		{"FromAtLast", 50, 70, []int64{40, 50}},
		{"Covering", 0, 100, []int64{10, 20, 30, 40, 50}},
		{"FromFirstToLast", 10, 50, []int64{10, 20, 30, 40, 50}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := st.RegisterSeries(ctx, m.ID, t0+tt.from*1000, t0+tt.to*1000)
			if err != nil {
				t.Fatal(err)
			}
			want := make([]crypto.Reading, len(tt.want))
			for i, s := range tt.want {
				want[i] = at(s)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("RegisterSeries([t0+%ds, t0+%ds]) =\n\t%+v\nwant\n\t%+v", tt.from, tt.to, got, want)
			}
		})
	}
	t.Run("NoReadings", func(t *testing.T) {
		silent := newMeter(t, st, "series-silent")
		got, err := st.RegisterSeries(ctx, silent.ID, 0, math.MaxInt64)
		if err != nil || len(got) != 0 {
			t.Fatalf("RegisterSeries(meter without readings) = %+v, %v; want none", got, err)
		}
	})
}

// testRegistersAround checks that the readings RegistersAround gives for
// a set of edges apportion exactly as every reading in the window does,
// for random series and random edges, some on readings, some before the
// first or after the last.
func testRegistersAround(t *testing.T, st *store.Store) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(9, 10))
	const t0 = 1764141000000
	for round := range 4 {
		m := newMeter(t, st, fmt.Sprintf("around-%d", round))
		var rs []store.Reading
		ts, in := int64(t0), int64(0)
		for range 200 {
			ts += 1 + rng.Int64N(600_000)
			in += rng.Int64N(1000)
			rs = append(rs, reading(m.ID, ts, in, in/10))
		}
		if _, err := st.InsertReadings(ctx, rs); err != nil {
			t.Fatal(err)
		}
		for range 20 {
			var edges []time.Time
			e := int64(t0) - 3_600_000 + rng.Int64N(7_200_000)
			for range 1 + rng.IntN(40) {
				if rng.IntN(5) == 0 {
					e = rs[rng.IntN(len(rs))].Timestamp // an edge on a reading
				}
				if len(edges) > 0 && e <= edges[len(edges)-1].UnixMilli() {
					e = edges[len(edges)-1].UnixMilli() + 1
				}
				edges = append(edges, time.UnixMilli(e))
				e += rng.Int64N(20_000_000)
			}
			ms := make([]int64, len(edges))
			for i, e := range edges {
				ms[i] = e.UnixMilli()
			}
			around, err := st.RegistersAround(ctx, m.ID, ms)
			if err != nil {
				t.Fatal(err)
			}
			all, err := st.RegisterSeries(ctx, m.ID, ms[0], ms[len(ms)-1])
			if err != nil {
				t.Fatal(err)
			}
			if len(around) > 2*len(edges) {
				t.Fatalf("%d readings around %d edges", len(around), len(edges))
			}
			if got, want := energy.ApportionEdges(around, edges), energy.ApportionEdges(all, edges); !slices.Equal(got, want) {
				t.Fatalf("round %d: the readings around the edges apportion to %v, every reading to %v", round, got, want)
			}
		}
	}
}
