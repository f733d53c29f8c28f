package store_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math"
	"testing"
	"time"

	"smartmeters/crypto"
	"smartmeters/db/dbtest"
	"smartmeters/store"
)

// TestConformance runs one suite against every store backend.
func TestConformance(t *testing.T) {
	for _, b := range dbtest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			conn := b.OpenMigrated(t)
			st := store.New(conn)
			t.Run("Ping", func(t *testing.T) { testPing(t, st) })
			t.Run("Meters", func(t *testing.T) { testMeters(t, st) })
			t.Run("InsertReadings", func(t *testing.T) { testInsertReadings(t, st) })
			t.Run("InsertReadingsBatch", func(t *testing.T) { testInsertReadingsBatch(t, st) })
			t.Run("InsertReadingsCumulative", func(t *testing.T) { testInsertReadingsCumulative(t, st) })
			t.Run("InsertReadingsModel", func(t *testing.T) { testInsertReadingsModel(t, st) })
			t.Run("InsertReadingsAtomic", func(t *testing.T) { testInsertReadingsAtomic(t, st) })
			t.Run("ReceivedAfterKey", func(t *testing.T) { testReceivedAfterKey(t, st) })
			t.Run("ReadingsBetween", func(t *testing.T) { testReadingsBetween(t, st) })
			t.Run("RegisterSeries", func(t *testing.T) { testRegisterSeries(t, st) })
			t.Run("RegistersAround", func(t *testing.T) { testRegistersAround(t, st) })
			t.Run("EachRegisterBetween", func(t *testing.T) { testEachRegisterBetween(t, st) })
			t.Run("Rollups", func(t *testing.T) { testRollups(t, st) })
			t.Run("RollupsConcurrent", func(t *testing.T) { testRollupsConcurrent(t, st, store.New(conn)) })
			t.Run("RevokeKey", func(t *testing.T) { testRevokeKey(t, st) })
			t.Run("ReplaceKey", func(t *testing.T) { testReplaceKey(t, st) })
			t.Run("KeysChangedSince", func(t *testing.T) { testKeysChangedSince(t, st) })
			t.Run("ListenKeyChanges", func(t *testing.T) { testListenKeyChanges(t, st, b, conn) })
			t.Run("ListMeters", func(t *testing.T) { testListMeters(t, st) })
			t.Run("MeterSummaryByID", func(t *testing.T) { testMeterSummaryByID(t, st) })
			t.Run("CountMeters", func(t *testing.T) { testCountMeters(t, st) })
			t.Run("CountReportingMeters", func(t *testing.T) { testCountReportingMeters(t, st) })
			t.Run("MeterActivity", func(t *testing.T) { testMeterActivity(t, st) })
			t.Run("EnsureServerKey", func(t *testing.T) { testEnsureServerKey(t, st) })
			t.Run("PartitionMaintenance", func(t *testing.T) { testPartitionMaintenance(t, st, b.Driver()) })
		})
	}
}

var registeredAt = time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC)

func newMeter(t testing.TB, st *store.Store, username string) store.Meter {
	t.Helper()
	m := newMeterValue(t, username)
	if err := st.CreateMeter(context.Background(), &m); err != nil {
		t.Fatalf("CreateMeter(%s): %v", username, err)
	}
	return m
}

func testMeters(t *testing.T, st *store.Store) {
	ctx := context.Background()
	m := newMeter(t, st, "alice")
	if m.ID == 0 {
		t.Fatal("CreateMeter left ID zero")
	}
	t.Run("ByFingerprint", func(t *testing.T) {
		got, err := st.MeterByFingerprint(ctx, m.Fingerprint)
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != m.ID || got.Username != "alice" || string(got.PublicKey) != string(m.PublicKey) ||
			got.Fingerprint != m.Fingerprint || got.Algorithm != "ed25519" || !got.RegisteredAt.Equal(registeredAt) {
			t.Fatalf("MeterByFingerprint = %+v, want %+v", got, m)
		}
	})
	t.Run("ByID", func(t *testing.T) {
		got, err := st.MeterByID(ctx, m.ID)
		if err != nil || got.Fingerprint != m.Fingerprint {
			t.Fatalf("MeterByID = %+v, %v", got, err)
		}
	})
	t.Run("ErrNotFound", func(t *testing.T) {
		if _, err := st.MeterByFingerprint(ctx, crypto.Fingerprint{1}); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unknown fingerprint: err = %v, want ErrNotFound", err)
		}
		if _, err := st.MeterByID(ctx, -1); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unknown id: err = %v, want ErrNotFound", err)
		}
	})
	t.Run("ErrUsernameTaken", func(t *testing.T) {
		dup := newMeterValue(t, "alice")
		err := st.CreateMeter(ctx, &dup)
		if !errors.Is(err, store.ErrUsernameTaken) || !errors.Is(err, store.ErrConflict) {
			t.Fatalf("same username: err = %v, want ErrUsernameTaken", err)
		}
	})
	t.Run("ErrKeyTaken", func(t *testing.T) {
		dup := m
		dup.Username = "bob"
		err := st.CreateMeter(ctx, &dup)
		if !errors.Is(err, store.ErrKeyTaken) || !errors.Is(err, store.ErrConflict) {
			t.Fatalf("same key: err = %v, want ErrKeyTaken", err)
		}
	})
}

