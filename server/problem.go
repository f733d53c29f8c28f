package server

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
)

// problemTypePrefix starts every problem type URI. The suffixes are a public
// interface: clients branch on them.
const problemTypePrefix = "urn:smartmeters:problem:"

// kind is one cause of failure with a stable problem type and HTTP status.
type kind struct {
	slug   string
	title  string
	status int
}

// The causes a client can be told about. README lists them all.
var (
	kindMalformedRequest = kind{"malformed-request", "Request body is not the expected JSON", http.StatusBadRequest}
	kindInvalidField     = kind{"invalid-field", "A field is missing or out of range", http.StatusBadRequest}
	kindInvalidParameter = kind{"invalid-parameter", "A query parameter is malformed or out of range", http.StatusBadRequest}
	kindInvalidKey       = kind{"invalid-key", "Public key is malformed or not accepted", http.StatusBadRequest}
	kindInvalidSignature = kind{"invalid-signature", "Signature does not verify", http.StatusBadRequest}
	kindUnknownKey       = kind{"unknown-key", "Public key is not registered", http.StatusForbidden}
	kindKeyRevoked       = kind{"key-revoked", "Public key has been revoked", http.StatusForbidden}
	kindAdminForbidden   = kind{"admin-forbidden", "Address not allowed on the admin listener", http.StatusForbidden}
	kindNotFound         = kind{"not-found", "No such resource", http.StatusNotFound}
	kindMethodNotAllowed = kind{"method-not-allowed", "Method not allowed", http.StatusMethodNotAllowed}
	kindUsernameTaken    = kind{"username-taken", "Username is already registered", http.StatusConflict}
	kindKeyTaken         = kind{"key-taken", "Public key is already registered", http.StatusConflict}
	kindAlreadyRevoked   = kind{"already-revoked", "The meter's key is already revoked", http.StatusConflict}
	kindReadingConflict  = kind{"reading-conflict", "A different reading is stored for this meter and timestamp", http.StatusConflict}
	kindBodyTooLarge     = kind{"body-too-large", "Request body is too large", http.StatusRequestEntityTooLarge}
	kindBatchTooLarge    = kind{"batch-too-large", "Too many readings in one request", http.StatusRequestEntityTooLarge}
	kindUnsupportedMedia = kind{"unsupported-media-type", "Content-Type must be application/json", http.StatusUnsupportedMediaType}
	kindTimestampFuture  = kind{"timestamp-in-future", "Reading timestamp is ahead of the server clock", http.StatusUnprocessableEntity}
	kindUnavailable      = kind{"unavailable", "Service temporarily unavailable", http.StatusServiceUnavailable}
	kindInternal         = kind{"internal", "Internal error", http.StatusInternalServerError}
)

// The causes that guard the store's integrity and the server's capacity.
var (
	kindRegisterDecreased = kind{"register-decreased", "Reading would make a cumulative register decrease", http.StatusUnprocessableEntity}
	kindRateLimited       = kind{"rate-limited", "Too many requests; slow down", http.StatusTooManyRequests}
	kindOverloaded        = kind{"overloaded", "Too many requests in progress; retry", http.StatusServiceUnavailable}
)

// Problem is an RFC 9457 problem detail. Handlers return it as an error; the
// error handler renders it.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`

	// meterID names the meter a rejected reading came from, when its key
	// was registered; 0 otherwise. It is not sent.
	meterID int64
	// retryAfter, when positive, is sent as the Retry-After header of a
	// 429 or 503 (rounded up to seconds); otherwise 1 s is.
	retryAfter time.Duration
}

// forMeter marks p as a rejection of a reading of meter id.
func (p *Problem) forMeter(id int64) *Problem {
	p.meterID = id
	return p
}

func (p *Problem) Error() string { return p.Type + ": " + p.Detail }

// slug is the stable last part of the problem type, such as "unknown-key".
func (p *Problem) slug() string { return strings.TrimPrefix(p.Type, problemTypePrefix) }

// problem returns a Problem of kind k with a detail formatted from format
// and args.
func problem(k kind, format string, args ...any) *Problem {
	return &Problem{
		Type:   problemTypePrefix + k.slug,
		Title:  k.title,
		Status: k.status,
		Detail: fmt.Sprintf(format, args...),
	}
}

// errorHandler renders every error as problem+json. Problems pass through;
// echo's own errors (unknown route, wrong method) become their kinds; any
// other error is a 500 whose body says only "internal error" while the log
// gets the whole story.
func errorHandler(logger *slog.Logger) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		var p *Problem
		var he *echo.HTTPError
		switch {
		case errors.As(err, &p):
		case errors.As(err, &he):
			p = httpErrorProblem(he)
		default:
			logger.ErrorContext(c.Request().Context(), "request failed",
				"method", c.Request().Method, "path", c.Path(), "err", err)
			p = problem(kindInternal, "internal error")
		}
		if p.Status == http.StatusServiceUnavailable || p.Status == http.StatusTooManyRequests {
			if c.Response().Header().Get("Retry-After") == "" {
				c.Response().Header().Set("Retry-After", retryAfterValue(p.retryAfter))
			}
		}
		c.Response().Header().Set(echo.HeaderContentType, "application/problem+json")
		c.Response().WriteHeader(p.Status)
		if c.Request().Method == http.MethodHead {
			return
		}
		if err := encodeJSON(c.Response(), p); err != nil {
			logger.DebugContext(c.Request().Context(), "write problem", "err", err)
		}
	}
}

func httpErrorProblem(he *echo.HTTPError) *Problem {
	msg := http.StatusText(he.Code)
	switch he.Code {
	case http.StatusNotFound:
		return problem(kindNotFound, "%s", msg)
	case http.StatusMethodNotAllowed:
		return problem(kindMethodNotAllowed, "%s", msg)
	case http.StatusRequestEntityTooLarge:
		return problem(kindBodyTooLarge, "%s", msg)
	case http.StatusUnsupportedMediaType:
		return problem(kindUnsupportedMedia, "%s", msg)
	case http.StatusServiceUnavailable:
		return problem(kindUnavailable, "%s", msg)
	}
	if he.Code >= 500 {
		return problem(kindInternal, "internal error")
	}
	k := kind{slug: "http-" + fmt.Sprint(he.Code), title: msg, status: he.Code}
	return problem(k, "%v", he.Message)
}
