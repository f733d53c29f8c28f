package simulator_test

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
)

// lockedBuffer is a bytes.Buffer safe for the simulator's workers.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// TestAcceptedLog checks that the accepted log names every accepted
// reading once, exactly as stored.
func TestAcceptedLog(t *testing.T) {
	ts := newTestServer(t, nil, nil)
	cfg := ts.config(3, 4)
	var log lockedBuffer
	cfg.AcceptedLog = &log
	sum := runSim(t, context.Background(), cfg)
	lines := strings.Split(strings.TrimSpace(log.b.String()), "\n")
	if int64(len(lines)) != sum.Accepted || sum.Accepted != 12 {
		t.Fatalf("%d lines for %d accepted readings, want 12", len(lines), sum.Accepted)
	}
	seen := map[string]bool{}
	for _, l := range lines {
		if seen[l] {
			t.Errorf("line %q twice", l)
		}
		seen[l] = true
		var n int64
		q := `SELECT count(*) FROM readings r JOIN meters m ON m.id = r.meter_id
			WHERE m.username || ',' || r.timestamp || ',' || r.wh_in || ',' || r.wh_out = $1`
		if err := ts.db.Get(&n, q, l); err != nil || n != 1 {
			t.Errorf("line %q: %d stored readings match (err %v), want 1", l, n, err)
		}
	}
}
