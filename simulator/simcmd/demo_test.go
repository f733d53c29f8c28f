package simcmd_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"smartmeters/simulator"
)

// TestDemo runs the server and the simulator in one process and checks the
// JSON summary against what the database holds.
func TestDemo(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp) // the demo keeps its database in a new temporary directory
	var stdout, stderr bytes.Buffer
	args := []string{"smartmeters", "demo", "--meters", "5", "--interval", "200ms", "--readings", "2",
		"--key-type", "ed25519", "--json"}
	if code := run(context.Background(), args, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, &stdout, &stderr)
	}
	var sum simulator.Summary
	dec := json.NewDecoder(&stdout)
	if err := dec.Decode(&sum); err != nil {
		t.Fatalf("stdout is not a JSON summary: %v\n%s", err, stdout.String())
	}
	if dec.More() {
		t.Errorf("stdout holds more than one JSON value")
	}
	if sum.Meters != 5 || sum.Registered != 5 || sum.Attempted != 10 || sum.Accepted != 10 ||
		sum.Rejected != 0 || sum.Failed != 0 || sum.KeyType != "ed25519" {
		t.Errorf("summary %+v: want 5 ed25519 meters, 10 readings accepted", sum)
	}
	for _, want := range []string{"readings        10 attempted, 10 accepted", "data            " + tmp, "select count(*) from readings"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, &stderr)
		}
	}
	entries, err := os.ReadDir(tmp)
	if err != nil || len(entries) != 1 || !strings.HasPrefix(entries[0].Name(), "smartmeters-demo-") {
		t.Errorf("temporary directory holds %v (%v), want one smartmeters-demo-* directory", entries, err)
	}
}

// TestDemoPrintsAddressesFirst runs a demo that reports until interrupted
// and is kept running: the dashboard and API addresses come before
// anything else, and they answer.
func TestDemoPrintsAddressesFirst(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	out, w := io.Pipe()
	done := make(chan int, 1)
	var stderr bytes.Buffer
	go func() {
		args := []string{"smartmeters", "demo", "--meters", "2", "--interval", "1s", "--readings", "0", "--keep", "--key-type", "ed25519"}
		done <- run(ctx, args, w, &stderr)
		w.Close()
	}()
	sc := bufio.NewScanner(out)
	var lines []string
	for len(lines) < 2 && sc.Scan() {
		lines = append(lines, sc.Text())
	}
	go io.Copy(io.Discard, out)
	dashboard := regexp.MustCompile(`^dashboard +(http://127\.0\.0\.1:\d+)/$`).FindStringSubmatch(lines[0])
	api := regexp.MustCompile(`^api +public (http://127\.0\.0\.1:\d+), admin (http://127\.0\.0\.1:\d+)$`).FindStringSubmatch(lines[1])
	if dashboard == nil || api == nil || api[2] != dashboard[1] {
		t.Fatalf("the demo begins with\n%s\nwant the dashboard's and the API's addresses", strings.Join(lines, "\n"))
	}
	for _, u := range []string{dashboard[1] + "/", api[1] + "/healthz"} {
		res, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %s", u, res.Status)
		}
	}
	// Once readings are stored, an interrupt ends the demo as a success.
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		var fleet struct{ ReadingsStored int64 }
		res, err := http.Get(dashboard[1] + "/fleet")
		if err == nil {
			err = json.NewDecoder(res.Body).Decode(&fleet)
			res.Body.Close()
		}
		if err == nil && fleet.ReadingsStored > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no reading stored after a minute (%v); stderr: %s", err, &stderr)
		}
	}
	stop()
	if code := <-done; code != 0 {
		t.Errorf("exit %d after an interrupt; stderr: %s", code, &stderr)
	}
}

// TestDemoFailsCleanly makes the demo fail before and after it creates
// its temporary directory: each failure is one line, and no directory is
// left behind.
func TestDemoFailsCleanly(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { taken.Close() })
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"ListenInUse", []string{"--listen", taken.Addr().String()}, "--listen " + taken.Addr().String() + ": listen tcp"},
		{"AdminListenInUse", []string{"--admin-listen", taken.Addr().String()}, "address already in use"},
		{"KeysFileUnwritable", []string{"--keys", "/nonexistent/dir/k.pem"}, "keys file /nonexistent/dir/k.pem cannot be written"},
		{"BadDatabaseURL", []string{"--database-url", "mysql://x"}, "--database-url: bad database URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tmp := t.TempDir()
			t.Setenv("TMPDIR", tmp)
			var stdout, stderr bytes.Buffer
			args := append([]string{"smartmeters", "demo", "--meters", "1", "--readings", "1", "--key-type", "ed25519"}, tt.args...)
			if code := run(context.Background(), args, &stdout, &stderr); code != 1 {
				t.Fatalf("exit %d, want 1\nstdout: %s\nstderr: %s", code, &stdout, &stderr)
			}
			last := stderr.String()[strings.LastIndex(strings.TrimSuffix(stderr.String(), "\n"), "\n")+1:]
			if !strings.HasPrefix(last, "smartmeters: ") || !strings.Contains(last, tt.want) {
				t.Errorf("stderr ends %q, want a line containing %q", last, tt.want)
			}
			if strings.Contains(stdout.String(), "data ") {
				t.Errorf("stdout points at data that is not there:\n%s", &stdout)
			}
			if entries, err := os.ReadDir(tmp); err != nil || len(entries) != 0 {
				t.Errorf("the demo left %v (%v) in the temporary directory", entries, err)
			}
		})
	}
}
