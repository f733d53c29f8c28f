package simcmd_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"smartmeters/db/dbtest"
	"smartmeters/server"
	"smartmeters/simulator/simcmd"
	"smartmeters/store"
)

// TestSimulateFlags runs serially: urfave/cli writes its global help flag
// on every run.
func TestSimulateFlags(t *testing.T) {
	corrupt := filepath.Join(t.TempDir(), "corrupt.pem")
	if err := os.WriteFile(corrupt, []byte("-----BEGIN PRIVATE KEY-----\nUsername: m\n\nAAA"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Nothing listens on port 1: no case may get as far as the network.
	nowhere := []string{"--server", "http://127.0.0.1:1", "--admin", "http://127.0.0.1:1"}
	tests := []struct {
		name     string
		args     []string
		wantCode int
		want     string
	}{
		{"MetersZero", []string{"--meters", "0"}, 2, "--meters 0: must be at least 1"},
		{"IntervalZero", []string{"--interval", "0"}, 2, "--interval 0s: must be positive"},
		{"IntervalNotDuration", []string{"--interval", "often"}, 2, `invalid value "often" for flag -interval`},
		{"ReadingsNegative", []string{"--readings", "-1"}, 2, "--readings -1: must be 0 (until interrupted) or more"},
		{"KeyType", []string{"--key-type", "dsa"}, 2, `--key-type "dsa": want one of rsa2048, ecdsa-p256, ecdsa-p384, ed25519`},
		{"TamperTooLarge", []string{"--tamper", "2"}, 2, "--tamper 2: must be a fraction from 0 to 1"},
		{"TamperNegative", []string{"--tamper", "-0.1"}, 2, "--tamper -0.1: must be a fraction from 0 to 1"},
		{"Concurrency", []string{"--concurrency", "0"}, 2, "--concurrency 0: must be at least 1"},
		{"ServerURL", []string{"--server", "localhost:8080"}, 2, `--server "localhost:8080": no scheme: add http:// (http://localhost:8080) or https://`},
		{"ServerScheme", []string{"--server", "ftp://localhost:8080"}, 2, `--server "ftp://localhost:8080": want an http:// or https:// URL`},
		{"MQTTWithoutScheme", []string{"--mqtt", "127.0.0.1:1883"}, 2, `--mqtt "127.0.0.1:1883": no scheme: add mqtt:// (mqtt://127.0.0.1:1883) or mqtts://`},
		{"MQTTScheme", []string{"--mqtt", "tcp://127.0.0.1:1883"}, 2, `--mqtt "tcp://127.0.0.1:1883": want mqtt://host:port or mqtts://host:port`},
		{"UnknownFlag", []string{"--bogus"}, 2, "flag provided but not defined: -bogus"},
		{"ExtraArgument", []string{"now"}, 2, `unexpected argument "now"`},
		{"CorruptKeysFile", []string{"--keys", corrupt}, 1, "keys file " + corrupt + ": line 1: PEM block is truncated"},
		{"DemoMetersZero", []string{"demo", "--meters", "0"}, 2, "--meters 0: must be at least 1"},
		{"DemoBadDatabaseURL", []string{"demo", "--database-url", "mysql://x"}, 1, `--database-url: bad database URL: "mysql://x"`},
		// bench: the same mistakes, the same exit status.
		{"BenchMetersZero", []string{"bench", "--meters", "0"}, 2, "--meters 0: must be at least 1 (see --help)"},
		{"BenchBatchZero", []string{"bench", "--batch", "0"}, 2, "--batch 0: must be at least 1 (see --help)"},
		{"BenchConcurrencyZero", []string{"bench", "--concurrency", "0"}, 2, "--concurrency 0: must be at least 1 (see --help)"},
		{"BenchTotalNegative", []string{"bench", "--total", "-1"}, 2, "--total -1: must be 0 (sized from --duration) or more"},
		{"BenchNoDuration", []string{"bench", "--duration", "0s"}, 2, "--duration 0s: must be positive, unless --total is given"},
		{"BenchKeyType", []string{"bench", "--key-type", "dsa"}, 2, `--key-type "dsa": want one of rsa2048, ecdsa-p256, ecdsa-p384, ed25519`},
		{"BenchServerURL", []string{"bench", "--server", "localhost:8080"}, 2, `--server "localhost:8080": no scheme: add http:// (http://localhost:8080) or https://`},
		{"BenchMQTTWithoutScheme", []string{"bench", "--mqtt", "127.0.0.1:1883"}, 2, `--mqtt "127.0.0.1:1883": no scheme: add mqtt:// (mqtt://127.0.0.1:1883) or mqtts://`},
		{"BenchExtraArgument", []string{"bench", "now"}, 2, `unexpected argument "now"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append(append([]string{"smartmeters", "simulate"}, nowhere...), tt.args...)
			switch cmd := tt.args[0]; cmd {
			case "demo":
				args = append([]string{"smartmeters", cmd}, tt.args[1:]...)
			case "bench":
				args = append(append([]string{"smartmeters", cmd}, nowhere...), tt.args[1:]...)
			}
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), args, &stdout, &stderr)
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.wantCode, &stdout, &stderr)
			}
			msg := stderr.String()
			if !strings.Contains(msg, tt.want) || !strings.HasPrefix(msg, "smartmeters: ") || strings.Count(msg, "\n") != 1 {
				t.Errorf("stderr %q: want one line containing %q", msg, tt.want)
			}
			if stdout.Len() > 0 {
				t.Errorf("stdout %q: want nothing before the failure", &stdout)
			}
		})
	}
}

// run runs args as the smartmeters binary would with this package's
// commands: a failure is one line on stderr and an exit status, 2 for a
// malformed command line.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	usage := func(_ *cli.Context, err error, _ bool) error { return cli.Exit(err.Error()+" (see --help)", 2) }
	app := &cli.App{
		Name: "smartmeters", Writer: stdout, ErrWriter: stderr,
		Commands:       []*cli.Command{simcmd.Simulate(), simcmd.Demo(), simcmd.Bench()},
		ExitErrHandler: func(*cli.Context, error) {},
		OnUsageError:   usage,
	}
	for _, cmd := range app.Commands {
		cmd.OnUsageError = usage
	}
	err := app.RunContext(ctx, args)
	if err == nil {
		return 0
	}
	fmt.Fprintf(stderr, "smartmeters: %v\n", err)
	var exit cli.ExitCoder
	if errors.As(err, &exit) && exit.ExitCode() != 0 {
		return exit.ExitCode()
	}
	return 1
}

// newServer serves the real server on a fresh SQLite database: the admin
// listener over HTTP, the public one over HTTPS with a certificate no
// system CA signed when tlsPublic is set.
func newServer(t *testing.T, tlsPublic bool) (public, admin string) {
	t.Helper()
	srv, err := server.New(server.DefaultConfig(), server.StoresOf(store.New(dbtest.SQLite(t).OpenMigrated(t))), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	pub := httptest.NewUnstartedServer(srv.PublicHandler())
	if tlsPublic {
		pub.StartTLS()
	} else {
		pub.Start()
	}
	t.Cleanup(pub.Close)
	adm := httptest.NewServer(srv.AdminHandler())
	t.Cleanup(adm.Close)
	return pub.URL, adm.URL
}

// closedPort returns an address of the loopback interface where nothing
// listens.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// TestSimulateSaysWhyReadingsFailed registers a meter whose reading then
// fails for good (the public listener's certificate is refused, which no
// retry mends): the summary and the final error name the cause, not only
// the count.
func TestSimulateSaysWhyReadingsFailed(t *testing.T) {
	public, admin := newServer(t, true)
	var stdout, stderr bytes.Buffer
	args := []string{"smartmeters", "simulate", "--server", public, "--admin", admin,
		"--meters", "1", "--readings", "1", "--interval", "10ms", "--key-type", "ed25519"}
	if code := run(context.Background(), args, &stdout, &stderr); code != 1 {
		t.Fatalf("exit %d, want 1\nstdout: %s\nstderr: %s", code, &stdout, &stderr)
	}
	const want = `1 of 1 readings were not accepted (failed 1; last error: Post "` + "https://"
	last := stderr.String()[strings.LastIndex(strings.TrimSuffix(stderr.String(), "\n"), "\n")+1:]
	for _, out := range []string{last, stdout.String()} {
		if !strings.Contains(out, want) || !strings.Contains(out, "certificate signed by unknown authority") {
			t.Errorf("%q does not say why the reading failed: want %q… and the certificate error", out, want)
		}
	}
	if !strings.HasPrefix(last, "smartmeters: ") || !strings.HasSuffix(last, ")\n") {
		t.Errorf("the failure %q is not one line", last)
	}
}

// TestBenchSaysWhyReadingsFailed points bench at a public port where
// nothing listens: its progress names the cause of the errors it counts.
func TestBenchSaysWhyReadingsFailed(t *testing.T) {
	_, admin := newServer(t, false)
	closed := closedPort(t)
	var stdout, stderr bytes.Buffer
	args := []string{"smartmeters", "bench", "--server", "http://" + closed, "--admin", admin,
		"--meters", "2", "--total", "4", "--concurrency", "1"}
	// bench counts errors as a measurement; it fails only when it cannot run.
	if code := run(context.Background(), args, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, &stdout, &stderr)
	}
	want := `4 errors (last error: Post "http://` + closed + `/reportReading": dial tcp ` + closed + ": connect: connection refused)\n"
	if !strings.Contains(stderr.String(), want) {
		t.Errorf("stderr does not say why the readings failed: want %q in\n%s", want, &stderr)
	}
	if !strings.Contains(stdout.String(), "errors=4 ") {
		t.Errorf("stdout lacks errors=4:\n%s", &stdout)
	}
}
