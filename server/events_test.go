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
	id   string
	name string
	data string
}

// subscribe opens the event stream and returns its events; the stream is
// closed when the test ends.
func subscribe(t *testing.T, ts testServer) <-chan sseEvent {
	t.Helper()
	events, _ := resume(t, ts, "")
	return events
}

// resume opens the event stream with lastEventID as Last-Event-ID (none
// when empty) and returns its events and a function that closes it; it is
// closed when the test ends anyway.
func resume(t *testing.T, ts testServer, lastEventID string) (<-chan sseEvent, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ts.admin+"/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
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
			case strings.HasPrefix(line, "id: "):
				ev.id = strings.TrimPrefix(line, "id: ")
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
	return events, cancel
}

// next decodes the next event named name into v, skipping others.
func next(t *testing.T, events <-chan sseEvent, name string, v any) {
	t.Helper()
	nextEvent(t, events, name, v)
}

// nextEvent is next, returning the event.
func nextEvent(t *testing.T, events <-chan sseEvent, name string, v any) sseEvent {
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
			return ev
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

// TestEventsResume drops the stream after one reading and reconnects with
// the last event id, as EventSource does: the readings stored meanwhile
// come first, then the stream goes on. An id the server does not know
// replays nothing.
func TestEventsResume(t *testing.T) {
	ts := newTestServer(t, dbtest.SQLite(t), nil)
	k := newKey(t, "ed25519")
	if r := register(t, ts, "resumer", k); r.status != http.StatusCreated {
		t.Fatal(r.rawBody)
	}
	report := func(in int64) {
		t.Helper()
		reading := crypto.Reading{WhIn: in, Timestamp: now.Add(time.Duration(in-100) * time.Second).UnixMilli()}
		if r := postJSON(t, ts.public+"/reportReading", signed(t, k, reading)); r.status != http.StatusCreated {
			t.Fatal(r.rawBody)
		}
	}
	type reading struct {
		WhIn int64 `json:"whIn"`
	}
	events, stop := resume(t, ts, "")
	var f struct{}
	first := nextEvent(t, events, "fleet", &f)
	report(1)
	var r reading
	ev := nextEvent(t, events, "reading", &r)
	if r.WhIn != 1 || ev.id == "" || ev.id == first.id {
		t.Fatalf("reading event %+v after fleet event id %q: want whIn 1 with an id of its own", ev, first.id)
	}
	stop()
	report(2)
	report(3)

	events, _ = resume(t, ts, ev.id)
	var got []int64
	var sawFleet bool
	for len(got) < 2 {
		select {
		case e, ok := <-events:
			if !ok {
				t.Fatal("stream ended")
			}
			switch e.name {
			case "fleet":
				sawFleet = true
			case "reading":
				if err := json.Unmarshal([]byte(e.data), &r); err != nil {
					t.Fatal(err)
				}
				got = append(got, r.WhIn)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("resumed stream: readings %v within 5s", got)
		}
	}
	if got[0] != 2 || got[1] != 3 || sawFleet {
		t.Errorf("resumed stream: readings %v (a fleet event first: %v), want 2 and 3 before any fleet event", got, sawFleet)
	}

	events, _ = resume(t, ts, "elsewhere-1")
	first = nextEvent(t, events, "fleet", &f)
	report(4)
	nextEvent(t, events, "reading", &r)
	if r.WhIn != 4 {
		t.Errorf("stream with an unknown id: first reading %d, want 4", r.WhIn)
	}
}
