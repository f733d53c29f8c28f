package main

import (
	"bytes"
	"context"
	"encoding/pem"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"smartmeters/buildinfo"
	"smartmeters/db/dbtest"
	"smartmeters/server"
	"smartmeters/store"
)

func TestRun(t *testing.T) {
	migrations, err := os.ReadDir("db/migrations/sqlite")
	if err != nil || len(migrations) == 0 {
		t.Fatalf("migrations: %v", err)
	}
	latestFile := migrations[len(migrations)-1].Name()
	latest := strconv.Itoa(len(migrations))
	dir := t.TempDir()
	dbURL := "sqlite:" + filepath.Join(dir, "cli.db")
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string // substring
		wantStderr string // substring; when set, stderr must be exactly one line
	}{
		{"Help", []string{"--help"}, 0, "serve", ""},
		{"Version", []string{"version"}, 0, "smartmeters ", ""},
		{"UnknownCommand", []string{"bogus"}, 2, "", `unknown command "bogus"`},
		{"UnknownCommandSuggestion", []string{"sreve"}, 2, "", `unknown command "sreve". Did you mean "serve"? (see --help)`},
		{"UnknownSubcommand", []string{"migrate", "--database-url", dbURL, "sttaus"}, 2, "", `unknown migrate subcommand "sttaus". Did you mean "status"?`},
		{"UnknownSubcommandNoSuggestion", []string{"rollups", "x"}, 2, "", `unknown rollups subcommand "x" (see --help)`},
		{"UnknownHelpTopic", []string{"help", "sreve"}, 2, "", `unknown command "sreve". Did you mean "serve"?`},
		{"HelpCommand", []string{"help"}, 0, "COMMANDS:", ""},
		{"HelpTopic", []string{"help", "serve"}, 0, "smartmeters serve - ", ""},
		{"SubcommandHelp", []string{"migrate"}, 0, "smartmeters migrate - ", ""},
		{"UnknownFlag", []string{"serve", "--bogus"}, 2, "", "flag provided but not defined: -bogus"},
		{"BadLogFormat", []string{"serve", "--database-url", dbURL, "--log-format", "xml"}, 1, "", `--log-format "xml": use text or json`},
		{"BadAdminAllow", []string{"serve", "--database-url", dbURL, "--admin-allow", "10.0.0/8"}, 1, "", "not a CIDR"},
		{"BadMinRSABits", []string{"serve", "--database-url", dbURL, "--min-rsa-bits", "512"}, 1, "", "--min-rsa-bits 512"},
		{"BadSkew", []string{"serve", "--database-url", dbURL, "--max-clock-skew", "-1s"}, 1, "", "--max-clock-skew"},
		{"BadDatabaseURL", []string{"serve", "--database-url", "mysql://x"}, 1, "", "bad database URL"},
		{"SchemaBehind", []string{"serve", "--database-url", dbURL, "--migrate=false"}, 1, "", "run `smartmeters migrate up` first"},
		{"MigrateVersionEmpty", []string{"migrate", "--database-url", dbURL, "version"}, 0, "database 0, binary " + latest, ""},
		{"MigrateUp", []string{"migrate", "--database-url", dbURL, "up"}, 0, "schema at version " + latest, ""},
		{"MigrateUpAgain", []string{"migrate", "--database-url", dbURL, "up"}, 0, "schema at version " + latest, ""},
		{"MigrateStatus", []string{"migrate", "--database-url", dbURL, "status"}, 0, "00002_create_readings.sql", ""},
		{"MigrateDown", []string{"migrate", "--database-url", dbURL, "down"}, 0, "rolled back " + latestFile, ""},
		{"MigrateUpFlagAfter", []string{"migrate", "up", "--database-url", dbURL}, 0, "schema at version " + latest, ""},
		{"MigrateStatusFlagAfter", []string{"migrate", "status", "--database-url", dbURL}, 0, latestFile + "\n", ""},
		{"RollupsRebuild", []string{"rollups", "rebuild", "--database-url", dbURL}, 0, "rebuilt the rollups", ""},
		{"RollupsRebuildRange", []string{"rollups", "rebuild", "--database-url", dbURL, "--from", "2026-01-01T00:00:00Z", "--to", "2026-02-01T00:00:00Z"}, 0, "rebuilt the rollups from 2026-01-01T00:00:00Z to 2026-02-01T00:00:00Z", ""},
		{"RollupsRebuildEmptyRange", []string{"rollups", "rebuild", "--database-url", dbURL, "--from", "2026-02-01T00:00:00Z", "--to", "2026-01-01T00:00:00Z"}, 2, "", "--to must be after --from"},
		{"RollupsRebuildBadTime", []string{"rollups", "rebuild", "--database-url", dbURL, "--from", "yesterday"}, 2, "", "invalid value"},
		{"RollupsRebuildExtraArg", []string{"rollups", "rebuild", "--database-url", dbURL, "now"}, 2, "", `unexpected argument "now"`},
		{"MigrateVersionFlagAfterWins", []string{"migrate", "--database-url", "mysql://x", "version", "--database-url", dbURL}, 0, "database " + latest, ""},
		{"MigrateFlagBeforeStillRead", []string{"migrate", "--database-url", "mysql://x", "version"}, 1, "", "bad database URL"},
		{"BadRetention", []string{"serve", "--database-url", dbURL, "--retention", "-1h"}, 1, "", "--retention -1h0m0s: must not be negative"},
		{"NoCommitWorkers", []string{"serve", "--database-url", dbURL, "--commit-workers", "0"}, 1, "", "--commit-workers 0: must be at least 1"},
		{"TooManyCommitWorkers", []string{"serve", "--database-url", dbURL, "--commit-workers", "9"}, 1, "", "--commit-workers 9: at most 8"},
		{"RollupRetentionShort", []string{"serve", "--database-url", dbURL, "--retention", "720h", "--rollup-retention", "24h"}, 1, "", "--rollup-retention 24h0m0s is shorter than --retention 720h0m0s"},
		{"BadRollupEvery", []string{"serve", "--database-url", dbURL, "--rollup-every", "0s"}, 1, "", "--rollup-every 0s: must be positive"},
		{"HealthcheckRefused", []string{"healthcheck", "--url", "http://127.0.0.1:1/readyz"}, 1, "", "connection refused"},
		{"TLSCertWithoutKey", []string{"serve", "--database-url", dbURL, "--tls-cert", "cert.pem"}, 1, "", "--tls-cert and --tls-key go together"},
		{"ClientCAWithoutTLS", []string{"serve", "--database-url", dbURL, "--admin-client-ca", "ca.pem"}, 1, "", "--admin-client-ca needs --tls-cert"},
		{"BadReadTimeout", []string{"serve", "--database-url", dbURL, "--read-header-timeout", "0s"}, 1, "", "--read-header-timeout 0s: must be positive"},
		{"BadRate", []string{"serve", "--database-url", dbURL, "--rate-per-key", "-1"}, 1, "", "--rate-per-key -1: must be 0 (no limit) or more"},
		{"MissingTLSFiles", []string{"serve", "--database-url", dbURL, "--tls-cert", "/nonexistent/cert.pem", "--tls-key", "/nonexistent/key.pem"}, 1, "", "load TLS certificate"},
		{"MigrateExtraArg", []string{"migrate", "--database-url", dbURL, "up", "now"}, 2, "", `unexpected argument "now"`},
		{"MigrateBadFlag", []string{"migrate", "up", "--bogus"}, 2, "", "flag provided but not defined"},
		{"BadMemoryBudget", []string{"serve", "--database-url", dbURL, "--memory-budget", "lots"}, 1, "", `--memory-budget "lots": want a size such as 64MiB`},
		{"ListenPortOnly", []string{"serve", "--database-url", dbURL, "--listen", "8080"}, 1, "", "--listen 8080: a port alone is not an address: use :8080"},
		{"AdminListenPortOnly", []string{"demo", "--admin-listen", "8081"}, 1, "", "--admin-listen 8081: a port alone is not an address: use :8081"},
		{"DurationWithoutUnit", []string{"simulate", "--interval", "5"}, 2, "", "--interval 5: a duration needs a unit: use 5s"},
		{"SubcommandDurationWithoutUnit", []string{"healthcheck", "--timeout", "1.5"}, 2, "", "--timeout 1.5: a duration needs a unit: use 1.5s"},
		{"IntegerIsNoDuration", []string{"simulate", "--meters", "1.5"}, 2, "", `invalid value "1.5" for flag -meters`},
		{"ServerWithoutScheme", []string{"simulate", "--server", "localhost:8080"}, 2, "", "no scheme: add http:// (http://localhost:8080)"},
		{"BenchAdminWithoutScheme", []string{"bench", "--admin", "127.0.0.1:8081"}, 2, "", "no scheme: add http:// (http://127.0.0.1:8081)"},
		{"BenchMetersZero", []string{"bench", "--meters", "0"}, 2, "", "--meters 0: must be at least 1"},
		{"BenchBatchZero", []string{"bench", "--batch", "0"}, 2, "", "--batch 0: must be at least 1"},
		{"SimulateMQTTWithoutScheme", []string{"simulate", "--mqtt", "127.0.0.1:1883"}, 2, "", `--mqtt "127.0.0.1:1883": no scheme: add mqtt:// (mqtt://127.0.0.1:1883) or mqtts://`},
		{"HealthcheckNotAURL", []string{"healthcheck", "--url", "not-a-url"}, 2, "", "no scheme: add http:// (http://not-a-url)"},
		{"HealthcheckHelpTellsExitStatus", []string{"healthcheck", "--help"}, 0, "1 if it does not, 2 for a malformed command line", ""},
		{"HealthcheckWithoutScheme", []string{"healthcheck", "--url", "127.0.0.1:8080/readyz"}, 2, "", "no scheme: add http:// (http://127.0.0.1:8080/readyz)"},
		{"MissingCACert", []string{"healthcheck", "--url", "https://127.0.0.1:1/readyz", "--ca-cert", "/nonexistent/ca.pem"}, 1, "", "--ca-cert: open /nonexistent/ca.pem"},
		{"ServeMQTTWithoutScheme", []string{"serve", "--database-url", "sqlite:" + filepath.Join(dir, "never.db"), "--mqtt-broker", "127.0.0.1:1883"}, 1, "", `--mqtt-broker: MQTT broker "127.0.0.1:1883": no scheme: add mqtt:// (mqtt://127.0.0.1:1883) or mqtts://`},
		{"ServeMQTTNoPort", []string{"serve", "--database-url", "sqlite:" + filepath.Join(dir, "never.db"), "--mqtt-broker", "mqtt://127.0.0.1"}, 1, "", `want mqtt://host:port or mqtts://host:port`},
		{"ShareOverBudget", []string{"serve", "--database-url", dbURL, "--memory-budget", "1MiB", "--memory-per-address", "2MiB"}, 1, "", "--memory-per-address 2MiB is more than --memory-budget 1MiB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), append([]string{"smartmeters"}, tt.args...), &stdout, &stderr)
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.wantCode, &stdout, &stderr)
			}
			if !strings.Contains(stdout.String(), tt.wantStdout) {
				t.Errorf("stdout %q lacks %q", &stdout, tt.wantStdout)
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
	// A command line refused is refused before the store is opened.
	if _, err := os.Stat(filepath.Join(dir, "never.db")); !os.IsNotExist(err) {
		t.Errorf("a refused serve command line left never.db behind (%v)", err)
	}
}

