package mqtt

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"net/http"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"smartmeters/crypto"
	"smartmeters/server/api"
	"smartmeters/server/ingest"
)

// enter counts a message in progress, unless the intake is stopping.
func (in *Intake) enter() bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.stopping {
		return false
	}
	in.inFlight.Add(1)
	return true
}

// hold counts n more payloads held (n < 0: fewer).
func (in *Intake) hold(n int64) {
	held := in.held.Add(n)
	in.metrics.held.Add(float64(n))
	for {
		most := in.mostHeld.Load()
		if held <= most || in.mostHeld.CompareAndSwap(most, held) {
			return
		}
	}
}

// handle takes one message from Paho's router, which calls it for one
// message at a time and reads nothing more from the broker until it
// returns. A message refused unread (over its topic's rate, or its
// payload over the body limits) is answered and acknowledged at once, and
// its payload dropped. Any other goes to a worker once one is free and
// the memory budget has room for it; meanwhile handle waits, and the
// messages behind it wait at the broker.
//
// handle waits for nothing of the readings connection's: Paho reads its
// acknowledgements, and completes its tokens, on the goroutine that feeds
// the router. Results go out on the other connection.
func (in *Intake) handle(_ paho.Client, m paho.Message) {
	if !in.enter() {
		return
	}
	defer in.inFlight.Done()
	in.hold(1)
	payload := m.Payload()
	if err := in.screen(m.Topic(), payload); err != nil {
		in.publishProblem(in.ingest.Refuse(err))
		m.Ack()
		in.hold(-1)
		return
	}
	cost := 2 * int64(len(payload)) // the payload, and what is decoded from it
	if !in.takeWorker() {
		in.hold(-1) // unacknowledged: the broker delivers it again
		return
	}
	if !in.takeBudget(cost) {
		in.hold(-1)
		<-in.workers
		return
	}
	in.inFlight.Add(1)
	go func() {
		defer func() {
			in.budget.Give(cost)
			in.hold(-1)
			<-in.workers
			in.inFlight.Done()
		}()
		if in.process(in.ctx, payload) {
			m.Ack()
		}
	}()
}

// screen returns the problem that refuses a message unread, or nil: its
// topic is over its rate, or its payload over the body limit, that of a
// batch for an array.
func (in *Intake) screen(topic string, payload []byte) error {
	if ok, wait := in.perTopic.Take(topic, 1, in.cfg.Now()); !ok {
		return api.Errorf(api.RateLimited, "topic %s carries more than %g messages a second; retry in %s",
			topic, in.perTopic.Rate(), wait.Round(time.Millisecond))
	}
	limit := in.cfg.MaxBody
	if isArray(payload) {
		limit = in.cfg.MaxBatchBody
	}
	if int64(len(payload)) > limit {
		return api.Errorf(api.BodyTooLarge, "the payload of %d bytes exceeds %d bytes", len(payload), limit)
	}
	return nil
}

// takeWorker waits for a free worker and takes it. It reports false if
// the intake stops, or the connection the message came on is lost,
// first: Paho's reconnection waits for handle to return, and the broker
// delivers the message again on the next connection.
func (in *Intake) takeWorker() bool {
	select {
	case in.workers <- struct{}{}:
		return true
	default:
	}
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for in.client.IsConnectionOpen() {
		select {
		case in.workers <- struct{}{}:
			return true
		case <-in.ctx.Done():
			return false
		case <-tick.C:
		}
	}
	return false
}

// takeBudget waits for room in the memory budget for cost bytes and
// takes it. It reports false as takeWorker does.
func (in *Intake) takeBudget(cost int64) bool {
	for attempt := 1; !in.budget.Take(cost); attempt++ {
		in.metrics.retries.Inc()
		if !in.pause(backoff(attempt, time.Second)) {
			return false
		}
	}
	return true
}

// pause waits d and reports whether the intake is still running and
// connected.
func (in *Intake) pause(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-in.ctx.Done():
		return false
	case <-t.C:
		return in.client.IsConnectionOpen()
	}
}

