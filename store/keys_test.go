package store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"smartmeters/crypto"
	"smartmeters/store"
)

// newMeterAt stores a new meter with a fresh key, registered at at.
func newMeterAt(t testing.TB, st *store.Store, username string, at time.Time) store.Meter {
	t.Helper()
	m := newMeterValue(t, username)
	m.RegisteredAt = at
	if err := st.CreateMeter(context.Background(), &m); err != nil {
		t.Fatalf("CreateMeter(%s): %v", username, err)
	}
	return m
}

// newKey returns a fresh key that no meter has had.
func newKey(t testing.TB) store.NewKey {
	t.Helper()
	m := newMeterValue(t, "")
	return store.NewKey{PublicKey: m.PublicKey, Fingerprint: m.Fingerprint, Algorithm: m.Algorithm}
}

// currentKey is the key m was registered with, as ReplaceKey takes it.
func currentKey(m store.Meter) store.NewKey {
	return store.NewKey{PublicKey: m.PublicKey, Fingerprint: m.Fingerprint, Algorithm: m.Algorithm}
}

func fpOrNil(fp *crypto.Fingerprint) string {
	if fp == nil {
		return "nil"
	}
	return fp.String()[:12]
}

func timeOrNil(t *time.Time) string {
	if t == nil {
		return "nil"
	}
	return t.Format(time.RFC3339Nano)
}

// eventString renders every field of ev, times with their zone, so that
// events compare as strings and differ visibly in a failure.
func eventString(ev store.KeyEvent) string {
	return fmt.Sprintf("{meter %d %s old=%s new=%s reason=%q at=%s}", ev.MeterID, ev.Action,
		fpOrNil(ev.OldFingerprint), fpOrNil(ev.NewFingerprint), ev.Reason, ev.At.Format(time.RFC3339Nano))
}

func eventStrings(evs []store.KeyEvent) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = eventString(ev)
	}
	return out
}

// keyString renders a MeterKey as keyWant does.
func keyString(k store.MeterKey) string {
	return fmt.Sprintf("{meter %d %s %s %d-byte key added=%s retired=%s}", k.MeterID, fpOrNil(&k.Fingerprint),
		k.Algorithm, len(k.PublicKey), k.AddedAt.Format(time.RFC3339Nano), timeOrNil(k.RetiredAt))
}

// keyWant is a key a meter should have had from added until retired.
type keyWant struct {
	key     store.NewKey
	added   time.Time
	retired *time.Time
}

// checkKeyEvents fails unless the key history of meter id is want.
func checkKeyEvents(t *testing.T, st *store.Store, id int64, want ...store.KeyEvent) {
	t.Helper()
	got, err := st.KeyEvents(context.Background(), id)
	if err != nil {
		t.Fatalf("KeyEvents(%d): %v", id, err)
	}
	if g, w := eventStrings(got), eventStrings(want); !slices.Equal(g, w) {
		t.Fatalf("KeyEvents(%d) =\n\t%v\nwant\n\t%v", id, g, w)
	}
}

// checkMeterKeys fails unless the keys of meter id are want, in order.
func checkMeterKeys(t *testing.T, st *store.Store, id int64, want ...keyWant) {
	t.Helper()
	got, err := st.MeterKeys(context.Background(), id)
	if err != nil {
		t.Fatalf("MeterKeys(%d): %v", id, err)
	}
	g := make([]string, len(got))
	for i, k := range got {
		g[i] = keyString(k)
	}
	w := make([]string, len(want))
	for i, k := range want {
		w[i] = keyString(store.MeterKey{MeterID: id, PublicKey: k.key.PublicKey, Fingerprint: k.key.Fingerprint,
			Algorithm: k.key.Algorithm, AddedAt: k.added, RetiredAt: k.retired})
	}
	if !slices.Equal(g, w) {
		t.Fatalf("MeterKeys(%d) =\n\t%v\nwant\n\t%v", id, g, w)
	}
	for i, k := range got {
		if !bytes.Equal(k.PublicKey, want[i].key.PublicKey) {
			t.Fatalf("MeterKeys(%d)[%d].PublicKey differs from the key stored", id, i)
		}
	}
}

