package server_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"smartmeters/crypto"
	"smartmeters/db/dbtest"
	"smartmeters/server"
	"smartmeters/store"
)

// newClockedServer is newTestServer with a clock the test moves.
func newClockedServer(t *testing.T, b dbtest.Backend, clock *atomic.Int64) testServer {
	t.Helper()
	conn := b.OpenMigrated(t)
	st := store.New(conn)
	srv := newServer(t, testConfig(func(c *server.Config) {
		c.Now = func() time.Time { return time.UnixMilli(clock.Load()).UTC() }
	}), st)
	pub := httptest.NewServer(checkedPublic(t, srv.PublicHandler()))
	t.Cleanup(pub.Close)
	adm := httptest.NewServer(checkedAdmin(t, srv.AdminHandler()))
	t.Cleanup(adm.Close)
	return testServer{public: pub.URL, admin: adm.URL, store: st, db: conn}
}

func TestKeyLifecycle(t *testing.T) {
	for _, b := range dbtest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			var clock atomic.Int64
			clock.Store(now.UnixMilli())
			tick := func() int64 { return clock.Add(int64(time.Hour / time.Millisecond)) }
			ts := newClockedServer(t, b, &clock)
			k1, k2, other := newKey(t, "ed25519"), newKey(t, "ecdsa-p256"), newKey(t, "ed25519")
			res := register(t, ts, "swapped", k1)
			if res.status != http.StatusCreated {
				t.Fatalf("register: %s", res.rawBody)
			}
			id := int64(res.body["id"].(float64))
			if res := register(t, ts, "other", other); res.status != http.StatusCreated {
				t.Fatalf("register other: %s", res.rawBody)
			}
			report := func(k *crypto.PrivateKey) response {
				t.Helper()
				ms := tick() - 1
				return postJSON(t, ts.public+"/reportReading", signed(t, k, crypto.Reading{WhIn: ms / 1000, WhOut: 1, Timestamp: ms}))
			}
			if r := report(k1); r.status != http.StatusCreated {
				t.Fatalf("report before revocation: %s", r.rawBody)
			}
			meterPath := fmt.Sprintf("%s/meters/%d", ts.admin, id)

			t.Run("Revoke", func(t *testing.T) {
				res := postJSON(t, meterPath+"/revoke", map[string]string{"reason": "meter stolen"})
				if res.status != http.StatusOK || res.body["action"] != "revoke" || res.body["reason"] != "meter stolen" ||
					res.body["oldFingerprint"] != k1.Public().Fingerprint().String() || res.body["newFingerprint"] != nil {
					t.Fatalf("revoke: %d %s", res.status, res.rawBody)
				}
				wantProblem(t, report(k1), http.StatusForbidden, "key-revoked")
			})
			t.Run("RevokeErrors", func(t *testing.T) {
				wantProblem(t, postJSON(t, meterPath+"/revoke", map[string]string{"reason": "again"}), http.StatusConflict, "already-revoked")
				wantProblem(t, postJSON(t, ts.admin+"/meters/999999/revoke", map[string]string{"reason": "x"}), http.StatusNotFound, "not-found")
				wantProblem(t, postJSON(t, meterPath+"/revoke", map[string]string{}), http.StatusBadRequest, "invalid-field")
			})
			t.Run("ReadingsStay", func(t *testing.T) {
				res := do(t, mustRequest(t, http.MethodGet, fmt.Sprintf("%s/readings?from=0", meterPath)))
				if rs, _ := res.body["readings"].([]any); res.status != http.StatusOK || len(rs) != 1 {
					t.Fatalf("readings after revocation: %d %s", res.status, res.rawBody)
				}
			})
			t.Run("Replace", func(t *testing.T) {
				tick()
				res := postJSON(t, meterPath+"/key", map[string]string{"base64PublicKey": k2.Public().Base64(), "reason": "meter swap"})
				if res.status != http.StatusOK || res.body["action"] != "replace" ||
					res.body["oldFingerprint"] != k1.Public().Fingerprint().String() ||
					res.body["newFingerprint"] != k2.Public().Fingerprint().String() {
					t.Fatalf("replace: %d %s", res.status, res.rawBody)
				}
				if r := report(k2); r.status != http.StatusCreated || r.body["meterId"] != float64(id) {
					t.Fatalf("report with the new key: %s", r.rawBody)
				}
				wantProblem(t, report(k1), http.StatusForbidden, "unknown-key")
			})
			t.Run("ReplaceErrors", func(t *testing.T) {
				for name, tt := range map[string]struct {
					path, key, reason string
					status            int
					slug              string
				}{
					"CurrentKey":   {meterPath + "/key", k2.Public().Base64(), "x", http.StatusConflict, "key-taken"},
					"RetiredKey":   {meterPath + "/key", k1.Public().Base64(), "x", http.StatusConflict, "key-taken"},
					"OthersKey":    {meterPath + "/key", other.Public().Base64(), "x", http.StatusConflict, "key-taken"},
					"InvalidKey":   {meterPath + "/key", "bm90IGEga2V5", "x", http.StatusBadRequest, "invalid-key"},
					"NoReason":     {meterPath + "/key", newKey(t, "ed25519").Public().Base64(), "", http.StatusBadRequest, "invalid-field"},
					"NULInReason":  {meterPath + "/key", newKey(t, "ed25519").Public().Base64(), "swap\u0000", http.StatusBadRequest, "invalid-field"},
					"NULInRevoke":  {meterPath + "/revoke", "", "stolen\u0000", http.StatusBadRequest, "invalid-field"},
					"UnknownMeter": {ts.admin + "/meters/999999/key", newKey(t, "ed25519").Public().Base64(), "x", http.StatusNotFound, "not-found"},
				} {
					t.Run(name, func(t *testing.T) {
						body := map[string]string{"reason": tt.reason}
						if tt.key != "" {
							body["base64PublicKey"] = tt.key
						}
						res := postJSON(t, tt.path, body)
						wantProblem(t, res, tt.status, tt.slug)
					})
				}
				// A retired key cannot be registered again either.
				wantProblem(t, register(t, ts, "thief", k1), http.StatusConflict, "key-taken")
			})
			t.Run("History", func(t *testing.T) {
				res := do(t, mustRequest(t, http.MethodGet, meterPath+"/keys"))
				keys, _ := res.body["keys"].([]any)
				events, _ := res.body["events"].([]any)
				if res.status != http.StatusOK || len(keys) != 2 || len(events) != 3 || res.body["revokedAt"] != nil {
					t.Fatalf("history: %d %s", res.status, res.rawBody)
				}
				for i, want := range []string{"register", "revoke", "replace"} {
					if ev := events[i].(map[string]any); ev["action"] != want || ev["at"] == "" {
						t.Fatalf("event %d = %v, want %s", i, ev, want)
					}
				}
				if k := keys[0].(map[string]any); k["fingerprint"] != k1.Public().Fingerprint().String() || k["retiredAt"] == nil {
					t.Fatalf("first key = %v", k)
				}
				if k := keys[1].(map[string]any); k["fingerprint"] != k2.Public().Fingerprint().String() || k["retiredAt"] != nil ||
					k["algorithm"] != "ecdsa-p256" {
					t.Fatalf("second key = %v", k)
				}
			})
			t.Run("ExportAfterSwap", func(t *testing.T) {
				res, err := http.Get(meterPath + "/export.csv")
				if err != nil {
					t.Fatal(err)
				}
				defer res.Body.Close()
				body, err := io.ReadAll(res.Body)
				if err != nil {
					t.Fatal(err)
				}
				frame, rows := readExport(t, body)
				checkFrame(t, ts, body, frame, id, "swapped", 2)
				if len(frame) != 6 || !strings.HasPrefix(frame[3], "# key,2,"+k2.Public().Fingerprint().String()+",") {
					t.Fatalf("frame %q: want both keys", frame)
				}
				if len(rows) != 3 {
					t.Fatalf("%d rows, want a header and 2 readings: %q", len(rows), rows)
				}
				for i, want := range []*crypto.PrivateKey{k1, k2} {
					row := rows[1+i]
					if row[3] != want.Public().Base64() || row[2] != want.Public().Algorithm() {
						t.Fatalf("row %d carries key %s (%s), want %s", i, row[3], row[2], want.Public().Base64())
					}
					verifyRow(t, row)
				}
			})
		})
	}
}

func mustRequest(t *testing.T, method, url string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// verifyRow checks an export row's signature with the row's own key.
func verifyRow(t *testing.T, row []string) {
	t.Helper()
	key, err := crypto.ParsePublicKey(row[3], 1024)
	if err != nil {
		t.Fatal(err)
	}
	var r crypto.Reading
	r.Timestamp, _ = strconv.ParseInt(row[4], 10, 64)
	r.WhIn, _ = strconv.ParseInt(row[5], 10, 64)
	r.WhOut, _ = strconv.ParseInt(row[6], 10, 64)
	sig, err := crypto.DecodeSignature(row[7])
	if err != nil {
		t.Fatal(err)
	}
	if err := key.Verify(r, sig); err != nil {
		t.Fatalf("row %q does not verify: %v", row, err)
	}
}
