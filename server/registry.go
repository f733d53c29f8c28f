package server

import (
	"context"
	"encoding/base64"
	"errors"
	"log/slog"
	"net/http"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"smartmeters/crypto"
	"smartmeters/server/api"
	"smartmeters/store"
)

// RegistryStore is what the registry API needs from storage: meters and
// their keys.
type RegistryStore interface {
	CreateMeter(ctx context.Context, m *store.Meter) error
	MeterByID(ctx context.Context, id int64) (store.Meter, error)
	RevokeKey(ctx context.Context, id int64, reason string, at time.Time) (store.KeyEvent, error)
	ReplaceKey(ctx context.Context, id int64, k store.NewKey, reason string, at time.Time) (store.KeyEvent, error)
	MeterKeys(ctx context.Context, id int64) ([]store.MeterKey, error)
	KeyEvents(ctx context.Context, id int64) ([]store.KeyEvent, error)
}

// KeyCache is what the registry tells of the keys it changes: the ingest
// path's key cache, which forgets them once they are committed and learns
// them again from the store.
type KeyCache interface {
	Forget(fp crypto.Fingerprint)
}

// registryAPI registers meters and changes their keys, on the admin
// listener: POST /register, POST /meters/{id}/revoke, POST
// /meters/{id}/key and GET /meters/{id}/keys.
type registryAPI struct {
	store      RegistryStore
	keys       KeyCache
	minRSABits int
	decode     func(c echo.Context, v any) error // reads a request body into v
	now        func() time.Time
	logger     *slog.Logger
}

// handleRegister registers a meter: POST /register on the admin listener.
func (a *registryAPI) handleRegister(c echo.Context) error {
	var req api.RegisterRequest
	if err := a.decode(c, &req); err != nil {
		return err
	}
	if err := validUsername(req.Username); err != nil {
		return err
	}
	if req.Base64PublicKey == "" {
		return api.Errorf(api.InvalidField, "base64PublicKey is required")
	}
	key, err := crypto.ParsePublicKey(req.Base64PublicKey, a.minRSABits)
	if err != nil {
		return api.Errorf(api.InvalidKey, "%v", err)
	}
	m := store.Meter{
		Username:     req.Username,
		PublicKey:    key.DER(),
		Fingerprint:  key.Fingerprint(),
		Algorithm:    key.Algorithm(),
		RegisteredAt: a.now().UTC(),
	}
	if err := a.store.CreateMeter(c.Request().Context(), &m); err != nil {
		switch {
		case errors.Is(err, store.ErrUsernameTaken):
			return api.Errorf(api.UsernameTaken, "username %q is already registered", m.Username)
		case errors.Is(err, store.ErrKeyTaken):
			return api.Errorf(api.KeyTaken, "this public key (fingerprint %s) is already registered", m.Fingerprint)
		}
		return err
	}
	a.keys.Forget(m.Fingerprint) // that it was unknown
	a.logger.Info("meter registered", "id", m.ID, "username", m.Username, "algorithm", m.Algorithm)
	return c.JSON(http.StatusCreated, api.RegisterResponse{
		ID:          m.ID,
		Username:    m.Username,
		Algorithm:   m.Algorithm,
		Fingerprint: m.Fingerprint.String(),
	})
}