// TestVersion checks that `version` and `--version` name this build, never
// the toolchain's placeholder "(devel)".
func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}} {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), append([]string{"smartmeters"}, args...), &stdout, &stderr); code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, &stderr)
		}
		out := stdout.String()
		if !strings.Contains(out, buildinfo.Version()) || !strings.Contains(out, runtime.Version()) || strings.Contains(out, "(devel)") {
			t.Errorf("%v printed %q, want the version %q and %s", args, out, buildinfo.Version(), runtime.Version())
		}
	}
}

// TestServeLogs runs serve until interrupted: it logs where its listeners
// and dashboard are when it starts, and a line when it has stopped.
func TestServeLogs(t *testing.T) {
	dbURL := "sqlite:" + filepath.Join(t.TempDir(), "serve.db")
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var stdout bytes.Buffer
	var stderr lockedBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"smartmeters", "serve", "--database-url", dbURL, "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"}, &stdout, &stderr)
	}()
	serving := regexp.MustCompile(`msg=serving public=(http://127\.0\.0\.1:\d+) admin=(http://127\.0\.0\.1:\d+) dashboard=(http://127\.0\.0\.1:\d+/)\n`)
	var m []string
	for deadline := time.Now().Add(time.Minute); m == nil; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no serving line in a minute:\n%s", stderr.String())
		}
		m = serving.FindStringSubmatch(stderr.String())
	}
	if m[3] != m[2]+"/" {
		t.Errorf("dashboard %s is not on the admin listener %s", m[3], m[2])
	}
	for _, u := range []string{m[1] + "/healthz", m[3]} {
		res, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %s", u, res.Status)
		}
	}
	stop()
	if code := <-done; code != 0 {
		t.Fatalf("exit %d after an interrupt:\n%s", code, stderr.String())
	}
	for _, want := range []string{"msg=\"shutting down\"", "msg=stopped\n"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("the log lacks %s:\n%s", want, stderr.String())
		}
	}
}

