package server

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"smartmeters/crypto"
	"smartmeters/store"
)

type reportRequest struct {
	Base64PublicKey string       `json:"base64PublicKey"`
	Base64Signature string       `json:"base64Signature"`
	Reading         *readingJSON `json:"reading"`
}

// readingJSON is crypto.Reading as it arrives: pointers tell a missing or
// null field from a zero.
type readingJSON struct {
	WhIn      *int64 `json:"whIn"`
	WhOut     *int64 `json:"whOut"`
	Timestamp *int64 `json:"timestamp"`
}

type reportResponse struct {
	Status    string `json:"status"` // "stored" or "duplicate"
	MeterID   int64  `json:"meterId"`
	Timestamp int64  `json:"timestamp"`
}

// signedReading is a report that passed decoding: what verification needs.
type signedReading struct {
	fp        crypto.Fingerprint
	reading   crypto.Reading
	signature []byte
}

// handleReportReading stores one signed reading: POST /reportReading.
func (s *Server) handleReportReading(c echo.Context) error {
	var req reportRequest
	if err := decodeJSON(c, s.cfg.MaxBodyBytes, &req); err != nil {
		return s.reject(err)
	}
	s.metrics.received.Inc()
	ctx := c.Request().Context()
	row, err := s.check(ctx, &req)
	if err != nil {
		return s.reject(err)
	}
	results, err := s.commits.submit(ctx, []store.Reading{row})
	if err != nil {
		return s.reject(s.storeFailure(err))
	}
	if results[0].err != nil {
		return s.reject(s.storeFailure(results[0].err))
	}
	code, body, err := s.outcome(row, results[0].outcome)
	if err != nil {
		return s.reject(err)
	}
	return c.JSON(code, body)
}

// check runs every test a report must pass before it is stored, cheapest
// first so that an unknown key costs no signature verification: decode,
// look the key up, verify, check the clock. It returns the row to store or
// a Problem.
func (s *Server) check(ctx context.Context, req *reportRequest) (store.Reading, error) {
	sr, err := req.decode()
	if err != nil {
		return store.Reading{}, err
	}
	mk, err := s.lookupKey(ctx, sr.fp)
	if err != nil {
		return store.Reading{}, err
	}
	return s.verify(sr, mk)
}

// verify checks the signature and the clock of a reading whose key is known.
func (s *Server) verify(sr signedReading, mk meterKey) (store.Reading, error) {
	start := time.Now()
	err := mk.key.Verify(sr.reading, sr.signature)
	mk.observeVerify.Observe(time.Since(start).Seconds())
	if err != nil {
		return store.Reading{}, problem(kindInvalidSignature, "%v", err).forMeter(mk.meterID)
	}
	now := s.cfg.Now()
	if ahead := time.UnixMilli(sr.reading.Timestamp).Sub(now); ahead > s.cfg.MaxClockSkew {
		return store.Reading{}, problem(kindTimestampFuture, "timestamp %d is %s ahead of the server clock; at most %s is allowed",
			sr.reading.Timestamp, ahead.Round(time.Millisecond), s.cfg.MaxClockSkew).forMeter(mk.meterID)
	}
	if err := s.allowReading(mk.meterID); err != nil {
		return store.Reading{}, err
	}
	return store.Reading{MeterID: mk.meterID, Reading: sr.reading, Signature: sr.signature, ReceivedAt: now.UTC()}, nil
}

