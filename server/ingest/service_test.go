package ingest

import (
	"io"
	"log/slog"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// newTestService returns a Service over st with testConfig, closed when
// the test ends.
func newTestService(tb testing.TB, st interface {
	KeyStore
	ReadingStore
}) *Service {
	tb.Helper()
	s, err := New(DefaultConfig(), st, st, nil, prometheus.NewRegistry(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Close)
	return s
}