// TestServePortInUse starts serve on a port that is taken: it fails,
// naming the flag, before it creates the database.
func TestServePortInUse(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	path := filepath.Join(t.TempDir(), "never.db")
	for _, flag := range []string{"--listen", "--admin-listen"} {
		var stdout, stderr bytes.Buffer
		args := []string{"smartmeters", "serve", "--database-url", "sqlite:" + path, "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", flag, taken.Addr().String()}
		if code := run(context.Background(), args, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), flag+" "+taken.Addr().String()+": ") || !strings.Contains(stderr.String(), "address already in use") {
			t.Errorf("%s taken: exit %d, stderr %q", flag, code, &stderr)
		}
		if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("%s taken: the database file exists (%v)", flag, err)
		}
	}
}

// TestMissingSQLiteFile runs the commands that need an existing store on a
// SQLite path where no file is: each fails with one line naming the path,
// and leaves no file behind, where it used to create an empty database
// and report on that. `migrate up` creates the file.
func TestMissingSQLiteFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "typo.db")
	want := ": no such database file (`smartmeters migrate up` creates it)"
	tests := []struct {
		name string
		args []string
	}{
		{"MigrateStatus", []string{"migrate", "status", "--database-url", "sqlite:" + path}},
		{"MigrateVersion", []string{"migrate", "--database-url", "sqlite:" + path, "version"}},
		{"MigrateDown", []string{"migrate", "down", "--database-url", "sqlite:" + path}},
		{"MigrateDistribute", []string{"migrate", "distribute", "--database-url", "sqlite:" + path}},
		{"RollupsRebuild", []string{"rollups", "rebuild", "--database-url", "sqlite:" + path}},
		{"BarePath", []string{"migrate", "status", "--database-url", path}},
		{"FromEnvironment", []string{"migrate", "version"}},
	}
	t.Setenv("SMARTMETERS_DATABASE_URL", "sqlite:"+path)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), append([]string{"smartmeters"}, tt.args...), &stdout, &stderr)
			if code != 1 || !strings.Contains(stderr.String(), path+want) || strings.Count(stderr.String(), "\n") != 1 || stdout.Len() != 0 {
				t.Errorf("exit %d, stdout %q, stderr %q; want 1 and one line containing %q", code, &stdout, &stderr, path+want)
			}
			if entries, err := os.ReadDir(dir); err != nil || len(entries) != 0 {
				t.Errorf("left %v (%v) behind", entries, err)
			}
		})
	}

	// An empty file is an empty database, and migrate up creates one.
	empty := filepath.Join(dir, "empty.db")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"smartmeters", "migrate", "version", "--database-url", "sqlite:" + empty}, &stdout, &stderr); code != 0 || !strings.HasPrefix(stdout.String(), "database 0, binary ") {
		t.Errorf("version of an empty file: exit %d, stdout %q, stderr %q", code, &stdout, &stderr)
	}
	if code := run(context.Background(), []string{"smartmeters", "migrate", "up"}, &stdout, &stderr); code != 0 {
		t.Fatalf("migrate up: exit %d, stderr %q", code, &stderr)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("migrate up did not create the database: %v", err)
	}
}

