package server_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"smartmeters/crypto"
	"smartmeters/db/dbtest"
	"smartmeters/server"
	"smartmeters/server/api"
	"smartmeters/server/background"
	"smartmeters/store"
)

// replicas serves n servers with pools of their own on one fresh database
// of backend b. With follow, each follows the key changes of the others
// (PostgreSQL LISTEN/NOTIFY, as serve does); without, each knows only what
// its own cache and the database tell it.
func replicas(t *testing.T, b dbtest.Backend, n int, follow bool) []testServer {
	t.Helper()
	first := b.OpenMigrated(t)
	var out []testServer
	for i := range n {
		conn := first
		if i > 0 {
			conn = b.Open(t)
		}
		st := store.New(conn)
		srv := newServer(t, testConfig(nil), st)
		if follow {
			followKeyChanges(t, b, st, srv)
		}
		pub := httptest.NewServer(checkedPublic(t, srv.PublicHandler()))
		t.Cleanup(pub.Close)
		adm := httptest.NewServer(checkedAdmin(t, srv.AdminHandler()))
		t.Cleanup(adm.Close)
		out = append(out, testServer{public: pub.URL, admin: adm.URL, store: st, db: conn})
	}
	return out
}

// TestStaleKeyRefusedAtCommit changes a meter's key through one server
// while another still holds the old key in its cache, having heard
// nothing: the other server refuses the old key at once all the same,
// because the commit checks the key under the meter's lock, and it then
// accepts the new key.
func TestStaleKeyRefusedAtCommit(t *testing.T) {
	for _, b := range dbtest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			rs := replicas(t, b, 2, false)
			a, other := rs[0], rs[1]
			k1, k2 := newKey(t, "ed25519"), newKey(t, "ed25519")
			res := register(t, a, "stale", k1)
			if res.status != http.StatusCreated {
				t.Fatal(res.rawBody)
			}
			id := int64(res.body["id"].(float64))
			ts := now.Add(-time.Hour).UnixMilli()
			report := func(srv testServer, k *crypto.PrivateKey) response {
				ts += 1000
				return postJSON(t, srv.public+"/reportReading", signed(t, k, crypto.Reading{WhIn: ts / 1000, Timestamp: ts}))
			}
			if r := report(other, k1); r.status != http.StatusCreated { // now cached on the other server
				t.Fatalf("report before the change: %s", r.rawBody)
			}
			if r := postJSON(t, fmt.Sprintf("%s/meters/%d/key", a.admin, id), map[string]string{"base64PublicKey": k2.Public().Base64(), "reason": "swap"}); r.status != http.StatusOK {
				t.Fatalf("replace: %s", r.rawBody)
			}
			wantProblem(t, report(other, k1), http.StatusForbidden, "unknown-key")
			wantProblem(t, report(other, k1), http.StatusForbidden, "unknown-key") // and forgotten
			if r := report(other, k2); r.status != http.StatusCreated {
				t.Fatalf("the new key on the other server: %s", r.rawBody)
			}
			if r := postJSON(t, fmt.Sprintf("%s/meters/%d/revoke", a.admin, id), map[string]string{"reason": "stolen"}); r.status != http.StatusOK {
				t.Fatalf("revoke: %s", r.rawBody)
			}
			wantProblem(t, report(other, k2), http.StatusForbidden, "key-revoked")
			if n := countReadings(t, a.db); n != 2 {
				t.Fatalf("%d readings stored, want 2", n)
			}
		})
	}
}

