package verifycmd_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"smartmeters/crypto"
	"smartmeters/crypto/verifycmd"
)

// exportCSV writes an export of n readings signed by a fresh key of type kt
// and returns its path; edit may change a row's fields before it is written.
func exportCSV(t *testing.T, kt crypto.KeyType, n int, edit func(row int, fields []string)) string {
	t.Helper()
	k, err := crypto.GenerateKey(kt, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.WriteString("meter_id,username,algorithm,base64_public_key,timestamp,wh_in,wh_out,base64_signature,received_at\n")
	for i := range n {
		r := crypto.Reading{WhIn: int64(100 * i), WhOut: int64(i), Timestamp: 1_790_000_000_000 + int64(i)*60_000}
		sig, err := k.Sign(r)
		if err != nil {
			t.Fatal(err)
		}
		fields := []string{"7", "alice", k.Public().Algorithm(), k.Public().Base64(),
			fmt.Sprint(r.Timestamp), fmt.Sprint(r.WhIn), fmt.Sprint(r.WhOut),
			base64.StdEncoding.EncodeToString(sig), "2026-09-21T12:00:00Z"}
		if edit != nil {
			edit(i, fields)
		}
		b.WriteString(strings.Join(fields, ",") + "\n")
	}
	path := filepath.Join(t.TempDir(), "export.csv")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestVerify(t *testing.T) {
	writeFile := func(t *testing.T, content string) string {
		t.Helper()
		path := filepath.Join(t.TempDir(), "x.csv")
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	tests := []struct {
		name       string
		file       func(t *testing.T) string
		wantCode   int
		wantStdout []string // substrings
		wantStderr string   // substring of the one stderr line; "" means empty
	}{
		{"OK", func(t *testing.T) string { return exportCSV(t, "ecdsa-p256", 5, nil) },
			0, []string{"5 rows, 5 verified, 0 failed"}, ""},
		{"OKRSA", func(t *testing.T) string { return exportCSV(t, "rsa2048", 2, nil) },
			0, []string{"2 rows, 2 verified, 0 failed"}, ""},
		{"ErrTampered", func(t *testing.T) string {
			return exportCSV(t, "ed25519", 4, func(row int, f []string) {
				switch row {
				case 1:
					f[5] = "99999" // wh_in changed after signing
				case 3:
					f[7] = "not base64!"
				}
			})
		}, 1, []string{"line 3: ", "line 5: ", "4 rows, 2 verified, 2 failed"}, "2 of 4 rows failed verification"},
		{"ErrNotInteger", func(t *testing.T) string {
			return exportCSV(t, "ed25519", 1, func(_ int, f []string) { f[4] = "yesterday" })
		}, 1, []string{`line 2: timestamp "yesterday" is not an integer`}, "1 of 1 rows failed"},
		{"ErrBadKey", func(t *testing.T) string {
			return exportCSV(t, "ed25519", 1, func(_ int, f []string) { f[3] = "AAAA" })
		}, 1, []string{"line 2: public key: "}, "1 of 1 rows failed"},
		{"ErrMissingColumn", func(t *testing.T) string { return writeFile(t, "meter_id,timestamp\n1,2\n") },
			1, nil, `header lacks column "base64_public_key"`},
		{"ErrEmpty", func(t *testing.T) string { return writeFile(t, "") }, 1, nil, "empty file"},
		{"ErrNotCSV", func(t *testing.T) string { return writeFile(t, "a,\"b\nc") }, 1, nil, "not a CSV file"},
		{"ErrNoFile", func(t *testing.T) string { return filepath.Join(t.TempDir(), "nope.csv") }, 1, nil, "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), []string{"smartmeters", "verify", tt.file(t)}, &stdout, &stderr)
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.wantCode, &stdout, &stderr)
			}
			for _, want := range tt.wantStdout {
				if !strings.Contains(stdout.String(), want) {
					t.Errorf("stdout %q lacks %q", &stdout, want)
				}
			}
			if tt.wantStderr == "" && stderr.Len() != 0 {
				t.Errorf("stderr %q, want none", &stderr)
			}
			if tt.wantStderr != "" {
				if !strings.Contains(stderr.String(), tt.wantStderr) {
					t.Errorf("stderr %q lacks %q", &stderr, tt.wantStderr)
				}
				if n := strings.Count(strings.TrimSpace(stderr.String()), "\n"); n != 0 {
					t.Errorf("stderr has %d lines, want one: %q", n+1, &stderr)
				}
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
		Commands:       []*cli.Command{verifycmd.Command()},
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
