package simcmd_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"smartmeters/simulator/simcmd"
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
		{"UnknownFlag", []string{"--bogus"}, 2, "flag provided but not defined: -bogus"},
		{"ExtraArgument", []string{"now"}, 2, `unexpected argument "now"`},
		{"CorruptKeysFile", []string{"--keys", corrupt}, 1, "keys file " + corrupt + ": line 1: PEM block is truncated"},
		{"DemoMetersZero", nil, 2, "--meters 0: must be at least 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append(append([]string{"smartmeters", "simulate"}, nowhere...), tt.args...)
			if tt.name == "DemoMetersZero" {
				args = []string{"smartmeters", "demo", "--meters", "0"}
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
