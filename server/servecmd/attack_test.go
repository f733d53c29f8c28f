package servecmd_test

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkAttackRSS runs `smartmeters serve` with its defaults on SQLite
// and attacks it from one address as the abuse review did, printing the
// server's resident memory before, during and after:
//
//   - bodies: 1,000 connections to /reportReadings, each announcing a body
//     of 3 MB and sending all of it but the last byte, then holding on;
//   - headers: 600 connections, each sending 1 MB of headers.
//
// The server binary is built from this tree, or taken from
// SMARTMETERS_ATTACK_BINARY (to measure another build the same way):
//
//	go test ./server/servecmd -run XXX -bench BenchmarkAttackRSS -benchtime 1x
func BenchmarkAttackRSS(b *testing.B) {
	bin := os.Getenv("SMARTMETERS_ATTACK_BINARY")
	if bin == "" {
		bin = buildBinary(b)
	}
	for range b.N {
		pub := freePort(b)
		cmd := exec.Command(bin, "serve", "--database-url", "sqlite:"+filepath.Join(b.TempDir(), "attack.db"),
			"--listen", pub, "--admin-listen", freePort(b), "--log-format", "json")
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		waitHealthy(b, "http://"+pub)
		rss := func() int64 { return procStatusKB(b, cmd.Process.Pid, "VmRSS") }
		b.Logf("idle: RSS %d MB", rss()>>10)

		for _, attack := range []struct {
			name  string
			conns int
			send  func(c net.Conn) error
		}{
			{"bodies", 1000, func(c net.Conn) error {
				const size = 3_000_000
				head := fmt.Sprintf("POST /reportReadings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", size)
				if _, err := c.Write([]byte(head)); err != nil {
					return err
				}
				chunk := make([]byte, 64<<10)
				for i := range chunk {
					chunk[i] = ' '
				}
				for sent := 0; sent < size-1; {
					n := min(len(chunk), size-1-sent)
					if _, err := c.Write(chunk[:n]); err != nil {
						return err
					}
					sent += n
				}
				return nil
			}},
			{"headers", 600, func(c net.Conn) error {
				if _, err := c.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n")); err != nil {
					return err
				}
				line := "X-Pad: " + strings.Repeat("a", 1000) + "\r\n"
				for range 1000 {
					if _, err := c.Write([]byte(line)); err != nil {
						return err
					}
				}
				return nil
			}},
		} {
			var (
				wg            sync.WaitGroup
				conns         = make(chan net.Conn, attack.conns)
				held, refused atomic.Int64
			)
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}, Timeout: 10 * time.Second}
			for range attack.conns {
				wg.Go(func() {
					c, err := d.Dial("tcp", pub)
					if err != nil {
						refused.Add(1)
						return
					}
					conns <- c
					_ = c.SetDeadline(time.Now().Add(20 * time.Second))
					if err := attack.send(c); err != nil {
						refused.Add(1)
						return
					}
					_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
					if res, err := http.ReadResponse(bufio.NewReader(c), nil); err == nil {
						res.Body.Close()
						refused.Add(1)
						return
					}
					held.Add(1)
				})
			}
			wg.Wait()
			during := rss()
			close(conns)
			for c := range conns {
				c.Close()
			}
			time.Sleep(2 * time.Second)
			after := rss()
			time.Sleep(10 * time.Second)
			later := rss()
			b.Logf("%s attack, %d connections: %d held, %d answered or cut off; RSS %d MB during, %d MB 2 s after, %d MB 12 s after; peak so far %d MB",
				attack.name, attack.conns, held.Load(), refused.Load(), during>>10, after>>10, later>>10, procStatusKB(b, cmd.Process.Pid, "VmHWM")>>10)
			b.ReportMetric(float64(during)/1024, attack.name+"-rss-during-MB")
			b.ReportMetric(float64(later)/1024, attack.name+"-rss-after-MB")
		}
		b.ReportMetric(float64(procStatusKB(b, cmd.Process.Pid, "VmHWM"))/1024, "peak-rss-MB")
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	}
}

// waitHealthy waits until base answers /healthz.
func waitHealthy(tb testing.TB, base string) {
	tb.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		res, err := http.Get(base + "/healthz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s not healthy after 15 s: %v", base, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// procStatusKB reads a kB field of /proc/PID/status.
func procStatusKB(tb testing.TB, pid int, field string) int64 {
	tb.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		tb.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				tb.Fatal(err)
			}
			return n
		}
	}
	tb.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}
