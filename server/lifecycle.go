package server

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"smartmeters/crypto"
	"smartmeters/store"
)

// FleetStore is what key lifecycle, key change following and partition
// maintenance need from storage.
type FleetStore interface {
	MeterByID(ctx context.Context, id int64) (store.Meter, error)
	RevokeKey(ctx context.Context, id int64, reason string, at time.Time) (store.KeyEvent, error)
	ReplaceKey(ctx context.Context, id int64, k store.NewKey, reason string, at time.Time) (store.KeyEvent, error)
	MeterKeys(ctx context.Context, id int64) ([]store.MeterKey, error)
	KeyEvents(ctx context.Context, id int64) ([]store.KeyEvent, error)
	KeysChangedSince(ctx context.Context, since time.Time) ([]crypto.Fingerprint, error)
	EnsurePartitions(ctx context.Context, from, to time.Time) ([]store.Partition, error)
	DropPartitionsBefore(ctx context.Context, horizon time.Time) ([]store.Partition, int64, error)
}

// routeLifecycle sets up the key lifecycle endpoints on the admin listener.
func (s *Server) routeLifecycle(e *echo.Echo) {
	e.POST("/meters/:id/revoke", s.handleRevokeKey)
	e.POST("/meters/:id/key", s.handleReplaceKey)
	e.GET("/meters/:id/keys", s.handleKeyHistory)
}

// maxReasonBytes bounds the reason recorded with a key change.
const maxReasonBytes = 500

type revokeRequest struct {
	Reason string `json:"reason"`
}

type replaceKeyRequest struct {
	Base64PublicKey string `json:"base64PublicKey"`
	Reason          string `json:"reason"`
}

// keyEventJSON is one entry of a meter's key history, as POST
// /meters/{id}/revoke, POST /meters/{id}/key and GET /meters/{id}/keys
// show it.
type keyEventJSON struct {
	MeterID        int64     `json:"meterId"`
	Action         string    `json:"action"` // "register", "revoke" or "replace"
	OldFingerprint *string   `json:"oldFingerprint"`
	NewFingerprint *string   `json:"newFingerprint"`
	Reason         string    `json:"reason"`
	At             time.Time `json:"at"`
}

type meterKeyJSON struct {
	Fingerprint     string     `json:"fingerprint"`
	Algorithm       string     `json:"algorithm"`
	Base64PublicKey string     `json:"base64PublicKey"`
	AddedAt         time.Time  `json:"addedAt"`
	RetiredAt       *time.Time `json:"retiredAt"`
}

type keyHistoryJSON struct {
	MeterID   int64          `json:"meterId"`
	RevokedAt *time.Time     `json:"revokedAt"`
	Keys      []meterKeyJSON `json:"keys"`
	Events    []keyEventJSON `json:"events"`
}

func keyEventOut(ev store.KeyEvent) keyEventJSON {
	hex := func(fp *crypto.Fingerprint) *string {
		if fp == nil {
			return nil
		}
		s := fp.String()
		return &s
	}
	return keyEventJSON{
		MeterID:        ev.MeterID,
		Action:         ev.Action,
		OldFingerprint: hex(ev.OldFingerprint),
		NewFingerprint: hex(ev.NewFingerprint),
		Reason:         ev.Reason,
		At:             ev.At,
	}
}

// validReason accepts 1 to maxReasonBytes of text: a key change without a
// reason makes a poor audit trail.
func validReason(r string) error {
	if r == "" {
		return problem(kindInvalidField, "reason is required")
	}
	if len(r) > maxReasonBytes {
		return problem(kindInvalidField, "reason is %d bytes long; at most %d are allowed", len(r), maxReasonBytes)
	}
	return nil
}

