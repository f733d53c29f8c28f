package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"smartmeters/buildinfo"
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
		{"UnknownCommand", []string{"bogus"}, 3, "", "No help topic for 'bogus'"},
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
		{"MigrateVersionFlagAfterWins", []string{"migrate", "--database-url", "mysql://x", "version", "--database-url", dbURL}, 0, "database " + latest, ""},
		{"MigrateFlagBeforeStillRead", []string{"migrate", "--database-url", "mysql://x", "version"}, 1, "", "bad database URL"},
		{"BadRetention", []string{"serve", "--database-url", dbURL, "--retention", "-1h"}, 1, "", "--retention -1h0m0s: must not be negative"},
		{"HealthcheckRefused", []string{"healthcheck", "--url", "http://127.0.0.1:1/readyz"}, 1, "", "connection refused"},
		{"TLSCertWithoutKey", []string{"serve", "--database-url", dbURL, "--tls-cert", "cert.pem"}, 1, "", "--tls-cert and --tls-key go together"},
		{"ClientCAWithoutTLS", []string{"serve", "--database-url", dbURL, "--admin-client-ca", "ca.pem"}, 1, "", "--admin-client-ca needs --tls-cert"},
		{"BadReadTimeout", []string{"serve", "--database-url", dbURL, "--read-header-timeout", "0s"}, 1, "", "--read-header-timeout 0s: must be positive"},
		{"BadRate", []string{"serve", "--database-url", dbURL, "--rate-per-key", "-1"}, 1, "", "--rate-per-key -1: must be 0 (no limit) or more"},
		{"MissingTLSFiles", []string{"serve", "--database-url", dbURL, "--tls-cert", "/nonexistent/cert.pem", "--tls-key", "/nonexistent/key.pem"}, 1, "", "load TLS certificate"},
		{"MigrateExtraArg", []string{"migrate", "--database-url", dbURL, "up", "now"}, 2, "", `unexpected argument "now"`},
		{"MigrateBadFlag", []string{"migrate", "up", "--bogus"}, 2, "", "flag provided but not defined"},
		{"BadMemoryBudget", []string{"serve", "--database-url", dbURL, "--memory-budget", "lots"}, 1, "", `--memory-budget "lots": want a size such as 64MiB`},
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
