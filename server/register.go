package server

import (
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"

	"smartmeters/crypto"
	"smartmeters/store"
)

type registerRequest struct {
	Username        string `json:"username"`
	Base64PublicKey string `json:"base64PublicKey"`
}

type registerResponse struct {
	ID          int64  `json:"id"`
	Username    string `json:"username"`
	Algorithm   string `json:"algorithm"`
	Fingerprint string `json:"fingerprint"`
}

// handleRegister registers a meter: POST /register on the admin listener.
func (s *Server) handleRegister(c echo.Context) error {
	var req registerRequest
	if err := decodeJSON(c, s.cfg.MaxBodyBytes, &req); err != nil {
		return err
	}
	if err := validUsername(req.Username); err != nil {
		return err
	}
	if req.Base64PublicKey == "" {
		return problem(kindInvalidField, "base64PublicKey is required")
	}
	key, err := crypto.ParsePublicKey(req.Base64PublicKey, s.cfg.MinRSABits)
	if err != nil {
		return problem(kindInvalidKey, "%v", err)
	}
	m := store.Meter{
		Username:     req.Username,
		PublicKey:    key.DER(),
		Fingerprint:  key.Fingerprint(),
		Algorithm:    key.Algorithm(),
		RegisteredAt: s.cfg.Now().UTC(),
	}
	if err := s.store.CreateMeter(c.Request().Context(), &m); err != nil {
		switch {
		case errors.Is(err, store.ErrUsernameTaken):
			return problem(kindUsernameTaken, "username %q is already registered", m.Username)
		case errors.Is(err, store.ErrKeyTaken):
			return problem(kindKeyTaken, "this public key (fingerprint %s) is already registered", m.Fingerprint)
		}
		return err
	}
	s.keys.add(m.ID, key)
	s.logger.Info("meter registered", "id", m.ID, "username", m.Username, "algorithm", m.Algorithm)
	return c.JSON(http.StatusCreated, registerResponse{
		ID:          m.ID,
		Username:    m.Username,
		Algorithm:   m.Algorithm,
		Fingerprint: m.Fingerprint.String(),
	})
}

// validUsername accepts 1 to 64 of A-Z a-z 0-9 . _ -.
func validUsername(u string) error {
	if u == "" {
		return problem(kindInvalidField, "username is required")
	}
	if len(u) > 64 {
		return problem(kindInvalidField, "username is %d bytes long; at most 64 are allowed", len(u))
	}
	for i := 0; i < len(u); i++ {
		switch ch := u[i]; {
		case 'a' <= ch && ch <= 'z', 'A' <= ch && ch <= 'Z', '0' <= ch && ch <= '9', ch == '.', ch == '_', ch == '-':
		default:
			return problem(kindInvalidField, "username has %q at byte %d; only A-Z a-z 0-9 . _ - are allowed", rune(ch), i)
		}
	}
	return nil
}