// decode checks the shape of a report and decodes its key and signature.
func (r *reportRequest) decode() (signedReading, error) {
	var sr signedReading
	if r.Base64PublicKey == "" {
		return sr, problem(kindInvalidField, "base64PublicKey is required")
	}
	if r.Base64Signature == "" {
		return sr, problem(kindInvalidField, "base64Signature is required")
	}
	if r.Reading == nil {
		return sr, problem(kindInvalidField, "reading is required")
	}
	for _, f := range [...]struct {
		name string
		v    *int64
	}{{"reading.whIn", r.Reading.WhIn}, {"reading.whOut", r.Reading.WhOut}, {"reading.timestamp", r.Reading.Timestamp}} {
		if f.v == nil {
			return sr, problem(kindInvalidField, "%s is required", f.name)
		}
		if *f.v < 0 {
			return sr, problem(kindInvalidField, "%s is %d; it must be 0 or more", f.name, *f.v)
		}
	}
	sr.reading = crypto.Reading{WhIn: *r.Reading.WhIn, WhOut: *r.Reading.WhOut, Timestamp: *r.Reading.Timestamp}
	der, err := crypto.DecodePublicKey(r.Base64PublicKey)
	if err != nil {
		return sr, problem(kindInvalidKey, "base64PublicKey: %v", err)
	}
	sr.fp = crypto.FingerprintOf(der)
	if sr.signature, err = crypto.DecodeSignature(r.Base64Signature); err != nil {
		return sr, problem(kindInvalidSignature, "base64Signature: %v", err)
	}
	return sr, nil
}

// lookupKey returns the meter key registered under fp, or the unknown-key
// or key-revoked problem.
func (s *Server) lookupKey(ctx context.Context, fp crypto.Fingerprint) (meterKey, error) {
	mk, err := s.keys.lookup(ctx, fp)
	if errors.Is(err, errUnknownKey) {
		return meterKey{}, problem(kindUnknownKey, "no meter is registered with this public key (fingerprint %s)", fp)
	}
	if errors.Is(err, errRevokedKey) {
		return meterKey{}, problem(kindKeyRevoked, "this public key (fingerprint %s) has been revoked", fp)
	}
	if err != nil {
		return meterKey{}, s.storeFailure(err)
	}
	return mk, nil
}

// outcome turns what the store did with a reading into the HTTP answer, and
// counts it.
func (s *Server) outcome(row store.Reading, o store.Outcome) (int, reportResponse, error) {
	switch o {
	case store.Stored:
		s.metrics.stored.Inc()
		s.onStored(row.MeterID, row.Reading, row.ReceivedAt)
		return http.StatusCreated, reportResponse{Status: "stored", MeterID: row.MeterID, Timestamp: row.Timestamp}, nil
	case store.Duplicate:
		s.metrics.duplicate.Inc()
		return http.StatusOK, reportResponse{Status: "duplicate", MeterID: row.MeterID, Timestamp: row.Timestamp}, nil
	case store.Conflict:
		return 0, reportResponse{}, problem(kindReadingConflict, "meter %d already has a different reading at timestamp %d", row.MeterID, row.Timestamp).forMeter(row.MeterID)
	case store.Decreased:
		return 0, reportResponse{}, problem(kindRegisterDecreased, "whIn %d or whOut %d at timestamp %d is below meter %d's reading before it in time or above its reading after it; registers are cumulative",
			row.WhIn, row.WhOut, row.Timestamp, row.MeterID).forMeter(row.MeterID)
	}
	return 0, reportResponse{}, errors.New("unexpected store outcome " + o.String())
}

// storeFailure turns an error of the store into a 503 the client may retry:
// nothing was acknowledged, so a retry loses nothing and duplicates nothing.
// The error itself goes to the log.
func (s *Server) storeFailure(err error) error {
	var p *Problem
	if errors.As(err, &p) {
		return err
	}
	s.logger.Error("store failure", "err", err)
	if errors.Is(err, errClosed) {
		return problem(kindUnavailable, "the server is shutting down; retry")
	}
	return problem(kindUnavailable, "the store did not take the reading; retry")
}

// reject counts a rejected reading by its problem type and returns err.
func (s *Server) reject(err error) error {
	var p *Problem
	if errors.As(err, &p) {
		slug := p.slug()
		s.metrics.rejected.WithLabelValues(slug).Inc()
		if p.meterID != 0 {
			s.onMeterRejected(p.meterID, slug, s.cfg.Now())
		} else {
			s.onRejected(slug)
		}
	}
	return err
}
