package simulator_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

// faults counts the faults a faultyHandler injected.
type faults struct {
	requests, unavailable, droppedBefore, droppedAfter atomic.Int64
}

// faultyHandler answers 503 to every 3rd request; of the others, it drops
// the connection of every 7th before next sees the request, and of every
// 5th after next has handled it (and stored the reading) but before the
// answer is sent.
func faultyHandler(f *faults) middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n := f.requests.Add(1)
			switch {
			case n%3 == 0:
				f.unavailable.Add(1)
				w.Header().Set("Retry-After", "0")
				http.Error(w, `{"type":"urn:smartmeters:problem:unavailable","status":503}`, http.StatusServiceUnavailable)
			case n%7 == 1:
				f.droppedBefore.Add(1)
				dropConnection(w)
			case n%5 == 2:
				rec := httptest.NewRecorder()
				next.ServeHTTP(rec, r)
				f.droppedAfter.Add(1)
				dropConnection(w)
			default:
				next.ServeHTTP(w, r)
			}
		})
	}
}

func dropConnection(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(err)
	}
	conn.Close()
}

// TestFaults checks that retries get every reading stored exactly once
// through unavailability and dropped connections, and that a reading the
// server stored but whose answer was lost counts as accepted when the
// retry is answered 200 duplicate.
func TestFaults(t *testing.T) {
	t.Parallel()
	var pub, adm faults
	ts := newTestServer(t, faultyHandler(&pub), faultyHandler(&adm))
	const meters, readings = 5, 6
	cfg := ts.config(meters, readings)
	// About half the attempts meet a fault: allow enough that none runs
	// out (0.55^30 is below 1e-7).
	cfg.MaxAttempts = 30
	sum := runSim(t, context.Background(), cfg)
	if err := sum.Err(); err != nil {
		t.Fatalf("Err: %v", err)
	}
	if pub.unavailable.Load() == 0 || pub.droppedBefore.Load() == 0 || pub.droppedAfter.Load() == 0 {
		t.Fatalf("faults injected: %d unavailable, %d dropped before, %d dropped after; want some of each",
			pub.unavailable.Load(), pub.droppedBefore.Load(), pub.droppedAfter.Load())
	}
	if adm.unavailable.Load() == 0 || adm.droppedAfter.Load() == 0 {
		t.Errorf("registrations met %d unavailable and %d lost answers; want some of each",
			adm.unavailable.Load(), adm.droppedAfter.Load())
	}
	if n := count(t, ts.db, `SELECT count(*) FROM meters`); n != meters || sum.Registered != meters {
		t.Errorf("store holds %d meters, summary registered %d; want %d", n, sum.Registered, meters)
	}
	want := int64(meters * readings)
	if sum.Attempted != want || sum.Accepted != want || sum.Duplicates != 0 {
		t.Errorf("attempted %d accepted %d duplicates %d, want %d accepted", sum.Attempted, sum.Accepted, sum.Duplicates, want)
	}
	if got := count(t, ts.db, `SELECT count(*) FROM readings`); got != want {
		t.Errorf("store holds %d readings, want exactly %d", got, want)
	}
	faulty := pub.unavailable.Load() + pub.droppedBefore.Load() + pub.droppedAfter.Load()
	if sum.Retries < faulty {
		t.Errorf("%d retries for %d faults", sum.Retries, faulty)
	}
	checkRegisters(t, ts.db)
}

// TestRetriesRunOut checks that a reading that never gets an answer is
// counted as failed and fails the run, naming the cause.
func TestRetriesRunOut(t *testing.T) {
	t.Parallel()
	down := func(http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "down", http.StatusBadGateway)
		})
	}
	ts := newTestServer(t, down, nil)
	cfg := ts.config(2, 1)
	cfg.MaxAttempts = 3
	sum := runSim(t, context.Background(), cfg)
	if sum.Failed != 2 || sum.Retries != 4 {
		t.Errorf("failed %d retries %d, want 2 and 4", sum.Failed, sum.Retries)
	}
	// The run says why: the last attempt's answer.
	const cause = "gave up after 3 attempts: 502 http-502"
	if sum.LastError != cause {
		t.Errorf("LastError %q, want %q", sum.LastError, cause)
	}
	if err := sum.Err(); err == nil || err.Error() != "2 of 2 readings were not accepted (failed 2; last error: "+cause+")" {
		t.Errorf("Err = %v", err)
	}
}

// rewriteAnswers answers 201 stored wherever the server refuses a
// signature, like a server that forgot to verify.
func rewriteAnswers(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r)
		if bytes.Contains(rec.Body.Bytes(), []byte("invalid-signature")) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusCreated)
			w.Write([]byte(`{"status":"stored","meterId":1,"timestamp":1}`))
			return
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		w.Write(rec.Body.Bytes())
	})
}