// TestDocumentedFlagDefaults reads the flag tables of README's
// Configuration: where a row's default is written as code, it must be the
// default that --help shows, written the same way (`5m0s`, not `5m`), and
// the variables it names must be the flag's.
func TestDocumentedFlagDefaults(t *testing.T) {
	text, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	app := newApp(io.Discard, io.Discard)
	tables := map[string]*cli.Command{
		"### `serve`":                 app.Command("serve"),
		"### `migrate`":               app.Command("migrate"),
		"### `rollups rebuild`":       app.Command("rollups").Command("rebuild"),
		"### `simulate` (and `demo`)": app.Command("simulate"),
		"### `bench`":                 app.Command("bench"),
	}
	code := regexp.MustCompile("`([^`]*)`")
	codes := func(cell string) []string {
		var out []string
		for _, m := range code.FindAllStringSubmatch(cell, -1) {
			out = append(out, m[1])
		}
		return out
	}
	var cmd *cli.Command
	rows := 0
	for _, line := range strings.Split(string(text), "\n") {
		if strings.HasPrefix(line, "#") {
			cmd = tables[line]
			continue
		}
		cells := strings.Split(strings.Trim(line, "| "), " | ")
		if cmd == nil || len(cells) < 3 || !strings.HasPrefix(cells[0], "`--") {
			continue
		}
		var flags []cli.DocGenerationFlag
		for _, name := range codes(cells[0]) {
			if name, ok := strings.CutPrefix(name, "--"); ok {
				f, ok := findFlag(cmd, name).(cli.DocGenerationFlag)
				if !ok {
					t.Errorf("README documents --%s, which %s does not take", name, cmd.FullName())
					continue
				}
				flags = append(flags, f)
			}
		}
		// With several flags in a row, their defaults and variables are
		// listed in the same order; a lone flag's default is the first code
		// of its cell.
		defaults, vars := codes(cells[2]), codes(cells[1])
		for i, f := range flags {
			rows++
			if strings.HasPrefix(cells[2], "`") && (len(flags) == 1 || len(defaults) == len(flags)) {
				if want := strings.Trim(f.GetDefaultText(), `"`); defaults[i] != want {
					t.Errorf("%s --%s: README's default is `%s`, --help's %s", cmd.FullName(), f.Names()[0], defaults[i], want)
				}
			}
			if strings.HasPrefix(cells[1], "`") {
				if len(vars) != len(flags) || !slices.Equal(f.GetEnvVars(), vars[i:i+1]) {
					t.Errorf("%s --%s: README's variables are %v, the flag's %v", cmd.FullName(), f.Names()[0], vars, f.GetEnvVars())
				}
			}
		}
	}
	if rows < 50 {
		t.Fatalf("found only %d documented flags; is the extraction broken?", rows)
	}
}

