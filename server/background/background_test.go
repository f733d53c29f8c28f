package background_test

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"smartmeters/crypto"
	"smartmeters/server/background"
	"smartmeters/store"
)

var logger = slog.New(slog.NewTextHandler(io.Discard, nil))

// fakeListener is a KeyChangeListener whose changes the test sends.
type fakeListener struct{ c chan store.KeyChange }

func (l fakeListener) Changes() <-chan store.KeyChange { return l.c }
func (l fakeListener) Ping() error                     { return nil }

// fakeCache records what it is told.
type fakeCache struct {
	mu        sync.Mutex
	forgotten []crypto.Fingerprint
	bypass    []bool
}

func (c *fakeCache) Forget(fp crypto.Fingerprint) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.forgotten = append(c.forgotten, fp)
}

func (c *fakeCache) SetBypass(on bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.bypass = append(c.bypass, on)
}

func (c *fakeCache) state() ([]crypto.Fingerprint, []bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.forgotten), slices.Clone(c.bypass)
}

type noChanges struct{}

func (noChanges) KeysChangedSince(context.Context, time.Time) ([]crypto.Fingerprint, error) {
	return nil, nil
}

// TestKeyChanges sends a change, a disconnection and a reconnection, and
// checks what the cache is told: the fingerprints forgotten, the cache
// bypassed while changes may be missed, and back in use after.
func TestKeyChanges(t *testing.T) {
	l := fakeListener{make(chan store.KeyChange)}
	cache := &fakeCache{}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- background.KeyChanges{Listener: l, Store: noChanges{}, Cache: cache, Resync: time.Hour, Logger: logger}.Run(ctx)
	}()
	a, b := crypto.Fingerprint{1}, crypto.Fingerprint{2}
	// Each send returns once Run has taken the change; the next send
	// returns once Run has handled it.
	l.c <- store.KeyChange{Fingerprints: []crypto.Fingerprint{a, b}}
	l.c <- store.KeyChange{Down: true}
	l.c <- store.KeyChange{Up: true}
	l.c <- store.KeyChange{}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	forgotten, bypass := cache.state()
	if !slices.Equal(forgotten, []crypto.Fingerprint{a, b}) {
		t.Errorf("forgotten %v, want %v", forgotten, []crypto.Fingerprint{a, b})
	}
	if !slices.Equal(bypass, []bool{true, false}) {
		t.Errorf("bypass set to %v, want [true false]", bypass)
	}
}

// fakePartitions records the calls of partition maintenance.
type fakePartitions struct {
	ensured [][2]time.Time
	horizon []time.Time
}

func (f *fakePartitions) EnsurePartitions(_ context.Context, from, to time.Time) ([]store.Partition, error) {
	f.ensured = append(f.ensured, [2]time.Time{from, to})
	return nil, nil
}

func (f *fakePartitions) DropPartitionsBefore(_ context.Context, horizon time.Time) ([]store.Partition, int64, error) {
	f.horizon = append(f.horizon, horizon)
	return nil, 0, nil
}

func TestPartitionsCheck(t *testing.T) {
	now := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		name      string
		retention time.Duration
		horizons  int
	}{
		{"KeepAll", 0, 0},
		{"Retention", 30 * 24 * time.Hour, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakePartitions{}
			p := background.Partitions{Store: f, Ahead: 62 * 24 * time.Hour, Retention: tt.retention, Every: time.Hour,
				Now: func() time.Time { return now }, Logger: logger}
			p.Check(t.Context())
			if len(f.ensured) != 1 || !f.ensured[0][0].Equal(now) || !f.ensured[0][1].Equal(now.Add(62*24*time.Hour)) {
				t.Errorf("EnsurePartitions calls %v, want one from now to 62 days ahead", f.ensured)
			}
			if len(f.horizon) != tt.horizons || (tt.horizons == 1 && !f.horizon[0].Equal(now.Add(-tt.retention))) {
				t.Errorf("DropPartitionsBefore calls %v, want %d at now minus the retention", f.horizon, tt.horizons)
			}
		})
	}
}

// fakeRollups counts the follower's calls and records the horizons it is
// asked to drop rollups before.
type fakeRollups struct {
	mu       sync.Mutex
	follows  int
	horizons []time.Time
}

func (f *fakeRollups) FollowRollups(context.Context) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.follows++
	return 1, nil
}

func (f *fakeRollups) DropRollupsBefore(_ context.Context, h time.Time) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.horizons = append(f.horizons, h)
	return 0, nil
}

// TestRollups runs the rollup follower for a while: it rolls up every
// Every, and drops rollups older than Retention, measured from its clock,
// once an hour (here once, the clock standing still).
func TestRollups(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	for _, retention := range []time.Duration{0, 30 * 24 * time.Hour} {
		f := &fakeRollups{}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() {
			done <- background.Rollups{Store: f, Every: 5 * time.Millisecond, Retention: retention, Now: func() time.Time { return now }, Logger: logger}.Run(ctx)
		}()
		time.Sleep(100 * time.Millisecond)
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run returned %v", err)
		}
		f.mu.Lock()
		if f.follows < 3 {
			t.Errorf("retention %s: the follower ran %d times in 100 ms every 5 ms", retention, f.follows)
		}
		var want []time.Time
		if retention > 0 {
			want = []time.Time{now.Add(-retention)}
		}
		if !slices.Equal(f.horizons, want) {
			t.Errorf("retention %s: rollups dropped before %v, want %v", retention, f.horizons, want)
		}
		f.mu.Unlock()
	}
}
