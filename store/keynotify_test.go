package store_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"smartmeters/crypto"
	"smartmeters/db"
	"smartmeters/db/dbtest"
	"smartmeters/store"
)

// notifyTimeout bounds every wait for a notification; they normally take
// milliseconds.
const notifyTimeout = 10 * time.Second

// awaitChange returns the first change on kl for which match is true,
// skipping others: the channel is shared by every test on the database.
func awaitChange(t *testing.T, kl *store.KeyListener, what string, match func(store.KeyChange) bool) store.KeyChange {
	t.Helper()
	deadline := time.After(notifyTimeout)
	for {
		select {
		case ch, ok := <-kl.Changes():
			if !ok {
				t.Fatalf("waiting for %s: Changes closed", what)
			}
			if match(ch) {
				return ch
			}
		case <-deadline:
			t.Fatalf("no %s within %s", what, notifyTimeout)
		}
	}
}

// awaitKeys waits for the first change naming any of fps and fails unless
// it names exactly want, in any order.
func awaitKeys(t *testing.T, kl *store.KeyListener, fps []crypto.Fingerprint, want ...crypto.Fingerprint) {
	t.Helper()
	ch := awaitChange(t, kl, "key change", func(ch store.KeyChange) bool {
		return slices.ContainsFunc(ch.Fingerprints, func(fp crypto.Fingerprint) bool { return slices.Contains(fps, fp) })
	})
	got := make([]string, len(ch.Fingerprints))
	for i, fp := range ch.Fingerprints {
		got[i] = fp.String()
	}
	w := make([]string, len(want))
	for i, fp := range want {
		w[i] = fp.String()
	}
	slices.Sort(got)
	slices.Sort(w)
	if !slices.Equal(got, w) || ch.Up || ch.Down {
		t.Fatalf("change = %+v, want fingerprints %v", ch, w)
	}
}

// testListenKeyChanges checks that a KeyListener hears every committed
// registration, revocation and replacement, nothing that rolled back, and
// recovers from losing its connection. PostgreSQL only.
func testListenKeyChanges(t *testing.T, st *store.Store, b dbtest.Backend, conn *sqlx.DB) {
	if b.Driver() != db.Postgres {
		t.Skip("ListenKeyChanges needs PostgreSQL LISTEN/NOTIFY; the SQLite store serves one process and notifies nobody")
	}
	ctx := context.Background()
	// An application name of its own lets the test find the listener's
	// connection among the server's.
	app := make([]byte, 6)
	if _, err := rand.Read(app); err != nil {
		t.Fatal(err)
	}
	appName := "keylistener-test-" + hex.EncodeToString(app)
	u, err := url.Parse(b.URL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("application_name", appName)
	u.RawQuery = q.Encode()

	kl, err := store.ListenKeyChanges(u.String(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("ListenKeyChanges: %v", err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			kl.Close()
		}
	})
	at := registeredAt.Add(time.Hour)

	t.Run("Ping", func(t *testing.T) {
		if err := kl.Ping(); err != nil {
			t.Fatalf("Ping: %v", err)
		}
	})
	t.Run("Register", func(t *testing.T) {
		m := newMeter(t, st, "listen-register")
		awaitKeys(t, kl, []crypto.Fingerprint{m.Fingerprint}, m.Fingerprint)
	})
	t.Run("Revoke", func(t *testing.T) {
		m := newMeter(t, st, "listen-revoke")
		awaitKeys(t, kl, []crypto.Fingerprint{m.Fingerprint}, m.Fingerprint)
		if _, err := st.RevokeKey(ctx, m.ID, "", at); err != nil {
			t.Fatal(err)
		}
		awaitKeys(t, kl, []crypto.Fingerprint{m.Fingerprint}, m.Fingerprint)
	})
	t.Run("Replace", func(t *testing.T) {
		m := newMeter(t, st, "listen-replace")
		awaitKeys(t, kl, []crypto.Fingerprint{m.Fingerprint}, m.Fingerprint)
		k := newKey(t)
		if _, err := st.ReplaceKey(ctx, m.ID, k, "", at); err != nil {
			t.Fatal(err)
		}
		awaitKeys(t, kl, []crypto.Fingerprint{m.Fingerprint, k.Fingerprint}, m.Fingerprint, k.Fingerprint)
	})
	t.Run("RolledBack", func(t *testing.T) {
		// A replacement that fails is not announced: the next change naming
		// either key is the revocation that follows it.
		m, other := newMeter(t, st, "listen-rollback"), newMeter(t, st, "listen-rollback-other")
		fps := []crypto.Fingerprint{m.Fingerprint, other.Fingerprint}
		awaitKeys(t, kl, fps, m.Fingerprint)
		awaitKeys(t, kl, fps, other.Fingerprint)
		if _, err := st.ReplaceKey(ctx, m.ID, currentKey(other), "", at); !errors.Is(err, store.ErrKeyTaken) {
			t.Fatalf("ReplaceKey(taken key) = %v; want ErrKeyTaken", err)
		}
		if _, err := st.RevokeKey(ctx, m.ID, "", at); err != nil {
			t.Fatal(err)
		}
		awaitKeys(t, kl, fps, m.Fingerprint)
	})
	t.Run("Reconnect", func(t *testing.T) {
		var n int
		err := conn.GetContext(ctx, &n, `
			SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1`, appName)
		if err != nil || n != 1 {
			t.Fatalf("terminated %d listener connections, %v; want 1", n, err)
		}
		awaitChange(t, kl, "Down", func(ch store.KeyChange) bool { return ch.Down })
		awaitChange(t, kl, "Up", func(ch store.KeyChange) bool { return ch.Up })
		if err := kl.Ping(); err != nil {
			t.Fatalf("Ping after reconnecting: %v", err)
		}
		m := newMeter(t, st, "listen-reconnected")
		awaitKeys(t, kl, []crypto.Fingerprint{m.Fingerprint}, m.Fingerprint)
	})
	t.Run("Close", func(t *testing.T) {
		closed = true
		if err := kl.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		deadline := time.After(notifyTimeout)
		for open := true; open; {
			select {
			case _, open = <-kl.Changes():
			case <-deadline:
				t.Fatalf("Changes still open %s after Close", notifyTimeout)
			}
		}
		if err := kl.Ping(); err == nil {
			t.Fatal("Ping after Close succeeded")
		}
	})
}
