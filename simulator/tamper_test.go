package simulator_test

import (
	"context"
	"strings"
	"testing"
)

// TestTamper checks that the server refuses every kind of forged reading
// with its own problem type, and that the forgeries leave the genuine
// readings alone.
func TestTamper(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, nil, nil)
	cfg := ts.config(6, 10)
	cfg.Tamper = 0.4
	sum := runSim(t, context.Background(), cfg)
	if err := sum.Err(); err != nil {
		t.Fatalf("Err: %v", err)
	}
	total := int64(cfg.Meters * cfg.Readings)
	if sum.Attempted+sum.Tamper.Sent != total {
		t.Errorf("%d genuine and %d forged readings, want %d in all", sum.Attempted, sum.Tamper.Sent, total)
	}
	if sum.Tamper.Sent == 0 || sum.Tamper.Accepted != 0 {
		t.Errorf("forged %d, accepted %d; want some forged, none accepted", sum.Tamper.Sent, sum.Tamper.Accepted)
	}
	for _, kind := range []string{"bad-signature", "unknown-key", "replay"} {
		k, ok := sum.Tamper.Kinds[kind]
		if !ok || k.Sent == 0 {
			t.Errorf("no %s forgery sent: %+v", kind, sum.Tamper.Kinds)
			continue
		}
		if k.Answers[k.Expected] != k.Sent || len(k.Answers) != 1 {
			t.Errorf("%s: %d sent, answers %v, want all %s", kind, k.Sent, k.Answers, k.Expected)
		}
	}
	if sum.Accepted != sum.Attempted {
		t.Errorf("%d of %d genuine readings accepted", sum.Accepted, sum.Attempted)
	}
	if got := count(t, ts.db, `SELECT count(*) FROM readings`); got != sum.Accepted {
		t.Errorf("store holds %d readings, want the %d genuine ones", got, sum.Accepted)
	}
	checkRegisters(t, ts.db)
}

// TestTamperAccepted checks that a forged reading the server accepts fails
// the run.
func TestTamperAccepted(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, rewriteAnswers, nil)
	cfg := ts.config(4, 6)
	cfg.Tamper = 0.5
	sum := runSim(t, context.Background(), cfg)
	bad := sum.Tamper.Kinds["bad-signature"]
	if bad.Sent == 0 || sum.Tamper.Accepted != bad.Sent || bad.Answers["stored"] != bad.Sent {
		t.Errorf("bad-signature %+v, tamper accepted %d; want every one stored", bad, sum.Tamper.Accepted)
	}
	err := sum.Err()
	if err == nil || !strings.Contains(err.Error(), "forged readings were accepted") {
		t.Errorf("Err = %v, want forged readings accepted", err)
	}
}
