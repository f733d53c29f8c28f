package simulator

import (
	"context"
	"errors"
	"net/http"

	"smartmeters/server/api"
)

// work signs and delivers the readings of jobs until it is closed. Readings
// still queued when ctx is done are dropped unsent and uncounted.
func (s *Simulator) work(ctx, hard context.Context, jobs <-chan job) {
	for j := range jobs {
		if ctx.Err() != nil {
			continue
		}
		s.report(ctx, hard, j)
	}
}

// report signs and delivers one reading and counts the result. The body
// is never reused: the transport may read it after the answer arrived.
func (s *Simulator) report(ctx, hard context.Context, j job) {
	key, pub := j.m.key, j.m.pubB64
	if j.kind == forgedUnknownKey {
		key, pub = s.rogue, s.roguePub
	}
	sig, err := key.Sign(j.reading)
	if err != nil {
		// Keys are checked when generated or loaded; this cannot happen.
		s.st.sent.Add(1)
		if j.kind == genuine {
			s.st.attempted.Add(1)
		}
		s.st.record(j.kind, result{outcome: outcomeFailed, cause: "sign: " + err.Error()})
		return
	}
	if j.kind == forgedSignature {
		sig = corrupt(sig)
	}
	body := api.AppendReport(make([]byte, 0, 160+len(pub)+2*len(sig)), pub, sig, j.reading)

	s.st.lag.record(s.cfg.Now().Sub(j.due))
	s.st.sent.Add(1)
	if j.kind == genuine {
		s.st.attempted.Add(1)
	}
	var rep reply
	var retries int
	if s.mqtt != nil {
		key := resultKey{fp: j.m.fp, ts: j.reading.Timestamp}
		if j.kind == forgedUnknownKey {
			key.fp = s.rogueFP
		}
		rep, retries, err = s.client.sendMQTT(ctx, hard, s.mqtt, body, key)
	} else {
		rep, retries, err = s.client.send(ctx, hard, s.reportURL, body)
	}
	res := result{retries: retries}
	switch {
	case errors.Is(err, errInterrupted):
		res.outcome = outcomeInterrupted
	case err != nil:
		res.outcome, res.cause = outcomeFailed, err.Error()
	case rep.status == http.StatusCreated:
		res.outcome = outcomeStored
	case rep.status == http.StatusOK:
		res.outcome = outcomeDuplicate
	default:
		res.outcome, res.slug = outcomeRejected, rep.reason()
	}
	if j.kind == genuine && (res.outcome == outcomeStored || res.outcome == outcomeDuplicate) {
		j.m.setAccepted(j.reading)
		s.logAccepted(j.m.username, j.reading)
	}
	s.st.record(j.kind, res)
}
