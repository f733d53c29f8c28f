package server

import (
	"log/slog"
	"net/netip"
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

// limitPublic guards the public listener: a client address over its rate
// is answered 429 rate-limited with Retry-After, before the body is read.
// Such answers are counted by smartmeters_http_request_seconds, not as
// rejected readings. /healthz and /readyz are exempt, so that probes tell
// overload from death.
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
		return next(c)
	}
}

// acquireSlot takes one of the MaxConcurrentRequests slots of reports in
// progress, or answers 503 overloaded at once; done gives it back. A
// report takes its slot once its body is read, so that clients that send
// their bodies slowly hold none: the slots bound the work of verifying and
// storing, and the memory budget what bodies in flight may hold.
func (s *Server) acquireSlot() (done func(), err error) {
	if s.slots == nil {
		return func() {}, nil
	}
	select {
	case s.slots <- struct{}{}:
		return func() { <-s.slots }, nil
	default:
		return func() {}, api.Errorf(api.Overloaded, "more than %d reports are in progress; retry", cap(s.slots))
	}
}

// logRequests times every request in smartmeters_http_request_seconds and
// logs it, never its body or keys: every request answered 5xx, and one in
// RequestLogEvery of the others (the line says so), so that a busy ingest
// listener does not spend its CPU on its log.
func (s *Server) logRequests(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		if err != nil {
			c.Error(err)
		}
		req, res := c.Request(), c.Response()
		latency := time.Since(start)
		s.metrics.observeRequest(c.Path(), res.Status, latency)
		level := slog.LevelInfo
		if res.Status >= 500 {
			level = slog.LevelError
		} else if every := s.cfg.RequestLogEvery; every <= 0 || s.requests.Add(1)%uint64(every) != 0 {
			return nil
		}
		s.logger.LogAttrs(req.Context(), level, "request",
			slog.String("method", req.Method),
			slog.String("path", req.URL.Path),
			slog.Int("status", res.Status),
			slog.Int64("bytes", res.Size),
			slog.Duration("latency", latency),
			slog.String("remote", req.RemoteAddr),
			slog.Int("sampled", max(s.cfg.RequestLogEvery, 1)),
		)
		return nil
	}
}