// handleRevokeKey revokes a meter's key: POST /meters/{id}/revoke. Readings
// signed with the key are refused from then on (403 key-revoked) by every
// server on the store; stored readings stay.
func (s *Server) handleRevokeKey(c echo.Context) error {
	id, err := meterID(c)
	if err != nil {
		return err
	}
	var req revokeRequest
	if err := decodeJSON(c, s.cfg.MaxBodyBytes, &req); err != nil {
		return err
	}
	if err := validReason(req.Reason); err != nil {
		return err
	}
	ev, err := s.store.RevokeKey(c.Request().Context(), id, req.Reason, s.cfg.Now())
	switch {
	case errors.Is(err, store.ErrNotFound):
		return problem(kindNotFound, "no meter %d", id)
	case errors.Is(err, store.ErrRevoked):
		return problem(kindAlreadyRevoked, "the key of meter %d is already revoked; replace it with POST /meters/%d/key", id, id)
	case err != nil:
		return err
	}
	s.keys.forget(*ev.OldFingerprint)
	s.logger.Info("meter key revoked", "id", id, "fingerprint", ev.OldFingerprint.String(), "reason", ev.Reason)
	return c.JSON(http.StatusOK, keyEventOut(ev))
}

// handleReplaceKey gives a meter a new key, retiring the old one: POST
// /meters/{id}/key. The meter keeps its id, username and readings.
func (s *Server) handleReplaceKey(c echo.Context) error {
	id, err := meterID(c)
	if err != nil {
		return err
	}
	var req replaceKeyRequest
	if err := decodeJSON(c, s.cfg.MaxBodyBytes, &req); err != nil {
		return err
	}
	if req.Base64PublicKey == "" {
		return problem(kindInvalidField, "base64PublicKey is required")
	}
	if err := validReason(req.Reason); err != nil {
		return err
	}
	key, err := crypto.ParsePublicKey(req.Base64PublicKey, s.cfg.MinRSABits)
	if err != nil {
		return problem(kindInvalidKey, "%v", err)
	}
	nk := store.NewKey{PublicKey: key.DER(), Fingerprint: key.Fingerprint(), Algorithm: key.Algorithm()}
	ev, err := s.store.ReplaceKey(c.Request().Context(), id, nk, req.Reason, s.cfg.Now())
	switch {
	case errors.Is(err, store.ErrNotFound):
		return problem(kindNotFound, "no meter %d", id)
	case errors.Is(err, store.ErrKeyTaken):
		return problem(kindKeyTaken, "this public key (fingerprint %s) is, or was, registered to a meter", nk.Fingerprint)
	case err != nil:
		return err
	}
	s.keys.forget(*ev.OldFingerprint)
	s.keys.add(id, key)
	s.logger.Info("meter key replaced", "id", id, "old", ev.OldFingerprint.String(), "new", nk.Fingerprint.String(), "reason", ev.Reason)
	return c.JSON(http.StatusOK, keyEventOut(ev))
}

// handleKeyHistory lists the keys a meter has had and its key events:
// GET /meters/{id}/keys.
func (s *Server) handleKeyHistory(c echo.Context) error {
	id, err := meterID(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	m, err := s.store.MeterByID(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return problem(kindNotFound, "no meter %d", id)
	}
	if err != nil {
		return err
	}
	keys, err := s.store.MeterKeys(ctx, id)
	if err != nil {
		return err
	}
	events, err := s.store.KeyEvents(ctx, id)
	if err != nil {
		return err
	}
	out := keyHistoryJSON{MeterID: id, RevokedAt: m.RevokedAt, Keys: make([]meterKeyJSON, 0, len(keys)), Events: make([]keyEventJSON, 0, len(events))}
	for _, k := range keys {
		out.Keys = append(out.Keys, meterKeyJSON{
			Fingerprint:     k.Fingerprint.String(),
			Algorithm:       k.Algorithm,
			Base64PublicKey: base64.StdEncoding.EncodeToString(k.PublicKey),
			AddedAt:         k.AddedAt,
			RetiredAt:       k.RetiredAt,
		})
	}
	for _, ev := range events {
		out.Events = append(out.Events, keyEventOut(ev))
	}
	return c.JSON(http.StatusOK, out)
}
