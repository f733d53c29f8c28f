package server_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"smartmeters/crypto"
	"smartmeters/db/dbtest"
	"smartmeters/server"
	"smartmeters/store"
)

// dialFrom dials addr from the loopback address ip, so that one test can
// play several clients; it skips the test where that is not possible.
func dialFrom(t *testing.T, ip, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Skipf("cannot dial from %s here: %v", ip, err)
	}
	return c
}

// clientFrom returns an HTTP client whose connections come from ip.
func clientFrom(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext}, Timeout: 10 * time.Second}
}

// pendingBody sends the headers of a report announcing size bytes of body
// and none of the body, and returns the connection.
func pendingBody(t *testing.T, c net.Conn, path string, size int) {
	t.Helper()
	head := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", path, size)
	if _, err := c.Write([]byte(head)); err != nil {
		t.Fatal(err)
	}
}

// answerWithin reads the status line and headers of an answer on c, or
// returns status 0 if none comes within d.
func answerWithin(c net.Conn, d time.Duration) (status int, header http.Header) {
	_ = c.SetReadDeadline(time.Now().Add(d))
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, nil
	}
	res.Body.Close()
	return res.StatusCode, res.Header
}

// TestMemoryBudget announces bodies larger than one client's share of the
// memory budget and holds them back: the body that does not fit is
// answered 503 overloaded with Retry-After at once, without waiting for
// it; connections beyond the client's share are answered so on accept;
// another client is served all along; and everything held is given back
// when the connections close.
func TestMemoryBudget(t *testing.T) {
	st := store.New(dbtest.SQLite(t).OpenMigrated(t))
	srv := newServer(t, testConfig(func(c *server.Config) {
		c.MemoryBudget, c.MemoryPerAddress = 4<<20, 1<<20
	}), st)
	pub, adm := serveForTest(t, srv)

	// 32 KiB a connection, twice the body for a body: the first 400 KiB
	// body fits in the 1 MiB share, the second does not.
	first := dialFrom(t, "127.0.0.2", pub)
	defer first.Close()
	pendingBody(t, first, "/reportReadings", 400<<10)
	waitInUse(t, "http://"+adm, 800<<10)
	second := dialFrom(t, "127.0.0.2", pub)
	defer second.Close()
	pendingBody(t, second, "/reportReadings", 400<<10)
	status, h := answerWithin(second, 5*time.Second)
	if status != http.StatusServiceUnavailable || h.Get("Retry-After") == "" || h.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("a body beyond the share: status %d, headers %v; want 503 problem with Retry-After at once", status, h)
	}
	if status, _ := answerWithin(first, 100*time.Millisecond); status != 0 {
		t.Fatalf("the body that fits was answered %d before it was sent", status)
	}

	// More connections than the share holds room for: the extra ones are
	// answered 503 on accept.
	var conns []net.Conn
	refused := 0
	for range 20 {
		c := dialFrom(t, "127.0.0.2", pub)
		conns = append(conns, c)
		if _, err := c.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
			continue
		}
		if status, _ := answerWithin(c, 5*time.Second); status == http.StatusServiceUnavailable {
			refused++
		}
	}
	if refused == 0 {
		t.Fatal("20 connections beyond a 1 MiB share: none refused")
	}
	t.Logf("%d of 20 extra connections refused", refused)

	// Another client is served throughout.
	k := newKey(t, "ed25519")
	ts := testServer{public: "http://" + pub, admin: "http://" + adm, store: st}
	if r := register(t, ts, "bystander", k); r.status != http.StatusCreated {
		t.Fatalf("register: %s", r.rawBody)
	}
	body := jsonReader(t, signed(t, k, crypto.Reading{WhIn: 1, Timestamp: now.Add(-time.Minute).UnixMilli()}))
	res, err := clientFrom("127.0.0.1").Post(ts.public+"/reportReading", "application/json", body)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("another client's report during the attack: %d", res.StatusCode)
	}

	first.Close()
	second.Close()
	for _, c := range conns {
		c.Close()
	}
	// All that is left in use is the room of the connection that asks.
	asking := fmt.Sprintf("\nsmartmeters_memory_budget_bytes_in_use %d\n", 16<<10+server.DefaultConfig().MaxHeaderBytes)
	deadline := time.Now().Add(5 * time.Second)
	for {
		m := get(t, ts.admin+"/metrics").rawBody
		if strings.Contains(m, asking) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("memory budget still in use 5 s after every connection closed:\n%s", grepLines(m, "smartmeters_memory_budget"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestSlowBodiesDoNotStarve has one address open more connections than
// there are report slots, each announcing a small body and sending none,
// while meters on another address report: with the defaults, at least 95 %
// of theirs are stored.
func TestSlowBodiesDoNotStarve(t *testing.T) {
	st := store.New(dbtest.SQLite(t).OpenMigrated(t))
	cfg := testConfig(nil)
	srv := newServer(t, cfg, st)
	pub, adm := serveForTest(t, srv)
	ts := testServer{public: "http://" + pub, admin: "http://" + adm, store: st}

	attackers := cfg.MaxConcurrentRequests + 100
	var conns []net.Conn
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	for range attackers {
		c := dialFrom(t, "127.0.0.2", pub)
		conns = append(conns, c)
		head := "POST /reportReading HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n"
		_, _ = c.Write([]byte(head))
	}

	const meters, each = 10, 5
	var (
		mu     sync.Mutex
		stored int
		wg     sync.WaitGroup
	)
	client := clientFrom("127.0.0.1")
	for m := range meters {
		k := newKey(t, "ed25519")
		if r := register(t, ts, fmt.Sprint("honest-", m), k); r.status != http.StatusCreated {
			t.Fatalf("register: %s", r.rawBody)
		}
		wg.Go(func() {
			for i := range int64(each) {
				body, err := trySigned(k, crypto.Reading{WhIn: i, Timestamp: now.Add(-time.Hour).UnixMilli() + i*1000})
				if err != nil {
					t.Error(err)
					return
				}
				res, err := client.Post(ts.public+"/reportReading", "application/json", strings.NewReader(mustJSON(body)))
				if err != nil {
					t.Error(err)
					return
				}
				res.Body.Close()
				if res.StatusCode == http.StatusCreated {
					mu.Lock()
					stored++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if want := meters * each * 95 / 100; stored < want {
		t.Fatalf("%d of %d honest readings stored while %d slow bodies were held; want at least %d", stored, meters*each, attackers, want)
	}
	t.Logf("%d of %d honest readings stored while %d slow bodies were held", stored, meters*each, attackers)
}

// mustJSON encodes v, which cannot fail for the test's plain types.
func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// waitInUse waits until the memory budget holds at least n bytes.
func waitInUse(t *testing.T, admin string, n int64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		for _, line := range strings.Split(get(t, admin+"/metrics").rawBody, "\n") {
			var v float64
			if _, err := fmt.Sscanf(line, "smartmeters_memory_budget_bytes_in_use %g", &v); err == nil && int64(v) >= n {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the memory budget did not reach %d bytes in use", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
