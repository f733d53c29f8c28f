package store_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"smartmeters/crypto"
	"smartmeters/store"
	"smartmeters/store/energy"
)

// testRollups is the rollups' property test: random series of a few
// meters, with gaps of seconds to more than a day, registers from small to
// near 2^63-1 and jumps across most of that, arrive in random order and
// random batches, with resends; the follower runs now and then. At every
// check the fleet's energy read from the rollups and the queue equals the
// energy computed from the stored readings, exactly, for buckets of the
// grid, of hours, and of uneven widths (days of a time zone); before the
// follower catches up, after, and after rebuilds.
func testRollups(t *testing.T, st *store.Store) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(14, 14))
	// An era of its own, so that the fleet's buckets hold only this
	// test's readings.
	from := time.Date(2090, 3, 25, 0, 0, 0, 0, time.UTC)
	series := map[int64][]crypto.Reading{}
	var pending []store.Reading
	for i := range 5 {
		m := newMeter(t, st, fmt.Sprintf("rollup-%d", i))
		rs := rollupSeries(rng, from, i)
		series[m.ID] = nil
		for _, r := range rs {
			pending = append(pending, reading(m.ID, r.Timestamp, r.WhIn, r.WhOut))
		}
	}
	rng.Shuffle(len(pending), func(i, j int) { pending[i], pending[j] = pending[j], pending[i] })

	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	edgeSets := map[string][]int64{
		"grid":   evenEdges(from.Add(-2*time.Hour), energy.Grid, 12*24*4+48),
		"hours":  evenEdges(from.Add(-2*time.Hour), time.Hour, 24*4+4),
		"berlin": localDays(from.In(berlin), 5), // Sunday 2090-03-26 has 23 hours there
	}
	check := func(when string) {
		t.Helper()
		for name, edges := range edgeSets {
			got, err := st.FleetEnergy(ctx, edges)
			if err != nil {
				t.Fatalf("%s: FleetEnergy(%s): %v", when, name, err)
			}
			want := rawFleet(series, edges)
			if !slices.Equal(got, want) {
				for k := range want {
					if got[k] != want[k] {
						t.Fatalf("%s: %s bucket %d from %s: rollups give %v, the readings %v",
							when, name, k, time.UnixMilli(edges[k]).UTC(), got[k], want[k])
					}
				}
			}
		}
	}

	var sent []store.Reading
	batches, followed := 0, 0
	for len(pending) > 0 {
		n := min(1+rng.IntN(6), len(pending))
		batch := slices.Clone(pending[:n])
		pending = pending[n:]
		if len(sent) > 0 && rng.IntN(4) == 0 {
			batch = append(batch, sent[rng.IntN(len(sent))]) // a resend
		}
		out, err := st.InsertReadings(ctx, batch)
		if err != nil {
			t.Fatal(err)
		}
		for i, o := range out {
			r := batch[i]
			switch o {
			case store.Stored:
				s := series[r.MeterID]
				at, _ := slices.BinarySearchFunc(s, r.Timestamp, func(a crypto.Reading, t int64) int { return cmp.Compare(a.Timestamp, t) })
				series[r.MeterID] = slices.Insert(s, at, r.Reading)
				sent = append(sent, r)
			case store.Duplicate:
			default:
				t.Fatalf("reading %s: %s; a series in time order fits wherever it lands", readingString(r), o)
			}
		}
		batches++
		if rng.IntN(3) == 0 {
			if _, err := st.FollowRollups(ctx); err != nil {
				t.Fatal(err)
			}
			followed++
		}
		if batches%25 == 0 {
			check(fmt.Sprintf("after %d batches", batches))
		}
	}
	check("all stored")
	for {
		n, err := st.FollowRollups(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
	}
	check("all rolled up")
	t.Logf("%d readings stored in %d batches; the follower ran %d times between them", len(sent), batches, followed)

	res, err := st.RebuildRollups(ctx, time.Time{}, time.Time{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Readings < int64(len(sent)) || res.Buckets == 0 {
		t.Fatalf("RebuildRollups read %d readings into %d buckets; %d are stored", res.Readings, res.Buckets, len(sent))
	}
	check("rebuilt")
	if built, err := st.RollupsBuilt(ctx); err != nil || !built {
		t.Fatalf("RollupsBuilt = %v, %v after a full rebuild", built, err)
	}
	if _, err := st.RebuildRollups(ctx, from.Add(13*time.Hour+7*time.Minute), from.Add(50*time.Hour), nil); err != nil {
		t.Fatal(err)
	}
	check("rebuilt in part")

	// Readings queued just outside a range being rebuilt, the follower not
	// yet at them: the segments at its edges start and end at the
	// rolled-up readings further out.
	a, b := from.Add(30*time.Hour), from.Add(60*time.Hour)
	var outside []store.Reading
	for id, s := range series {
		for _, edge := range []int64{a.UnixMilli() - 1, b.UnixMilli()} {
			// p is the last reading at or before edge, q the first after.
			i, _ := slices.BinarySearchFunc(s, edge+1, func(r crypto.Reading, t int64) int { return cmp.Compare(r.Timestamp, t) })
			if i == 0 || i == len(s) {
				continue
			}
			p, q := s[i-1], s[i]
			lo, hi := max(p.Timestamp, edge)+1, q.Timestamp // x in [lo, hi), beyond the edge seen from the range
			if edge < b.UnixMilli() {
				lo, hi = p.Timestamp+1, min(q.Timestamp, edge+1)
			}
			if lo >= hi {
				continue
			}
			x := lo + (hi-lo)/2
			outside = append(outside, reading(id, x, p.WhIn+(q.WhIn-p.WhIn)/4, p.WhOut+(q.WhOut-p.WhOut)/4))
		}
	}
	if len(outside) < 3 {
		t.Fatalf("%d readings fit just outside the range; the series give too few", len(outside))
	}
	storeReadings(t, st, outside...)
	for _, r := range outside {
		at, _ := slices.BinarySearchFunc(series[r.MeterID], r.Timestamp, func(a crypto.Reading, t int64) int { return cmp.Compare(a.Timestamp, t) })
		series[r.MeterID] = slices.Insert(series[r.MeterID], at, r.Reading)
	}
	if _, err := st.RebuildRollups(ctx, a, b, nil); err != nil {
		t.Fatal(err)
	}
	check("rebuilt in part with readings queued at its edges")
	if _, err := st.FollowRollups(ctx); err != nil {
		t.Fatal(err)
	}
	check("those readings rolled up")

	// A late reading between two rolled-up ones, and one across a long
	// segment, with the follower behind and then caught up.
	var id int64
	for m, s := range series {
		if id == 0 || len(s) > len(series[id]) {
			id = m
		}
	}
	s := series[id]
	var late []store.Reading
	for i := 1; i < len(s) && len(late) < 3; i++ {
		if s[i].Timestamp-s[i-1].Timestamp > 2 {
			mid := s[i-1].Timestamp + (s[i].Timestamp-s[i-1].Timestamp)/2
			late = append(late, reading(id, mid, s[i-1].WhIn+(s[i].WhIn-s[i-1].WhIn)/3, s[i-1].WhOut))
			i += len(s) / 4
		}
	}
	storeReadings(t, st, late...)
	for _, r := range late {
		at, _ := slices.BinarySearchFunc(series[id], r.Timestamp, func(a crypto.Reading, t int64) int { return cmp.Compare(a.Timestamp, t) })
		series[id] = slices.Insert(series[id], at, r.Reading)
	}
	check("late readings queued")
	if _, err := st.FollowRollups(ctx); err != nil {
		t.Fatal(err)
	}
	check("late readings rolled up")
}

// rollupSeries returns the readings of meter i of testRollups, in time
// order, over about four days from from.
func rollupSeries(rng *rand.Rand, from time.Time, i int) []crypto.Reading {
	t := from.UnixMilli() - rng.Int64N(int64(3*time.Hour/time.Millisecond))
	end := from.Add(96 * time.Hour).UnixMilli()
	var in, out int64
	if i%2 == 1 {
		in, out = math.MaxInt64-1<<50, math.MaxInt64-1<<45
	}
	var rs []crypto.Reading
	for t < end && len(rs) < 120 {
		rs = append(rs, crypto.Reading{Timestamp: t, WhIn: in, WhOut: out})
		switch rng.IntN(30) {
		case 0: // silent for more than a day: a long segment
			t += int64(25*time.Hour/time.Millisecond) + rng.Int64N(int64(5*time.Hour/time.Millisecond))
		case 1, 2:
			t += 1 + rng.Int64N(1000)
		default:
			t += 1 + rng.Int64N(int64(40*time.Minute/time.Millisecond))
		}
		step := rng.Int64N(1 << 20)
		if rng.IntN(40) == 0 {
			step = (math.MaxInt64 - in) / 2 // most of what is left: sums pass 2^63
		}
		in += min(step, math.MaxInt64-in)
		out += min(rng.Int64N(1<<12), math.MaxInt64-out)
	}
	return rs
}

// rawFleet is the fleet's energy between consecutive edges computed from
// the readings alone, in exact integers: every segment between
// consecutive readings of a meter gives each bucket the rise of its
// registers, taken linearly and rounded down, across the part inside.
func rawFleet(series map[int64][]crypto.Reading, edges []int64) [][2]int64 {
	sums := make([][2]*big.Int, len(edges)-1)
	for k := range sums {
		sums[k] = [2]*big.Int{new(big.Int), new(big.Int)}
	}
	for _, rs := range series {
		for i := 1; i < len(rs); i++ {
			p, r := rs[i-1], rs[i]
			for k := range sums {
				lo, hi := max(p.Timestamp, edges[k]), min(r.Timestamp, edges[k+1])
				if hi <= lo {
					continue
				}
				sums[k][0].Add(sums[k][0], big.NewInt(energy.Interpolate(p.Timestamp, p.WhIn, r.Timestamp, r.WhIn, hi)-energy.Interpolate(p.Timestamp, p.WhIn, r.Timestamp, r.WhIn, lo)))
				sums[k][1].Add(sums[k][1], big.NewInt(energy.Interpolate(p.Timestamp, p.WhOut, r.Timestamp, r.WhOut, hi)-energy.Interpolate(p.Timestamp, p.WhOut, r.Timestamp, r.WhOut, lo)))
			}
		}
	}
	out := make([][2]int64, len(sums))
	limit := big.NewInt(math.MaxInt64)
	for k, s := range sums {
		for j := range 2 {
			if s[j].Cmp(limit) > 0 {
				out[k][j] = math.MaxInt64
			} else {
				out[k][j] = s[j].Int64()
			}
		}
	}
	return out
}

func evenEdges(from time.Time, b time.Duration, n int) []int64 {
	edges := make([]int64, n+1)
	for i := range edges {
		edges[i] = from.Add(time.Duration(i) * b).UnixMilli()
	}
	return edges
}

// localDays returns the edges of n days of the location of from, from
// its midnight.
func localDays(from time.Time, n int) []int64 {
	d := time.Date(from.Year(), from.Month(), from.Day(), 0, 0, 0, 0, from.Location())
	edges := make([]int64, n+1)
	for i := range edges {
		edges[i] = d.AddDate(0, 0, i).UnixMilli()
	}
	return edges
}

// testRollupsConcurrent stores random series from several goroutines at
// once while two followers (two stores on the database, as two servers
// would be) roll up and a rebuild runs: no follower fails, a second
// rebuild while one runs is refused, and once all is rolled up the fleet's
// energy equals the computation from the readings.
func testRollupsConcurrent(t *testing.T, st *store.Store, other *store.Store) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(15, 15))
	from := time.Date(2091, 6, 1, 0, 0, 0, 0, time.UTC)
	series := map[int64][]crypto.Reading{}
	batches := map[int64][][]store.Reading{}
	for i := range 4 {
		m := newMeter(t, st, fmt.Sprintf("rollup-concurrent-%d", i))
		rs := rollupSeries(rng, from, i)
		series[m.ID] = rs
		pending := make([]store.Reading, len(rs))
		for j, r := range rs {
			pending[j] = reading(m.ID, r.Timestamp, r.WhIn, r.WhOut)
		}
		rng.Shuffle(len(pending), func(i, j int) { pending[i], pending[j] = pending[j], pending[i] })
		for len(pending) > 0 {
			n := min(1+rng.IntN(5), len(pending))
			batches[m.ID] = append(batches[m.ID], pending[:n])
			pending = pending[n:]
		}
	}
	ingestDone := make(chan struct{})
	errs := make(chan error, 16)
	var ingest, follow sync.WaitGroup
	for _, bs := range batches {
		ingest.Go(func() {
			for _, b := range bs {
				out, err := st.InsertReadings(ctx, b)
				if err != nil {
					errs <- err
					return
				}
				for i, o := range out {
					if o != store.Stored {
						errs <- fmt.Errorf("reading %s: %s", readingString(b[i]), o)
					}
				}
			}
		})
	}
	for _, s := range []*store.Store{st, other} {
		follow.Go(func() {
			for {
				select {
				case <-ingestDone:
					return
				default:
				}
				if _, err := s.FollowRollups(ctx); err != nil {
					errs <- fmt.Errorf("follower: %w", err)
					return
				}
			}
		})
	}
	follow.Go(func() {
		progress := func(store.RebuildProgress) {
			// While this rebuild holds the lease, another is refused.
			if _, err := other.RebuildRollups(ctx, from, from.Add(time.Hour), nil); !errors.Is(err, store.ErrRebuildRunning) {
				errs <- fmt.Errorf("a second rebuild during the first: %v, want %v", err, store.ErrRebuildRunning)
			}
		}
		if _, err := st.RebuildRollups(ctx, from.Add(-time.Hour), from.Add(100*time.Hour), progress); err != nil {
			errs <- fmt.Errorf("rebuild: %w", err)
		}
	})
	ingest.Wait()
	close(ingestDone)
	follow.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for {
		n, err := other.FollowRollups(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
	}
	edges := evenEdges(from.Add(-3*time.Hour), time.Hour, 24*5)
	got, err := st.FleetEnergy(ctx, edges)
	if err != nil {
		t.Fatal(err)
	}
	if want := rawFleet(series, edges); !slices.Equal(got, want) {
		t.Fatalf("after concurrent ingest, follow and rebuild: rollups give %v, the readings %v", got, want)
	}
}
