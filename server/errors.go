package server

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"smartmeters/server/api"
	"smartmeters/store"
)

// problemOf is the one place where an error becomes an answer. A Problem
// passes through; echo's own errors (unknown route, wrong method) become
// their kinds; a store that cannot do the work just now (store.Unavailable)
// is a 503 that asks for a retry, on every route alike; any other error is
// a 500 whose detail says only "internal error" while the log gets the
// whole story.
func (s *Server) problemOf(c echo.Context, err error) *api.Problem {
	var p *api.Problem
	var he *echo.HTTPError
	switch {
	case errors.As(err, &p):
		return p
	case errors.As(err, &he):
		if he.Code == http.StatusNotFound {
			if other := s.otherListener(c); other != "" {
				return api.Errorf(api.NotFound, "%s %s is on the %s listener, not this one", c.Request().Method, c.Request().URL.Path, other)
			}
		}
		return httpErrorProblem(he)
	}
	ctx := c.Request().Context()
	switch {
	case store.Unavailable(err):
		s.logger.WarnContext(ctx, "store unavailable", "method", c.Request().Method, "path", c.Path(), "err", err)
		return api.Errorf(api.Unavailable, "the store is unavailable; retry")
	case errors.Is(err, context.Canceled):
		// The client went away or the server is stopping: no one reads
		// the answer, and nothing failed.
		s.logger.DebugContext(ctx, "request canceled", "method", c.Request().Method, "path", c.Path(), "err", err)
		return api.Errorf(api.Unavailable, "the request was canceled; retry")
	}
	s.logger.ErrorContext(ctx, "request failed", "method", c.Request().Method, "path", c.Path(), "err", err)
	return api.Errorf(api.Internal, "internal error")
}

// renderError is the HTTP error handler of both listeners: it writes err
// as problem+json, with Retry-After on a 429 or 503.
func (s *Server) renderError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	p := s.problemOf(c, err)
	setRetryAfter(c, p)
	c.Response().Header().Set(echo.HeaderContentType, "application/problem+json")
	c.Response().WriteHeader(p.Status)
	if c.Request().Method == http.MethodHead {
		return
	}
	if err := encodeJSON(c.Response(), p); err != nil {
		s.logger.DebugContext(c.Request().Context(), "write problem", "err", err)
	}
}

// setRetryAfter sets the Retry-After header for a problem a client should
// retry (429, 503), unless a longer wait is already set: the problem's
// own wait, or a second.
func setRetryAfter(c echo.Context, p *api.Problem) {
	if p.Status != http.StatusServiceUnavailable && p.Status != http.StatusTooManyRequests {
		return
	}
	h := c.Response().Header()
	secs := retryAfterSeconds(p.RetryAfter)
	if cur, err := strconv.Atoi(h.Get("Retry-After")); err == nil && cur >= secs {
		return
	}
	h.Set("Retry-After", strconv.Itoa(secs))
}

// retryAfterSeconds is a wait in whole seconds, rounded up, at least 1.
func retryAfterSeconds(wait time.Duration) int {
	return max(1, int(math.Ceil(wait.Seconds())))
}

func httpErrorProblem(he *echo.HTTPError) *api.Problem {
	msg := http.StatusText(he.Code)
	switch he.Code {
	case http.StatusNotFound:
		return api.Errorf(api.NotFound, "%s", msg)
	case http.StatusMethodNotAllowed:
		return api.Errorf(api.MethodNotAllowed, "%s", msg)
	case http.StatusRequestEntityTooLarge:
		return api.Errorf(api.BodyTooLarge, "%s", msg)
	case http.StatusUnsupportedMediaType:
		return api.Errorf(api.UnsupportedMedia, "%s", msg)
	case http.StatusServiceUnavailable:
		return api.Errorf(api.Unavailable, "%s", msg)
	}
	if he.Code >= 500 {
		return api.Errorf(api.Internal, "internal error")
	}
	k := api.Kind{Slug: "http-" + fmt.Sprint(he.Code), Title: msg, Status: he.Code}
	return api.Errorf(k, "%v", he.Message)
}

// otherListener names the other listener ("admin" or "public") when it,
// and not the one c came in on, routes c's request, as when a client
// posts /register to the public listener; otherwise it returns "".
func (s *Server) otherListener(c echo.Context) string {
	other, name := s.admin, "admin"
	if c.Echo() == s.admin {
		other, name = s.public, "public"
	}
	req := c.Request()
	probe := other.NewContext(req, nil)
	other.Router().Find(req.Method, req.URL.Path, probe)
	if probe.Path() == "" {
		return ""
	}
	return name
}
