package store_test

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"smartmeters/crypto"
	"smartmeters/store"
)

// model is the meaning of InsertReadings for one meter's readings, kept in
// memory: each reading decided in turn against the readings stored so far.
type model map[int64][]crypto.Reading // by meter, in timestamp order

func (m model) decide(r store.Reading) store.Outcome {
	rs := m[r.MeterID]
	i, found := slices.BinarySearchFunc(rs, r.Timestamp, func(x crypto.Reading, t int64) int {
		return cmp.Compare(x.Timestamp, t)
	})
	if found {
		if rs[i] == r.Reading {
			return store.Duplicate
		}
		return store.Conflict
	}
	if i > 0 && (r.WhIn < rs[i-1].WhIn || r.WhOut < rs[i-1].WhOut) {
		return store.Decreased
	}
	if i < len(rs) && (r.WhIn > rs[i].WhIn || r.WhOut > rs[i].WhOut) {
		return store.Decreased
	}
	m[r.MeterID] = slices.Insert(rs, i, r.Reading)
	return store.Stored
}

// testInsertReadingsModel stores random batches, of one meter or many,
// in order (a meter's buffer) and out of order, with readings repeated,
// conflicting and decreasing, within a batch and against what is stored, spread
// over half a year with gaps of weeks (so that neighbours lie in other
// partitions), and checks every outcome against the model, and what is
// stored against what the model kept.
func testInsertReadingsModel(t *testing.T, st *store.Store) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(3, 4))
	var ids []int64
	for i := range 12 {
		ids = append(ids, newMeter(t, st, fmt.Sprintf("model-%d", i)).ID)
	}
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	span := int64(180 * 24 * time.Hour / time.Millisecond)
	// A small set of instants per meter, so that readings meet.
	instants := func() int64 {
		return start + rng.Int64N(40)*(span/40)
	}
	m := model{}
	seen := map[store.Outcome]int{}
	var sent []store.Reading
	send := func(round int, batch []store.Reading) {
		t.Helper()
		sent = append(sent, batch...)
		got, err := st.InsertReadings(ctx, batch)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		for j, r := range batch {
			seen[got[j]]++
			if want := m.decide(r); got[j] != want {
				t.Fatalf("round %d reading %d (meter %d at %d, %d/%d): %s, the model says %s",
					round, j, r.MeterID, r.Timestamp, r.WhIn, r.WhOut, got[j], want)
			}
		}
	}
	// A meter's own buffer, sent in order: readings after everything the
	// meter has stored (the common batch, all of it stored), now and then
	// with one reading that breaks the order within the batch.
	next := map[int64]int64{}
	buffer := func(id int64, n int) []store.Reading {
		if next[id] == 0 {
			next[id] = start + span
		}
		rs := make([]store.Reading, n)
		for j := range rs {
			next[id] += 1000
			t := next[id]
			rs[j] = reading(id, t, (t-start)/1000, (t-start)/10000)
		}
		switch rng.IntN(5) {
		case 0: // a register that goes down within the batch
			rs[rng.IntN(n)].WhIn -= 5000
		case 1:
			rs[rng.IntN(n)].WhOut -= 500
		case 2: // two readings at one instant
			j := rng.IntN(n)
			rs[j].Timestamp = rs[(j+1)%n].Timestamp
		}
		return rs
	}
	for round := range 120 {
		if round%4 == 1 {
			var batch []store.Reading
			for range 1 + rng.IntN(3) {
				batch = append(batch, buffer(ids[rng.IntN(len(ids))], 2+rng.IntN(8))...)
			}
			rng.Shuffle(len(batch)/2, func(i, j int) { // interleave a little
				batch[i], batch[j] = batch[j], batch[i]
			})
			send(round, batch)
			continue
		}
		n := 1 + rng.IntN(24)
		batch := make([]store.Reading, n)
		for j := range batch {
			id := ids[rng.IntN(len(ids))]
			if round%3 == 0 {
				id = ids[j%len(ids)] // each meter once, as a group commit of single reports
			}
			ts := instants()
			// Registers grow with time, give or take, so that some
			// readings fit between their neighbours and some do not.
			step := (ts - start) / (span / 40)
			batch[j] = reading(id, ts, step*100+rng.Int64N(150), step*10+rng.Int64N(15))
			if len(sent) > 0 && rng.IntN(5) == 0 {
				batch[j] = sent[rng.IntN(len(sent))] // a resend
			}
		}
		send(round, batch)
	}
	for _, o := range []store.Outcome{store.Stored, store.Duplicate, store.Conflict, store.Decreased} {
		if seen[o] == 0 {
			t.Errorf("no reading was %s: the batches do not test it", o)
		}
	}
	t.Logf("outcomes: %v", seen)
	for _, id := range ids {
		rs, err := st.ReadingsBetween(ctx, id, 0, 1<<62, 10_000)
		if err != nil {
			t.Fatal(err)
		}
		stored := make([]crypto.Reading, len(rs))
		for i, r := range rs {
			stored[i] = r.Reading
		}
		if !slices.Equal(stored, m[id]) {
			t.Fatalf("meter %d stores %v, the model %v", id, stored, m[id])
		}
	}
}
