package simcmd_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"

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