// validUsername accepts 1 to 64 of A-Z a-z 0-9 . _ -.
func validUsername(u string) error {
	if u == "" {
		return api.Errorf(api.InvalidField, "username is required")
	}
	if len(u) > 64 {
		return api.Errorf(api.InvalidField, "username is %d bytes long; at most 64 are allowed", len(u))
	}
	for i := 0; i < len(u); i++ {
		switch ch := u[i]; {
		case 'a' <= ch && ch <= 'z', 'A' <= ch && ch <= 'Z', '0' <= ch && ch <= '9', ch == '.', ch == '_', ch == '-':
		default:
			return api.Errorf(api.InvalidField, "username has %q at byte %d; only A-Z a-z 0-9 . _ - are allowed", rune(ch), i)
		}
	}
	return nil
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

// validReason accepts 1 to maxReasonBytes of UTF-8 text without control
// characters (tabs and line breaks aside): a key change without a
// reason makes a poor audit trail.
func validReason(r string) error {
	if r == "" {
		return api.Errorf(api.InvalidField, "reason is required")
	}
	if len(r) > maxReasonBytes {
		return api.Errorf(api.InvalidField, "reason is %d bytes long; at most %d are allowed", len(r), maxReasonBytes)
	}
	if !utf8.ValidString(r) {
		return api.Errorf(api.InvalidField, "reason is not valid UTF-8")
	}
	for i, c := range r {
		if unicode.IsControl(c) && c != '\t' && c != '\n' {
			return api.Errorf(api.InvalidField, "reason has the control character %U at byte %d; write it as text", c, i)
		}
	}
	return nil
}

// handleRevokeKey revokes a meter's key: POST /meters/{id}/revoke. Readings
// signed with the key are refused from then on (403 key-revoked) by every
// server on the store; stored readings stay.
func (a *registryAPI) handleRevokeKey(c echo.Context) error {
	id, err := api.ParseMeterID(c.Param("id"))
	if err != nil {
		return err
	}
	var req revokeRequest
	if err := a.decode(c, &req); err != nil {
		return err
	}
	if err := validReason(req.Reason); err != nil {
		return err
	}
	ev, err := a.store.RevokeKey(c.Request().Context(), id, req.Reason, a.now())
	switch {
	case errors.Is(err, store.ErrNotFound):
		return api.Errorf(api.NotFound, "no meter %d", id)
	case errors.Is(err, store.ErrRevoked):
		return api.Errorf(api.AlreadyRevoked, "the key of meter %d is already revoked; replace it with POST /meters/%d/key", id, id)
	case err != nil:
		return err
	}
	a.keys.Forget(*ev.OldFingerprint)
	a.logger.Info("meter key revoked", "id", id, "fingerprint", ev.OldFingerprint.String(), "reason", ev.Reason)
	return c.JSON(http.StatusOK, keyEventOut(ev))
}

// handleReplaceKey gives a meter a new key, retiring the old one: POST
// /meters/{id}/key. The meter keeps its id, username and readings.
func (a *registryAPI) handleReplaceKey(c echo.Context) error {
	id, err := api.ParseMeterID(c.Param("id"))
	if err != nil {
		return err
	}
	var req replaceKeyRequest
	if err := a.decode(c, &req); err != nil {
		return err
	}
	if req.Base64PublicKey == "" {
		return api.Errorf(api.InvalidField, "base64PublicKey is required")
	}
	if err := validReason(req.Reason); err != nil {
		return err
	}
	key, err := crypto.ParsePublicKey(req.Base64PublicKey, a.minRSABits)
	if err != nil {
		return api.Errorf(api.InvalidKey, "%v", err)
	}
	nk := store.NewKey{PublicKey: key.DER(), Fingerprint: key.Fingerprint(), Algorithm: key.Algorithm()}
	ev, err := a.store.ReplaceKey(c.Request().Context(), id, nk, req.Reason, a.now())
	switch {
	case errors.Is(err, store.ErrNotFound):
		return api.Errorf(api.NotFound, "no meter %d", id)
	case errors.Is(err, store.ErrKeyTaken):
		return api.Errorf(api.KeyTaken, "this public key (fingerprint %s) is, or was, registered to a meter", nk.Fingerprint)
	case err != nil:
		return err
	}
	a.keys.Forget(*ev.OldFingerprint)
	a.keys.Forget(nk.Fingerprint)
	a.logger.Info("meter key replaced", "id", id, "old", ev.OldFingerprint.String(), "new", nk.Fingerprint.String(), "reason", ev.Reason)
	return c.JSON(http.StatusOK, keyEventOut(ev))
}

// handleKeyHistory lists the keys a meter has had and its key events:
// GET /meters/{id}/keys.
func (a *registryAPI) handleKeyHistory(c echo.Context) error {
	id, err := api.ParseMeterID(c.Param("id"))
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	m, err := a.store.MeterByID(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return api.Errorf(api.NotFound, "no meter %d", id)
	}
	if err != nil {
		return err
	}
	keys, err := a.store.MeterKeys(ctx, id)
	if err != nil {
		return err
	}
	events, err := a.store.KeyEvents(ctx, id)
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