// checkCurrentKey fails unless MeterByFingerprint finds meter m by k,
// with k as its key and revokedAt as its revocation time.
func checkCurrentKey(t *testing.T, st *store.Store, m store.Meter, k store.NewKey, revokedAt *time.Time) {
	t.Helper()
	got, err := st.MeterByFingerprint(context.Background(), k.Fingerprint)
	if err != nil {
		t.Fatalf("MeterByFingerprint(current key of %s): %v", m.Username, err)
	}
	if got.ID != m.ID || got.Username != m.Username || !got.RegisteredAt.Equal(m.RegisteredAt) ||
		got.Fingerprint != k.Fingerprint || !bytes.Equal(got.PublicKey, k.PublicKey) || got.Algorithm != k.Algorithm ||
		timeOrNil(got.RevokedAt) != timeOrNil(revokedAt) {
		t.Fatalf("MeterByFingerprint = {id %d %s %s %s registered %s revoked %s}, want {id %d %s %s %s registered %s revoked %s}",
			got.ID, got.Username, fpOrNil(&got.Fingerprint), got.Algorithm, got.RegisteredAt, timeOrNil(got.RevokedAt),
			m.ID, m.Username, fpOrNil(&k.Fingerprint), k.Algorithm, m.RegisteredAt, timeOrNil(revokedAt))
	}
	byID, err := st.MeterByID(context.Background(), m.ID)
	if err != nil {
		t.Fatalf("MeterByID(%d): %v", m.ID, err)
	}
	if byID.Fingerprint != k.Fingerprint || timeOrNil(byID.RevokedAt) != timeOrNil(revokedAt) {
		t.Fatalf("MeterByID(%d) has key %s revoked %s, want %s revoked %s", m.ID,
			fpOrNil(&byID.Fingerprint), timeOrNil(byID.RevokedAt), fpOrNil(&k.Fingerprint), timeOrNil(revokedAt))
	}
}

func checkKeyGone(t *testing.T, st *store.Store, fp crypto.Fingerprint) {
	t.Helper()
	if m, err := st.MeterByFingerprint(context.Background(), fp); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("MeterByFingerprint(retired key) = meter %d, %v; want ErrNotFound", m.ID, err)
	}
}

func registerEvent(m store.Meter) store.KeyEvent {
	return store.KeyEvent{MeterID: m.ID, Action: store.ActionRegister, NewFingerprint: &m.Fingerprint, At: m.RegisteredAt}
}

