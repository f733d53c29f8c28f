package server

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"smartmeters/db"
	"smartmeters/server/api"
)

// errNoAnswer is checkSchema's error when the database did not answer in
// time.
var errNoAnswer = errors.New("the store did not answer the schema check in time")

// HealthStore is what /readyz needs from storage.
type HealthStore interface {
	Ping(ctx context.Context) error
}

// health answers /healthz and /readyz. It caches the outcome of the
// schema check, so that /readyz, which orchestrators poll often, reads the
// schema version at most once per ttl.
type health struct {
	store       HealthStore
	schemaCheck func(context.Context) error   // nil: none
	mqtt        interface{ Connected() bool } // nil: no MQTT intake
	ttl         time.Duration
	now         func() time.Time
	logger      *slog.Logger

	mu      sync.Mutex
	checked time.Time
	err     error
}

func (h *health) handleHealthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

// handleReadyz answers 200 when the store answers and its schema is current,
// 503 otherwise, so that an orchestrator can hold traffic back from an
// instance that cannot store. With an MQTT intake, the answer says whether
// it is connected ("mqtt": "connected" or "disconnected"), without making
// the instance unready: HTTP is served all the same, and every replica
// shares the broker, so that a broker outage would otherwise take HTTP
// down with it.
func (h *health) handleReadyz(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
	defer cancel()
	if err := h.store.Ping(ctx); err != nil {
		h.logger.Warn("not ready", "err", err)
		return api.Errorf(api.Unavailable, "the store does not answer")
	}
	if err := h.checkSchema(ctx); err != nil {
		h.logger.Warn("not ready", "err", err)
		if errors.Is(err, errNoAnswer) {
			return api.Errorf(api.Unavailable, "the store does not answer")
		}
		return api.Errorf(api.Unavailable, "the database schema is not what this binary needs; run smartmeters migrate up")
	}
	answer := map[string]string{"status": "ready"}
	if h.mqtt != nil {
		answer["mqtt"] = "disconnected"
		if h.mqtt.Connected() {
			answer["mqtt"] = "connected"
		}
	}
	return c.JSON(http.StatusOK, answer)
}

// checkSchema returns the error of the latest schema check, running it
// when the cached one is older than the TTL; nil when no check is
// configured.
func (h *health) checkSchema(ctx context.Context) error {
	if h.schemaCheck == nil {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.now()
	if !h.checked.IsZero() && now.Sub(h.checked) < h.ttl {
		return h.err
	}
	// A check that the database did not answer in time says nothing about
	// the schema: it is not kept, and it is told apart by the caller.
	err := db.Await(ctx, func() error { return h.schemaCheck(ctx) })
	if ctx.Err() != nil {
		return errNoAnswer
	}
	h.err, h.checked = err, now
	return h.err
}
