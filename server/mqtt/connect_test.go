package mqtt_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"smartmeters/server/mqtt"
)

// syncBuffer is a bytes.Buffer that a logger and the test may share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestConnectBacksOff points the intake at a broker that accepts every
// connection and closes it at once: over 7.5 s it must try at 0, 1, 3 and
// 7 s (1 s, doubling), not every second, and log one line for each
// attempt, saying when the next comes; cancelled, it returns at once.
func TestConnectBacksOff(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	var accepted atomic.Int64
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()

	var logs syncBuffer
	cfg := mqtt.Config{
		Broker: "mqtt://" + l.Addr().String(), Topic: mqtt.DefaultTopic, ResultsTopic: mqtt.DefaultResultsTopic,
		ClientID: "backoff", MaxBody: 1 << 10, MaxBatchBody: 1 << 20, RetryMax: 10 * time.Second,
	}
	in, err := mqtt.New(cfg, noIngest{}, noBudget{}, prometheus.NewRegistry(), slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 7500*time.Millisecond)
	defer cancel()
	if err := in.Run(ctx); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if late := context.Cause(ctx); !errors.Is(late, context.DeadlineExceeded) {
		t.Fatalf("Run returned before it was cancelled: %v", late)
	}

	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	n := accepted.Load()
	t.Logf("%d connections in 7.5 s; the log:\n%s", n, logs.String())
	if n < 3 || n > 4 {
		t.Errorf("%d connections in 7.5 s; want 4, at 0, 1, 3 and 7 s", n)
	}
	if int64(len(lines)) != n {
		t.Errorf("%d log lines for %d failed attempts; want one each", len(lines), n)
	}
	for i, line := range lines {
		wait := min(time.Second<<min(i, 4), cfg.RetryMax)
		want := []string{"level=WARN", `msg="MQTT broker unreachable; retrying"`, "retry_in=" + wait.String()}
		for _, w := range want {
			if !strings.Contains(line, w) {
				t.Errorf("log line %d lacks %s: %s", i+1, w, line)
			}
		}
	}
}