func testRevokeKey(t *testing.T, st *store.Store) {
	ctx := context.Background()
	revokedAt := registeredAt.Add(time.Hour)

	t.Run("OK", func(t *testing.T) {
		m := newMeter(t, st, "revoke-ok")
		const ts = 1764141000000
		if _, err := st.InsertReadings(ctx, []store.Reading{reading(m.ID, ts, 1, 0)}); err != nil {
			t.Fatal(err)
		}
		ev, err := st.RevokeKey(ctx, m.ID, "stolen", revokedAt)
		if err != nil {
			t.Fatalf("RevokeKey: %v", err)
		}
		want := store.KeyEvent{MeterID: m.ID, Action: store.ActionRevoke, OldFingerprint: &m.Fingerprint, Reason: "stolen", At: revokedAt}
		if eventString(ev) != eventString(want) {
			t.Fatalf("RevokeKey = %s, want %s", eventString(ev), eventString(want))
		}
		// The meter stays, found by its revoked key so that the refusal can
		// say why; so do its username and its readings.
		checkCurrentKey(t, st, m, currentKey(m), &revokedAt)
		checkMeterKeys(t, st, m.ID, keyWant{currentKey(m), registeredAt, &revokedAt})
		checkKeyEvents(t, st, m.ID, registerEvent(m), want)
		rs, err := st.ReadingsBetween(ctx, m.ID, 0, math.MaxInt64, 10)
		if err != nil || len(rs) != 1 || rs[0].Timestamp != ts {
			t.Fatalf("readings after revocation = %+v, %v; want the one stored", rs, err)
		}
	})
	t.Run("AtInOtherZone", func(t *testing.T) {
		m := newMeter(t, st, "revoke-zone")
		ev, err := st.RevokeKey(ctx, m.ID, "", revokedAt.In(time.FixedZone("CET", 3600)))
		if err != nil {
			t.Fatal(err)
		}
		want := store.KeyEvent{MeterID: m.ID, Action: store.ActionRevoke, OldFingerprint: &m.Fingerprint, At: revokedAt}
		if eventString(ev) != eventString(want) {
			t.Fatalf("RevokeKey = %s, want %s (in UTC)", eventString(ev), eventString(want))
		}
		checkKeyEvents(t, st, m.ID, registerEvent(m), want)
		checkCurrentKey(t, st, m, currentKey(m), &revokedAt)
	})
	t.Run("ErrRevoked", func(t *testing.T) {
		m := newMeter(t, st, "revoke-twice")
		first, err := st.RevokeKey(ctx, m.ID, "stolen", revokedAt)
		if err != nil {
			t.Fatal(err)
		}
		ev, err := st.RevokeKey(ctx, m.ID, "again", revokedAt.Add(time.Hour))
		if !errors.Is(err, store.ErrRevoked) || errors.Is(err, store.ErrNotFound) {
			t.Fatalf("second RevokeKey = %s, %v; want ErrRevoked", eventString(ev), err)
		}
		// Nothing changed: the first revocation time stands.
		checkCurrentKey(t, st, m, currentKey(m), &revokedAt)
		checkMeterKeys(t, st, m.ID, keyWant{currentKey(m), registeredAt, &revokedAt})
		checkKeyEvents(t, st, m.ID, registerEvent(m), first)
	})
	t.Run("ErrNotFound", func(t *testing.T) {
		for _, id := range []int64{-1, 0, math.MaxInt64} {
			if ev, err := st.RevokeKey(ctx, id, "", revokedAt); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("RevokeKey(%d) = %s, %v; want ErrNotFound", id, eventString(ev), err)
			}
		}
	})
	t.Run("AfterReplace", func(t *testing.T) {
		// The key revoked is the current one, not the one registered.
		m := newMeter(t, st, "revoke-after-replace")
		k := newKey(t)
		replacedAt, revokedAt := registeredAt.Add(time.Minute), registeredAt.Add(2*time.Minute)
		replaced, err := st.ReplaceKey(ctx, m.ID, k, "swap", replacedAt)
		if err != nil {
			t.Fatal(err)
		}
		ev, err := st.RevokeKey(ctx, m.ID, "lost", revokedAt)
		if err != nil {
			t.Fatal(err)
		}
		want := store.KeyEvent{MeterID: m.ID, Action: store.ActionRevoke, OldFingerprint: &k.Fingerprint, Reason: "lost", At: revokedAt}
		if eventString(ev) != eventString(want) {
			t.Fatalf("RevokeKey = %s, want %s", eventString(ev), eventString(want))
		}
		checkCurrentKey(t, st, m, k, &revokedAt)
		checkKeyGone(t, st, m.Fingerprint)
		checkMeterKeys(t, st, m.ID, keyWant{currentKey(m), registeredAt, &replacedAt}, keyWant{k, replacedAt, &revokedAt})
		checkKeyEvents(t, st, m.ID, registerEvent(m), replaced, want)
	})
}

