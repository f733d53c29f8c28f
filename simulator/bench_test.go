package simulator_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"smartmeters/simulator"
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

// TestBench runs a short bench against the real server and checks what
// it counts and the figures of its last line, the server's CPU included.
func TestBench(t *testing.T) {
	ts := newTestServer(t, nil, nil)
	res, err := simulator.Bench(context.Background(), simulator.BenchConfig{
		PublicURL: ts.public, AdminURL: ts.admin, Meters: 20, Batch: 5, Total: 400, Concurrency: 8,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Stored != 400 || res.Errors != 0 || res.Readings != 400 {
		t.Fatalf("stored %d of %d readings, %d errors; want all 400 stored", res.Stored, res.Readings, res.Errors)
	}
	if res.ServerCPU <= 0 || res.VerifyOneCore <= 0 || res.Efficiency() <= 0 {
		t.Fatalf("server CPU %v s, verify %v/s, efficiency %v: want all positive", res.ServerCPU, res.VerifyOneCore, res.Efficiency())
	}
	line := res.Line()
	for _, field := range []string{"readings_per_s=", "ratio=", "server_cpu_us_per_reading=", "efficiency="} {
		if !strings.Contains(line, field) {
			t.Errorf("last line %q lacks %s", line, field)
		}
	}

	t.Run("LastError", func(t *testing.T) {
		tests := []struct {
			name   string
			batch  int
			answer func(w http.ResponseWriter)
			want   string
		}{
			{"Single", 1, func(w http.ResponseWriter) {
				w.Header().Set("Content-Type", "application/problem+json")
				w.WriteHeader(http.StatusServiceUnavailable)
				io.WriteString(w, `{"type":"urn:smartmeters:problem:overloaded","detail":"too busy"}`)
			}, "503 overloaded: too busy"},
			{"Batch", 2, func(w http.ResponseWriter) {
				w.Header().Set("Content-Type", "application/json")
				io.WriteString(w, `{"results":[{"status":201},{"status":409,"type":"urn:smartmeters:problem:reading-conflict","detail":"another reading"}]}`)
			}, "409 reading-conflict: another reading"},
			{"BatchRefused", 2, func(w http.ResponseWriter) {
				w.WriteHeader(http.StatusBadGateway)
			}, "502 http-502"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				answer := func(http.Handler) http.Handler {
					return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
						io.Copy(io.Discard, r.Body)
						tt.answer(w)
					})
				}
				ts := newTestServer(t, answer, nil)
				var progress strings.Builder
				res, err := simulator.Bench(context.Background(), simulator.BenchConfig{
					PublicURL: ts.public, AdminURL: ts.admin, Meters: 2, Batch: tt.batch, Total: 4, Concurrency: 1, Progress: &progress,
				})
				if err != nil {
					t.Fatal(err)
				}
				if res.Errors == 0 || res.LastError != tt.want {
					t.Errorf("%d errors, last %q; want %q", res.Errors, res.LastError, tt.want)
				}
				if !strings.Contains(progress.String(), "errors (last error: "+tt.want+")\n") {
					t.Errorf("progress does not name the last error:\n%s", &progress)
				}
			})
		}
	})

	t.Run("ErrNoMetrics", func(t *testing.T) {
		noMetrics := func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/metrics" {
					http.NotFound(w, r)
					return
				}
				next.ServeHTTP(w, r)
			})
		}
		ts := newTestServer(t, nil, noMetrics)
		_, err := simulator.Bench(context.Background(), simulator.BenchConfig{
			PublicURL: ts.public, AdminURL: ts.admin, Meters: 2, Batch: 1, Total: 4, Concurrency: 1,
		})
		if err == nil || !strings.Contains(err.Error(), "/metrics") {
			t.Fatalf("bench against a server without /metrics: %v, want an error naming /metrics", err)
		}
	})
}