// findFlag returns cmd's flag called name, or one of its subcommands'.
func findFlag(cmd *cli.Command, name string) cli.Flag {
	for _, f := range cmd.Flags {
		if slices.Contains(f.Names(), name) {
			return f
		}
	}
	for _, sub := range cmd.Subcommands {
		if f := findFlag(sub, name); f != nil {
			return f
		}
	}
	return nil
}

// lockedBuffer is a buffer that one goroutine writes while another reads.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestDurationFromEnvWithoutUnit gives a duration variable without a unit.
func TestDurationFromEnvWithoutUnit(t *testing.T) {
	t.Setenv("SMARTMETERS_INTERVAL", "5")
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"smartmeters", "simulate"}, &stdout, &stderr); code != 2 ||
		!strings.Contains(stderr.String(), "SMARTMETERS_INTERVAL=5 (--interval): a duration needs a unit: use 5s") {
		t.Errorf("exit %d, stderr %q", code, &stderr)
	}
}

// TestCACert serves both listeners over TLS with a certificate no system
// CA signed: healthcheck, simulate and bench fail at once on it (no
// retries) with a hint, and succeed with --ca-cert.
func TestCACert(t *testing.T) {
	srv, err := server.New(server.DefaultConfig(), server.StoresOf(store.New(dbtest.SQLite(t).OpenMigrated(t))), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	pub := httptest.NewTLSServer(srv.PublicHandler())
	t.Cleanup(pub.Close)
	adm := httptest.NewTLSServer(srv.AdminHandler())
	t.Cleanup(adm.Close)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: pub.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	commands := map[string][]string{
		"healthcheck": {"healthcheck", "--url", pub.URL + "/readyz"},
		"simulate":    {"simulate", "--server", pub.URL, "--admin", adm.URL, "--meters", "2", "--readings", "1", "--interval", "10ms", "--key-type", "ed25519"},
		"bench":       {"bench", "--server", pub.URL, "--admin", adm.URL, "--meters", "2", "--total", "4", "--concurrency", "2"},
	}
	for name, args := range commands {
		t.Run(name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), append([]string{"smartmeters"}, args...), &stdout, &stderr)
			if code != 1 || !strings.Contains(stderr.String(), "certificate signed by unknown authority") || strings.Contains(stderr.String(), "attempts") {
				t.Errorf("without --ca-cert: exit %d, stderr %q; want a certificate error at the first attempt", code, &stderr)
			}
			if !strings.Contains(stderr.String(), "--ca-cert") {
				t.Errorf("without --ca-cert: stderr %q does not mention --ca-cert", &stderr)
			}
			stdout.Reset()
			stderr.Reset()
			if code := run(context.Background(), append([]string{"smartmeters"}, append(args, "--ca-cert", ca)...), &stdout, &stderr); code != 0 {
				t.Errorf("with --ca-cert: exit %d\nstdout: %s\nstderr: %s", code, &stdout, &stderr)
			}
		})
	}
}