func testReplaceKey(t *testing.T, st *store.Store) {
	ctx := context.Background()
	t1, t2, t3 := registeredAt.Add(time.Minute), registeredAt.Add(2*time.Minute), registeredAt.Add(3*time.Minute)

	t.Run("OK", func(t *testing.T) {
		m := newMeter(t, st, "replace-ok")
		const ts = 1764141000000
		if _, err := st.InsertReadings(ctx, []store.Reading{reading(m.ID, ts, 1, 0)}); err != nil {
			t.Fatal(err)
		}
		k := newKey(t)
		ev, err := st.ReplaceKey(ctx, m.ID, k, "meter swap", t1)
		if err != nil {
			t.Fatalf("ReplaceKey: %v", err)
		}
		want := store.KeyEvent{MeterID: m.ID, Action: store.ActionReplace, OldFingerprint: &m.Fingerprint,
			NewFingerprint: &k.Fingerprint, Reason: "meter swap", At: t1}
		if eventString(ev) != eventString(want) {
			t.Fatalf("ReplaceKey = %s, want %s", eventString(ev), eventString(want))
		}
		checkCurrentKey(t, st, m, k, nil)
		checkKeyGone(t, st, m.Fingerprint)
		checkMeterKeys(t, st, m.ID, keyWant{currentKey(m), registeredAt, &t1}, keyWant{k, t1, nil})
		checkKeyEvents(t, st, m.ID, registerEvent(m), want)
		rs, err := st.ReadingsBetween(ctx, m.ID, 0, math.MaxInt64, 10)
		if err != nil || len(rs) != 1 || rs[0].Timestamp != ts {
			t.Fatalf("readings after replacement = %+v, %v; want the one stored", rs, err)
		}
	})
	t.Run("Twice", func(t *testing.T) {
		m := newMeter(t, st, "replace-twice")
		k1, k2 := newKey(t), newKey(t)
		ev1, err := st.ReplaceKey(ctx, m.ID, k1, "first", t1)
		if err != nil {
			t.Fatal(err)
		}
		ev2, err := st.ReplaceKey(ctx, m.ID, k2, "second", t2)
		if err != nil {
			t.Fatal(err)
		}
		want2 := store.KeyEvent{MeterID: m.ID, Action: store.ActionReplace, OldFingerprint: &k1.Fingerprint,
			NewFingerprint: &k2.Fingerprint, Reason: "second", At: t2}
		if eventString(ev2) != eventString(want2) {
			t.Fatalf("second ReplaceKey = %s, want %s", eventString(ev2), eventString(want2))
		}
		checkCurrentKey(t, st, m, k2, nil)
		checkKeyGone(t, st, m.Fingerprint)
		checkKeyGone(t, st, k1.Fingerprint)
		checkMeterKeys(t, st, m.ID, keyWant{currentKey(m), registeredAt, &t1}, keyWant{k1, t1, &t2}, keyWant{k2, t2, nil})
		checkKeyEvents(t, st, m.ID, registerEvent(m), ev1, want2)
	})
	t.Run("AfterRevoke", func(t *testing.T) {
		// Replacing a revoked key makes the meter valid again; the old key
		// keeps its revocation time as its end.
		m := newMeter(t, st, "replace-revoked")
		revoked, err := st.RevokeKey(ctx, m.ID, "lost", t1)
		if err != nil {
			t.Fatal(err)
		}
		k := newKey(t)
		ev, err := st.ReplaceKey(ctx, m.ID, k, "found a new one", t2)
		if err != nil {
			t.Fatal(err)
		}
		want := store.KeyEvent{MeterID: m.ID, Action: store.ActionReplace, OldFingerprint: &m.Fingerprint,
			NewFingerprint: &k.Fingerprint, Reason: "found a new one", At: t2}
		if eventString(ev) != eventString(want) {
			t.Fatalf("ReplaceKey = %s, want %s", eventString(ev), eventString(want))
		}
		checkCurrentKey(t, st, m, k, nil)
		checkKeyGone(t, st, m.Fingerprint)
		checkMeterKeys(t, st, m.ID, keyWant{currentKey(m), registeredAt, &t1}, keyWant{k, t2, nil})
		checkKeyEvents(t, st, m.ID, registerEvent(m), revoked, want)
		// And it can be revoked again.
		if _, err := st.RevokeKey(ctx, m.ID, "", t3); err != nil {
			t.Fatalf("RevokeKey after replacement: %v", err)
		}
		checkCurrentKey(t, st, m, k, &t3)
	})
	t.Run("AtRegistrationInstant", func(t *testing.T) {
		// A replacement at the very instant of registration (a pinned clock)
		// still lists the registered key first: it was added no later and
		// retired, while the new key is current.
		m := newMeter(t, st, "replace-same-instant")
		k := newKey(t)
		if _, err := st.ReplaceKey(ctx, m.ID, k, "", registeredAt); err != nil {
			t.Fatal(err)
		}
		checkCurrentKey(t, st, m, k, nil)
		checkMeterKeys(t, st, m.ID, keyWant{currentKey(m), registeredAt, &registeredAt}, keyWant{k, registeredAt, nil})
	})
	t.Run("ErrNotFound", func(t *testing.T) {
		k := newKey(t)
		for _, id := range []int64{-1, 0, math.MaxInt64} {
			if ev, err := st.ReplaceKey(ctx, id, k, "", t1); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("ReplaceKey(%d) = %s, %v; want ErrNotFound", id, eventString(ev), err)
			}
		}
		checkKeyGone(t, st, k.Fingerprint)
	})
	t.Run("ErrKeyTaken", func(t *testing.T) {
		// Each case gives meter m a key that some meter has or had; m's
		// key history must come out unchanged.
		tests := []struct {
			name string
			key  func(t *testing.T, m store.Meter) store.NewKey
		}{
			{"OwnCurrentKey", func(t *testing.T, m store.Meter) store.NewKey { return currentKey(m) }},
			{"OtherMetersCurrentKey", func(t *testing.T, m store.Meter) store.NewKey {
				return currentKey(newMeter(t, st, m.Username+"-other"))
			}},
			{"OtherMetersRevokedKey", func(t *testing.T, m store.Meter) store.NewKey {
				other := newMeter(t, st, m.Username+"-other")
				if _, err := st.RevokeKey(ctx, other.ID, "", t1); err != nil {
					t.Fatal(err)
				}
				return currentKey(other)
			}},
			{"OtherMetersRetiredKey", func(t *testing.T, m store.Meter) store.NewKey {
				other := newMeter(t, st, m.Username+"-other")
				if _, err := st.ReplaceKey(ctx, other.ID, newKey(t), "", t1); err != nil {
					t.Fatal(err)
				}
				return currentKey(other)
			}},
		}
		for i, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				m := newMeter(t, st, fmt.Sprintf("replace-taken-%d", i))
				k := tt.key(t, m)
				ev, err := st.ReplaceKey(ctx, m.ID, k, "", t2)
				if !errors.Is(err, store.ErrKeyTaken) || !errors.Is(err, store.ErrConflict) {
					t.Fatalf("ReplaceKey = %s, %v; want ErrKeyTaken", eventString(ev), err)
				}
				checkCurrentKey(t, st, m, currentKey(m), nil)
				checkMeterKeys(t, st, m.ID, keyWant{currentKey(m), registeredAt, nil})
				checkKeyEvents(t, st, m.ID, registerEvent(m))
			})
		}
		t.Run("OwnRetiredKey", func(t *testing.T) {
			m := newMeter(t, st, "replace-taken-own-retired")
			k := newKey(t)
			replaced, err := st.ReplaceKey(ctx, m.ID, k, "", t1)
			if err != nil {
				t.Fatal(err)
			}
			ev, err := st.ReplaceKey(ctx, m.ID, currentKey(m), "back", t2)
			if !errors.Is(err, store.ErrKeyTaken) {
				t.Fatalf("ReplaceKey(retired key) = %s, %v; want ErrKeyTaken", eventString(ev), err)
			}
			checkCurrentKey(t, st, m, k, nil)
			checkMeterKeys(t, st, m.ID, keyWant{currentKey(m), registeredAt, &t1}, keyWant{k, t1, nil})
			checkKeyEvents(t, st, m.ID, registerEvent(m), replaced)
		})
		t.Run("CreateMeterWithRetiredKey", func(t *testing.T) {
			// CreateMeter refuses a key that was ever registered, too.
			m := newMeter(t, st, "replace-taken-create")
			if _, err := st.ReplaceKey(ctx, m.ID, newKey(t), "", t1); err != nil {
				t.Fatal(err)
			}
			again := newMeterValue(t, "replace-taken-create-again")
			again.PublicKey, again.Fingerprint = m.PublicKey, m.Fingerprint
			if err := st.CreateMeter(ctx, &again); !errors.Is(err, store.ErrKeyTaken) {
				t.Fatalf("CreateMeter(retired key) = %v; want ErrKeyTaken", err)
			}
			if again.ID != 0 {
				t.Fatalf("failed CreateMeter left ID %d", again.ID)
			}
		})
	})
}
