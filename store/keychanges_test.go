package store_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"smartmeters/crypto"
	"smartmeters/store"
)

func testKeysChangedSince(t *testing.T, st *store.Store) {
	ctx := context.Background()
	// An era of its own, after every other event of the suite.
	t0 := time.Date(2032, 3, 1, 12, 0, 0, 0, time.UTC)
	a := newMeterAt(t, st, "changed-a", t0)                  // register a at t0
	b := newMeterAt(t, st, "changed-b", t0.Add(time.Minute)) // register b at t0+1m
	if _, err := st.RevokeKey(ctx, a.ID, "", t0.Add(2*time.Minute)); err != nil {
		t.Fatal(err) // revoke a at t0+2m
	}
	kb := newKey(t)
	if _, err := st.ReplaceKey(ctx, b.ID, kb, "", t0.Add(3*time.Minute)); err != nil {
		t.Fatal(err) // replace b by kb at t0+3m
	}
	name := map[crypto.Fingerprint]string{a.Fingerprint: "a", b.Fingerprint: "b", kb.Fingerprint: "kb"}
	tests := []struct {
		name  string
		since time.Time
		want  []string
	}{
		{"BeforeAll", t0.Add(-time.Hour), []string{"a", "b", "kb"}},
		{"AtFirst", t0, []string{"a", "b", "kb"}},
		{"AtRegistration", t0.Add(time.Minute), []string{"a", "b", "kb"}},
		{"AtRevocation", t0.Add(2 * time.Minute), []string{"a", "b", "kb"}},
		{"JustAfterRevocation", t0.Add(2*time.Minute + time.Millisecond), []string{"b", "kb"}},
		{"AtReplacement", t0.Add(3 * time.Minute), []string{"b", "kb"}},
		{"AtReplacementOtherZone", t0.Add(3 * time.Minute).In(time.FixedZone("EST", -5*3600)), []string{"b", "kb"}},
		{"JustAfterReplacement", t0.Add(3*time.Minute + time.Millisecond), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fps, err := st.KeysChangedSince(ctx, tt.since)
			if err != nil {
				t.Fatal(err)
			}
			// Other subtests' keys may be named too; only this one's count.
			var got []string
			for _, fp := range fps {
				if n, ok := name[fp]; ok && !slices.Contains(got, n) {
					got = append(got, n)
				}
			}
			slices.Sort(got)
			if !slices.Equal(got, tt.want) {
				t.Fatalf("KeysChangedSince(%s) names %v, want %v", tt.since, got, tt.want)
			}
		})
	}
	t.Run("Register", func(t *testing.T) {
		// A registration alone names the meter's key.
		c := newMeterAt(t, st, "changed-c", t0.Add(time.Hour))
		fps, err := st.KeysChangedSince(ctx, t0.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(fps, c.Fingerprint) || slices.Contains(fps, a.Fingerprint) || slices.Contains(fps, kb.Fingerprint) {
			t.Fatalf("KeysChangedSince(registration of c) = %d keys; want c's and not a's or kb's", len(fps))
		}
	})
}
