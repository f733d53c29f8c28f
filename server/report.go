package server

import (
	"errors"
	"net/http"
	"strings"
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
// Checks run cheapest first, so that an unknown key costs no signature
// verification: decode, look the key up, verify, check the clock, store.
func (s *Server) handleReportReading(c echo.Context) error {
	err := s.reportReading(c)
	var p *Problem
	if errors.As(err, &p) {
		s.onRejected(strings.TrimPrefix(p.Type, problemTypePrefix))
	}
	return err
}

func (s *Server) reportReading(c echo.Context) error {
	var req reportRequest
	if err := decodeJSON(c, s.cfg.MaxBodyBytes, &req); err != nil {
		return err
	}
	sr, err := req.decode()
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	key, meterID, err := s.lookupKey(c, sr.fp)
	if err != nil {
		return err
	}
	if err := key.Verify(sr.reading, sr.signature); err != nil {
		return problem(kindInvalidSignature, "%v", err)
	}
	if err := s.checkClock(sr.reading); err != nil {
		return err
	}
	receivedAt := s.cfg.Now().UTC()
	outcomes, err := s.store.InsertReadings(ctx, []store.Reading{{
		MeterID:    meterID,
		Reading:    sr.reading,
		Signature:  sr.signature,
		ReceivedAt: receivedAt,
	}})
	if err != nil {
		return err
	}
	if outcomes[0] == store.Stored {
		s.onStored(meterID, sr.reading, receivedAt)
	}
	return respondOutcome(c, meterID, sr.reading, outcomes[0])
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
	for _, f := range []struct {
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

// lookupKey returns the parsed key and meter id registered under fp, or the
// unknown-key problem.
func (s *Server) lookupKey(c echo.Context, fp crypto.Fingerprint) (*crypto.PublicKey, int64, error) {
	m, err := s.store.MeterByFingerprint(c.Request().Context(), fp)
	if errors.Is(err, store.ErrNotFound) {
		return nil, 0, problem(kindUnknownKey, "no meter is registered with this public key (fingerprint %s)", fp)
	}
	if err != nil {
		return nil, 0, err
	}
	key, err := crypto.ParsePublicKeyDER(m.PublicKey, s.cfg.MinRSABits)
	if err != nil {
		// A key registered under a weaker policy than today's is refused.
		return nil, 0, problem(kindInvalidKey, "meter %d: %v", m.ID, err)
	}
	return key, m.ID, nil
}

func (s *Server) checkClock(r crypto.Reading) error {
	ahead := time.UnixMilli(r.Timestamp).Sub(s.cfg.Now())
	if ahead > s.cfg.MaxClockSkew {
		return problem(kindTimestampFuture, "timestamp %d is %s ahead of the server clock; at most %s is allowed",
			r.Timestamp, ahead.Round(time.Millisecond), s.cfg.MaxClockSkew)
	}
	return nil
}

func respondOutcome(c echo.Context, meterID int64, r crypto.Reading, o store.Outcome) error {
	switch o {
	case store.Stored:
		return c.JSON(http.StatusCreated, reportResponse{Status: "stored", MeterID: meterID, Timestamp: r.Timestamp})
	case store.Duplicate:
		return c.JSON(http.StatusOK, reportResponse{Status: "duplicate", MeterID: meterID, Timestamp: r.Timestamp})
	case store.Conflict:
		return problem(kindReadingConflict, "meter %d already has a different reading at timestamp %d", meterID, r.Timestamp)
	}
	return errors.New("unexpected store outcome " + o.String())
}
