package server

import (
	"log/slog"
	"net/netip"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"smartmeters/server/api"
)

// allowAdmin answers 403 to peers outside the admin allowlist. It looks only
// at the TCP peer address, never at forwarded-for headers.
func (s *Server) allowAdmin(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		ap, err := netip.ParseAddrPort(c.Request().RemoteAddr)
		if err != nil {
			return api.Errorf(api.AdminForbidden, "cannot tell the peer address")
		}
		addr := ap.Addr().Unmap()
		for _, p := range s.cfg.AdminAllow {
			if p.Contains(addr) {
				return next(c)
			}
		}
		return api.Errorf(api.AdminForbidden, "%s is not in the admin allowlist", addr)
	}
}

// limitPublic guards the public listener: requests beyond
// MaxConcurrentRequests in progress are answered 503 overloaded at once,
// and a client address over its rate 429 rate-limited, both with
// Retry-After and before the body is read. They are counted by
// smartmeters_http_request_seconds, not as rejected readings. /healthz and
// /readyz are exempt, so that probes tell overload from death.
func (s *Server) limitPublic(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		switch c.Path() {
		case "/healthz", "/readyz":
			return next(c)
		}
		if s.perAddr != nil {
			if ap, err := netip.ParseAddrPort(c.Request().RemoteAddr); err == nil {
				addr := ap.Addr().Unmap()
				if ok, wait := s.perAddr.Take(addr, 1, s.cfg.Now()); !ok {
					p := api.Errorf(api.RateLimited, "%s sends more than %g requests a second; retry in %s",
						addr, s.perAddr.Rate(), wait.Round(time.Millisecond))
					p.RetryAfter = wait
					return p
				}
			}
		}
		if s.slots != nil {
			select {
			case s.slots <- struct{}{}:
				defer func() { <-s.slots }()
			default:
				return api.Errorf(api.Overloaded, "more than %d requests are in progress; retry", cap(s.slots))
			}
		}
		return next(c)
	}
}

// logRequests logs one line per request, never bodies or keys, and
// observes its latency.
func (s *Server) logRequests(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		if err != nil {
			c.Error(err)
		}
		req, res := c.Request(), c.Response()
		level := slog.LevelInfo
		if res.Status >= 500 {
			level = slog.LevelError
		}
		latency := time.Since(start)
		s.metrics.httpSeconds.WithLabelValues(c.Path(), strconv.Itoa(res.Status)).Observe(latency.Seconds())
		s.logger.LogAttrs(req.Context(), level, "request",
			slog.String("method", req.Method),
			slog.String("path", req.URL.Path),
			slog.Int("status", res.Status),
			slog.Int64("bytes", res.Size),
			slog.Duration("latency", latency),
			slog.String("remote", req.RemoteAddr),
		)
		return nil
	}
}