// process stores the readings of payload and publishes their results,
// trying again with backoff while the store does not take them, and
// reports whether they are all final; false once ctx is done first.
func (in *Intake) process(ctx context.Context, payload []byte) bool {
	batch := isArray(payload)
	var published []bool // of a batch: whose result was published
	for attempt := 1; ; attempt++ {
		var done bool
		if batch {
			done = in.reportBatch(ctx, payload, &published)
		} else {
			done = in.report(ctx, payload)
		}
		if done {
			return true
		}
		in.metrics.retries.Inc()
		t := time.NewTimer(backoff(attempt, in.cfg.RetryMax))
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-t.C:
		}
	}
}

// isArray reports whether payload is a JSON array, as for
// /reportReadings, rather than the object of /reportReading.
func isArray(payload []byte) bool {
	for _, c := range payload {
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		}
		return c == '['
	}
	return false
}

func (in *Intake) report(ctx context.Context, payload []byte) bool {
	r := in.ingest.Report(ctx, ingest.MQTT, payload)
	if transient(r) {
		return false
	}
	in.publish(r)
	return true
}

// reportBatch publishes the result of every reading that is final and
// not yet published; a reading the store did not take is left for the
// next attempt, which sends the whole batch again (what was stored comes
// back a duplicate, and is not published twice).
func (in *Intake) reportBatch(ctx context.Context, payload []byte, published *[]bool) bool {
	results, err := in.ingest.ReportBatch(ctx, ingest.MQTT, payload)
	if err != nil {
		in.publishProblem(err)
		return true
	}
	if *published == nil {
		*published = make([]bool, len(results))
	}
	done := true
	for i, r := range results {
		switch {
		case transient(r):
			done = false
		case !(*published)[i]:
			in.publish(r)
			(*published)[i] = true
		}
	}
	return done
}

// transient reports whether r is an answer to retry: the store did not
// take the reading, or the server is stopping.
func transient(r ingest.Result) bool {
	return r.Problem != nil && r.Problem.Status == http.StatusServiceUnavailable
}

// publish sends the result of one reading to the results topic of its
// key: the status and fields of the HTTP answer, with the reading's
// timestamp whenever it could be read.
func (in *Intake) publish(r ingest.Result) {
	a := r.Answer()
	if a.Timestamp == 0 {
		a.Timestamp = r.Timestamp
	}
	level := UnknownLevel
	if r.Fingerprint != (crypto.Fingerprint{}) {
		level = r.Fingerprint.String()
	}
	in.send(in.cfg.ResultsTopic+"/"+level, a)
}

// publishProblem sends the problem that refused a payload as a whole,
// unread, to the results topic of unknown keys.
func (in *Intake) publishProblem(err error) {
	var p *api.Problem
	if !errors.As(err, &p) {
		in.logger.Error("MQTT message failed", "err", err)
		p = api.Errorf(api.Internal, "internal error")
	}
	in.send(in.cfg.ResultsTopic+"/"+UnknownLevel, api.BatchResult{Status: p.Status, Type: p.Type, Title: p.Title, Detail: p.Detail})
}

// send publishes v with QoS 1 on the results connection, without
// waiting: Paho delivers it once connected, again after a reconnect until
// the broker acknowledges it.
func (in *Intake) send(topic string, v api.BatchResult) {
	b, err := json.Marshal(v)
	if err != nil {
		in.logger.Error("MQTT result", "err", err)
		return
	}
	in.results.Publish(topic, 1, false, b)
	in.metrics.published.Inc()
}

// backoff is the wait before attempt+1: a uniform draw below
// 100ms·2^(attempt-1), capped at most.
func backoff(attempt int, most time.Duration) time.Duration {
	ceiling := most
	if attempt <= 16 {
		ceiling = min(100*time.Millisecond<<(attempt-1), most)
	}
	return rand.N(ceiling) + 1
}
