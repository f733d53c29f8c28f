package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"smartmeters/crypto"
	"smartmeters/db/dbtest"
)

// sseEvent is one Server-Sent Event.
type sseEvent struct {
	name string
	data string
}

// subscribe opens the event stream and returns its events; the stream is
// closed when the test ends.
func subscribe(t *testing.T, ts testServer) <-chan sseEvent {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ts.admin+"/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if ct := res.Header.Get("Content-Type"); res.StatusCode != http.StatusOK || ct != "text/event-stream" {
		t.Fatalf("GET /events: %d %q", res.StatusCode, ct)
	}
	events := make(chan sseEvent, 100)
	go func() {
		defer res.Body.Close()
		defer close(events)
		sc := bufio.NewScanner(res.Body)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				ev.name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				ev.data = strings.TrimPrefix(line, "data: ")
			case line == "":
				select {
				case events <- ev:
				case <-ctx.Done():
					return
				}
				ev = sseEvent{}
			}
		}
	}()
	return events
}

// next returns the next event named name, skipping others.
func next(t *testing.T, events <-chan sseEvent, name string, v any) {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatalf("stream ended before a %q event", name)
			}
			if ev.name != name {
				continue
			}
			if err := json.Unmarshal([]byte(ev.data), v); err != nil {
				t.Fatalf("%s event %q: %v", name, ev.data, err)
			}
			return
		case <-timeout:
			t.Fatalf("no %q event within 5s", name)
		}
	}
}

func TestEvents(t *testing.T) {
	ts := newTestServer(t, dbtest.SQLite(t), nil)
	k := newKey(t, "ed25519")
	if r := register(t, ts, "streamer", k); r.status != http.StatusCreated {
		t.Fatal(r.rawBody)
	}
	events := subscribe(t, ts)
	type fleet struct {
		MetersRegistered int64            `json:"metersRegistered"`
		ReadingsStored   int64            `json:"readingsStored"`
		Rejected         map[string]int64 `json:"rejected"`
	}
	var f fleet
	next(t, events, "fleet", &f)
	if f.MetersRegistered != 1 || f.ReadingsStored != 0 {
		t.Errorf("first fleet event %+v, want 1 meter and no readings", f)
	}

	reading := crypto.Reading{WhIn: 42, WhOut: 7, Timestamp: now.Add(-time.Second).UnixMilli()}
	if r := postJSON(t, ts.public+"/reportReading", signed(t, k, reading)); r.status != http.StatusCreated {
		t.Fatal(r.rawBody)
	}
	forged := signed(t, k, reading)
	forged.Reading.WhIn++
	forged.Reading.Timestamp++
	if r := postJSON(t, ts.public+"/reportReading", forged); r.status != http.StatusBadRequest {
		t.Fatal(r.rawBody)
	}

	var got struct {
		MeterID   int64     `json:"meterId"`
		Timestamp time.Time `json:"timestamp"`
		WhIn      int64     `json:"whIn"`
		WhOut     int64     `json:"whOut"`
	}
	next(t, events, "reading", &got)
	if got.WhIn != 42 || got.WhOut != 7 || got.MeterID == 0 || !got.Timestamp.Equal(reading.Time()) {
		t.Errorf("reading event %+v, want the stored reading", got)
	}
	next(t, events, "fleet", &f)
	if f.ReadingsStored != 1 || f.Rejected["invalid-signature"] != 1 {
		t.Errorf("fleet event after one stored and one forged: %+v", f)
	}
}