func newMeterValue(t testing.TB, username string) store.Meter {
	t.Helper()
	k, err := crypto.GenerateKey("ed25519", rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return store.Meter{Username: username, PublicKey: k.Public().DER(), Fingerprint: k.Public().Fingerprint(),
		Algorithm: k.Public().Algorithm(), RegisteredAt: registeredAt}
}

// reading returns a reading of meter meterID signed by its first key and
// received a second after the meters of these tests are registered.
func reading(meterID, ts, in, out int64) store.Reading {
	return store.Reading{
		MeterID:    meterID,
		KeySeq:     1,
		Reading:    crypto.Reading{WhIn: in, WhOut: out, Timestamp: ts},
		Signature:  []byte(fmt.Sprintf("sig-%d-%d-%d", ts, in, out)),
		ReceivedAt: registeredAt.Add(time.Second),
	}
}

func testInsertReadings(t *testing.T, st *store.Store) {
	ctx := context.Background()
	m := newMeter(t, st, "carol")
	base := reading(m.ID, 1764141243123, 1000, 10)
	tests := []struct {
		name string
		in   store.Reading
		want store.Outcome
	}{
		{"Stored", base, store.Stored},
		{"Duplicate", base, store.Duplicate},
		{"DuplicateOtherSignature", func() store.Reading { r := base; r.Signature = []byte("resigned"); return r }(), store.Duplicate},
		{"ConflictWhIn", reading(m.ID, base.Timestamp, 1001, 10), store.Conflict},
		{"ConflictWhOut", reading(m.ID, base.Timestamp, 1000, 11), store.Conflict},
		{"StoredNextTimestamp", reading(m.ID, base.Timestamp+5000, 1003, 10), store.Stored},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := st.InsertReadings(ctx, []store.Reading{tt.in})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || got[0] != tt.want {
				t.Fatalf("InsertReadings = %v, want [%v]", got, tt.want)
			}
		})
	}
	rs, err := st.ReadingsBetween(ctx, m.ID, 0, math.MaxInt64, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 2 {
		t.Fatalf("stored %d readings, want 2: %+v", len(rs), rs)
	}
	if rs[0].Reading != base.Reading || string(rs[0].Signature) != string(base.Signature) || !rs[0].ReceivedAt.Equal(base.ReceivedAt) {
		t.Errorf("stored %+v, want %+v", rs[0], base)
	}
	if rs[1].Timestamp != base.Timestamp+5000 {
		t.Errorf("second reading at %d, want %d", rs[1].Timestamp, base.Timestamp+5000)
	}
}

func testInsertReadingsBatch(t *testing.T, st *store.Store) {
	ctx := context.Background()
	m1, m2 := newMeter(t, st, "dave"), newMeter(t, st, "erin")
	const ts = 1764141000000
	if _, err := st.InsertReadings(ctx, []store.Reading{reading(m1.ID, ts, 5, 0)}); err != nil {
		t.Fatal(err)
	}
	batch := []store.Reading{
		reading(m1.ID, ts, 5, 0),      // already stored, identical
		reading(m1.ID, ts, 6, 0),      // already stored, different
		reading(m2.ID, ts, 7, 1),      // new
		reading(m2.ID, ts, 7, 1),      // repeat of the previous, in the same batch
		reading(m2.ID, ts, 8, 1),      // contradicts the previous, in the same batch
		reading(m1.ID, ts+1000, 9, 0), // new
	}
	want := []store.Outcome{store.Duplicate, store.Conflict, store.Stored, store.Duplicate, store.Conflict, store.Stored}
	got, err := st.InsertReadings(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("InsertReadings = %v, want %v", got, want)
	}

	// A large batch in one statement, all new, then all again.
	big := make([]store.Reading, 1000)
	for i := range big {
		big[i] = reading(m2.ID, ts+int64(i+1)*1000, int64(100+i), 1)
	}
	for _, want := range []store.Outcome{store.Stored, store.Duplicate} {
		got, err := st.InsertReadings(ctx, big)
		if err != nil {
			t.Fatal(err)
		}
		for i, o := range got {
			if o != want {
				t.Fatalf("big batch reading %d: %v, want %v", i, o, want)
			}
		}
	}
	for _, c := range []struct {
		m    store.Meter
		want int
	}{{m1, 2}, {m2, 1 + len(big)}} {
		rs, err := st.ReadingsBetween(ctx, c.m.ID, 0, math.MaxInt64, 5000)
		if err != nil {
			t.Fatal(err)
		}
		if len(rs) != c.want {
			t.Errorf("meter %s has %d readings, want %d", c.m.Username, len(rs), c.want)
		}
	}
}
