package servecmd_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"smartmeters/crypto"
	"smartmeters/db/dbtest"
)

// keyChangeDeadline is how soon a key change made through one server must be
// honoured by the others.
const keyChangeDeadline = time.Second

// TestReplicas runs two real server processes on one PostgreSQL database and
// checks that a meter registered, revoked or given a new key through one
// is treated accordingly by the other within keyChangeDeadline, also after the
// other lost its database connections. The periodic resync is set to an
// hour, so only LISTEN/NOTIFY can make it in time.
//
// On Citus both servers talk to the coordinator, whose schema `migrate up`
// distributes.
func TestReplicas(t *testing.T) {
	bs := dbtest.PostgresBackends(t)
	if len(bs) == 0 {
		t.Skipf("needs PostgreSQL: set %s to run two servers on one database", dbtest.EnvURL)
	}
	bin := buildBinary(t)
	for _, pg := range bs {
		t.Run(pg.Name, func(t *testing.T) { testReplicas(t, bin, pg) })
	}
}

func testReplicas(t *testing.T, bin string, pg dbtest.Backend) {
	runBinary(t, bin, "migrate", "--database-url", pg.URL, "up")
	if pg.Name == dbtest.Citus {
		dbtest.RequireDistributed(t, pg.Open(t))
	}
	a := startServer(t, bin, "replica-a", withParam(pg.URL, "application_name", "replica-a"))
	b := startServer(t, bin, "replica-b", withParam(pg.URL, "application_name", "replica-b"))

	k1 := generateKey(t)
	var ts int64 = time.Now().Add(-time.Hour).UnixMilli()
	nextReading := func() crypto.Reading {
		ts += 1000
		return crypto.Reading{WhIn: ts / 1000, WhOut: 0, Timestamp: ts}
	}

	var meterID int64
	t.Run("RegisteredElsewhere", func(t *testing.T) {
		// B learns that k1 is unknown, and would remember that for 2 s.
		if code, slug := b.report(t, k1, nextReading()); code != http.StatusForbidden || slug != "unknown-key" {
			t.Fatalf("report of an unregistered key: %d %s, want 403 unknown-key", code, slug)
		}
		res := a.post(t, "/register", map[string]string{"username": "replica-meter-1", "base64PublicKey": k1.Public().Base64()})
		if res.status != http.StatusCreated {
			t.Fatalf("register on A: %d %s", res.status, res.raw)
		}
		meterID = int64(res.body["id"].(float64))
		b.waitFor(t, k1, nextReading, http.StatusCreated, "")
	})
	t.Run("RevokedElsewhere", func(t *testing.T) {
		if code, slug := b.report(t, k1, nextReading()); code != http.StatusCreated {
			t.Fatalf("report on B before the revocation: %d %s", code, slug)
		}
		res := a.post(t, fmt.Sprintf("/meters/%d/revoke", meterID), map[string]string{"reason": "meter stolen"})
		if res.status != http.StatusOK {
			t.Fatalf("revoke on A: %d %s", res.status, res.raw)
		}
		b.waitFor(t, k1, nextReading, http.StatusForbidden, "key-revoked")
	})
	k2 := generateKey(t)
	t.Run("ReplacedElsewhere", func(t *testing.T) {
		if code, slug := b.report(t, k2, nextReading()); code != http.StatusForbidden || slug != "unknown-key" {
			t.Fatalf("report with the new key before the swap: %d %s, want 403 unknown-key", code, slug)
		}
		res := a.post(t, fmt.Sprintf("/meters/%d/key", meterID), map[string]string{"base64PublicKey": k2.Public().Base64(), "reason": "meter swap"})
		if res.status != http.StatusOK {
			t.Fatalf("replace key on A: %d %s", res.status, res.raw)
		}
		b.waitFor(t, k2, nextReading, http.StatusCreated, "")
		if code, slug := b.report(t, k1, nextReading()); code != http.StatusForbidden {
			t.Fatalf("old key after the swap: %d %s, want 403", code, slug)
		}
	})
	t.Run("AfterConnectionLoss", func(t *testing.T) {
		if code, slug := b.report(t, k2, nextReading()); code != http.StatusCreated {
			t.Fatalf("report on B: %d %s", code, slug)
		}
		// Cut every connection of B, its key change listener's included, as
		// a database restart would.
		admin := pg.Open(t)
		var killed int
		if err := admin.Get(&killed, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'replica-b'`); err != nil {
			t.Fatal(err)
		}
		if killed == 0 {
			t.Fatal("no connection of server B found to cut")
		}
		res := a.post(t, fmt.Sprintf("/meters/%d/revoke", meterID), map[string]string{"reason": "decommissioned"})
		if res.status != http.StatusOK {
			t.Fatalf("revoke on A: %d %s", res.status, res.raw)
		}
		b.waitFor(t, k2, nextReading, http.StatusForbidden, "key-revoked")

		// Once B's listener is back, notifications reach it again.
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(b.logs.String(), "key change listener reconnected") {
			if time.Now().After(deadline) {
				t.Fatal("B's key change listener did not reconnect within 10 s")
			}
			time.Sleep(50 * time.Millisecond)
		}
		k3 := generateKey(t)
		if code, slug := b.report(t, k3, nextReading()); code != http.StatusForbidden || slug != "unknown-key" {
			t.Fatalf("report with a new key before the swap: %d %s, want 403 unknown-key", code, slug)
		}
		res = a.post(t, fmt.Sprintf("/meters/%d/key", meterID), map[string]string{"base64PublicKey": k3.Public().Base64(), "reason": "replacement meter"})
		if res.status != http.StatusOK {
			t.Fatalf("replace key on A: %d %s", res.status, res.raw)
		}
		b.waitFor(t, k3, nextReading, http.StatusCreated, "")
	})
}

// replica is one running `smartmeters serve`.
type replica struct {
	name                string
	publicURL, adminURL string
	logs                *syncBuffer // its stderr
	cmd                 *exec.Cmd
}

// syncBuffer is a bytes.Buffer safe for the process's writes and the
// test's reads at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func buildBinary(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "smartmeters")
	cmd := exec.Command("go", "build", "-o", bin, "smartmeters")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func runBinary(t *testing.T, bin string, args ...string) {
	t.Helper()
	if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
		t.Fatalf("smartmeters %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// startServer starts `smartmeters serve` with the flags extra on free
// loopback ports and waits until it is ready; it is stopped when the test
// ends.
func startServer(t *testing.T, bin, name, dbURL string, extra ...string) *replica {
	t.Helper()
	pub, adm := freePort(t), freePort(t)
	logs := new(syncBuffer)
	cmd := exec.Command(bin, append([]string{"serve", "--database-url", dbURL,
		"--listen", pub, "--admin-listen", adm, "--key-resync", "1h", "--log-format", "json"}, extra...)...)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &replica{name: name, publicURL: "http://" + pub, adminURL: "http://" + adm, logs: logs, cmd: cmd}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("log of %s:\n%s", s.name, logs)
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		res, err := http.Get(s.publicURL + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready after 15 s: %v\n%s", s.name, err, logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func freePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func withParam(rawURL, key, value string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		panic(err)
	}
	q := u.Query()
	q.Set(key, value)
	u.RawQuery = q.Encode()
	return u.String()
}

func generateKey(t *testing.T) *crypto.PrivateKey {
	t.Helper()
	k, err := crypto.GenerateKey(crypto.Ed25519, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

type adminResponse struct {
	status int
	body   map[string]any
	raw    string
}

func (s *replica) post(t *testing.T, path string, v any) adminResponse {
	t.Helper()
	body, _ := json.Marshal(v)
	res, err := http.Post(s.adminURL+path, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	out := adminResponse{status: res.StatusCode, raw: string(raw)}
	_ = json.Unmarshal(raw, &out.body)
	return out
}

// report sends one signed reading and returns the status and the problem
// type's slug, if any.
func (s *replica) report(t *testing.T, k *crypto.PrivateKey, r crypto.Reading) (int, string) {
	t.Helper()
	sig, err := k.Sign(r)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(map[string]any{
		"base64PublicKey": k.Public().Base64(),
		"base64Signature": base64.StdEncoding.EncodeToString(sig),
		"reading":         r,
	})
	res, err := http.Post(s.publicURL+"/reportReading", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var p struct{ Type string }
	_ = json.NewDecoder(res.Body).Decode(&p)
	return res.StatusCode, strings.TrimPrefix(p.Type, "urn:smartmeters:problem:")
}

// waitFor reports fresh readings signed by k every 50 ms until the server
// answers status (and problem slug), and fails if that takes longer than
// keyChangeDeadline. A 503 while the server reconnects counts as not yet.
func (s *replica) waitFor(t *testing.T, k *crypto.PrivateKey, next func() crypto.Reading, status int, slug string) {
	t.Helper()
	start := time.Now()
	for {
		code, got := s.report(t, k, next())
		if code == status && got == slug {
			t.Logf("%s answered %d %s after %s", s.name, code, slug, time.Since(start).Round(time.Millisecond))
			return
		}
		if time.Since(start) > keyChangeDeadline {
			t.Fatalf("%s still answers %d %s after %s, want %d %s", s.name, code, got, keyChangeDeadline, status, slug)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
