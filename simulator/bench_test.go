package simulator_test

import (
	"context"
	"io"
	"net/http"
	"testing"
	"time"
)

// sink answers every report 201 without looking at it, so that a
// benchmark against it measures the simulator alone.
func sink(http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, `{"status":"stored","meterId":1,"timestamp":1}`+"\n")
	})
}

// BenchmarkRun sends b.N readings of 1,000 ed25519 meters as fast as the
// workers go (the interval is so short that the scheduler is always
// behind) and reports the achieved rate. Server is the real server on
// SQLite; Sink measures the simulator's own cost. The registration of the
// meters is part of the time, not of the rate.
func BenchmarkRun(b *testing.B) {
	for _, bc := range []struct {
		name string
		wrap middleware
	}{{"Server", nil}, {"Sink", sink}} {
		b.Run(bc.name, func(b *testing.B) {
			ts := newTestServer(b, bc.wrap, nil)
			const meters = 1000
			cfg := ts.config(meters, (b.N+meters-1)/meters)
			cfg.Interval = time.Millisecond
			cfg.Concurrency = 64
			b.ReportAllocs()
			sum := runSim(b, context.Background(), cfg)
			if err := sum.Err(); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(sum.RatePerS, "readings/s")
			b.ReportMetric(sum.LatencyMS.P99, "p99-ms")
		})
	}
}