// TestConcurrentKeyChanges makes two key changes of one meter at once
// (replace and replace, replace and revoke), while readings signed with
// every key involved keep arriving, many times over: on SQLite through one
// server, on PostgreSQL through two replicas that follow each other's key
// changes. Once the calls return, whatever the interleaving: both changes
// were applied in turn (200 each, both in the key history); a key that is
// not the meter's current, unrevoked key is refused by every server at
// once, and the current key is accepted by every server within the
// documented bound; and every stored reading is exported under the key
// that signed it.
func TestConcurrentKeyChanges(t *testing.T) {
	for _, b := range dbtest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			rs := replicas(t, b, 1, false)
			rs = append(rs, rs[0])
			if b.Driver() == "postgres" {
				rs = replicas(t, b, 2, true)
			}
			tries := 60
			if testing.Short() {
				tries = 10
			}
			var stamp atomic.Int64
			stamp.Store(now.Add(-time.Hour).UnixMilli())
			for try := range tries {
				revoke := try%2 == 1
				k0, k1, k2 := newKey(t, "ed25519"), newKey(t, "ed25519"), newKey(t, "ed25519")
				res := register(t, rs[0], fmt.Sprint("race-", try), k0)
				if res.status != http.StatusCreated {
					t.Fatal(res.rawBody)
				}
				id := int64(res.body["id"].(float64))
				path := fmt.Sprintf("/meters/%d", id)
				keys := []*crypto.PrivateKey{k0, k1, k2}

				// Readings signed with every key, on both servers, until
				// the changes are done.
				stop := make(chan struct{})
				var flow sync.WaitGroup
				for w := range 4 {
					flow.Go(func() {
						for i := 0; ; i++ {
							select {
							case <-stop:
								return
							default:
							}
							ms := stamp.Add(1)
							body, err := trySigned(keys[(w+i)%3], crypto.Reading{WhIn: ms, Timestamp: ms})
							if err != nil {
								t.Error(err)
								return
							}
							if _, err := tryPostJSON(rs[(w+i)%2].public+"/reportReading", body); err != nil {
								t.Error(err)
								return
							}
						}
					})
				}
				var changes sync.WaitGroup
				answers := make([]response, 2)
				changes.Go(func() {
					answers[0], _ = tryPostJSON(rs[0].admin+path+"/key", map[string]string{"base64PublicKey": k1.Public().Base64(), "reason": "swap 1"})
				})
				changes.Go(func() {
					if revoke {
						answers[1], _ = tryPostJSON(rs[1].admin+path+"/revoke", map[string]string{"reason": "stolen"})
						return
					}
					answers[1], _ = tryPostJSON(rs[1].admin+path+"/key", map[string]string{"base64PublicKey": k2.Public().Base64(), "reason": "swap 2"})
				})
				changes.Wait()
				close(stop)
				flow.Wait()
				for i, a := range answers {
					if a.status != http.StatusOK {
						t.Fatalf("try %d: key change %d answered %d %s; want both applied in turn", try, i, a.status, a.rawBody)
					}
				}

				// The outcome, as the store tells it.
				var hist struct {
					RevokedAt *time.Time `json:"revokedAt"`
					Keys      []struct {
						Fingerprint string     `json:"fingerprint"`
						RetiredAt   *time.Time `json:"retiredAt"`
					} `json:"keys"`
					Events []struct{ Action string } `json:"events"`
				}
				getJSON(t, rs[0], path+"/keys", &hist)
				if len(hist.Events) != 3 {
					t.Fatalf("try %d: %d key events, want register and both changes", try, len(hist.Events))
				}
				current := hist.Keys[len(hist.Keys)-1].Fingerprint
				for _, k := range keys {
					fp := k.Public().Fingerprint().String()
					for _, srv := range rs {
						if fp == current && hist.RevokedAt == nil {
							// A server that learnt the key was unknown just
							// before it was registered may say so until it
							// hears of the change.
							deadline := time.Now().Add(keyChangeBound)
							for {
								ms := stamp.Add(1)
								r := postJSON(t, srv.public+"/reportReading", signed(t, k, crypto.Reading{WhIn: ms, Timestamp: ms}))
								if r.status == http.StatusCreated {
									break
								}
								if time.Now().After(deadline) {
									t.Fatalf("try %d: the current key still refused after %s: %d %s", try, keyChangeBound, r.status, r.rawBody)
								}
								time.Sleep(20 * time.Millisecond)
							}
							continue
						}
						ms := stamp.Add(1)
						if r := postJSON(t, srv.public+"/reportReading", signed(t, k, crypto.Reading{WhIn: ms, Timestamp: ms})); r.status < 400 {
							t.Fatalf("try %d: a key that is not the meter's current, unrevoked key was accepted (%d); current %s, revoked %v, key %s",
								try, r.status, current, hist.RevokedAt != nil, fp)
						}
					}
				}
				exportSignedByItsKeys(t, rs[0], id)
			}
		})
	}
}

// keyChangeBound is how soon every server accepts a meter's new key: the
// key change notification's delivery, or, without one, the time an
// unknown key is remembered (2 s).
const keyChangeBound = 2 * time.Second

// followKeyChanges runs, until the test ends, what serve runs beside a
// server on PostgreSQL to follow the other servers' key changes.
func followKeyChanges(t *testing.T, b dbtest.Backend, st *store.Store, srv *server.Server) {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	kl, err := store.ListenKeyChanges(b.URL, logger)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = background.KeyChanges{Listener: kl, Store: st, Cache: srv.Keys(), Resync: time.Hour, Logger: logger}.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		kl.Close()
	})
}

// exportSignedByItsKeys fails unless every row of meter id's export
// verifies with the key it names.
func exportSignedByItsKeys(t *testing.T, ts testServer, id int64) {
	t.Helper()
	res := get(t, fmt.Sprintf("%s/meters/%d/export.csv", ts.admin, id))
	if res.status != http.StatusOK {
		t.Fatalf("export: %d %s", res.status, res.rawBody)
	}
	_, rows := readExport(t, []byte(res.rawBody))
	if len(rows) == 0 || strings.Join(rows[0], ",") != strings.Join(api.ExportColumns, ",") {
		t.Fatalf("export header %v", rows)
	}
	for _, row := range rows[1:] {
		verifyRow(t, row)
	}
}
