package server

import (
	"log/slog"
	"net/netip"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
)

// allowAdmin answers 403 to peers outside the admin allowlist. It looks only
// at the TCP peer address, never at forwarded-for headers.
func (s *Server) allowAdmin(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		ap, err := netip.ParseAddrPort(c.Request().RemoteAddr)
		if err != nil {
			return problem(kindAdminForbidden, "cannot tell the peer address")
		}
		addr := ap.Addr().Unmap()
		for _, p := range s.cfg.AdminAllow {
			if p.Contains(addr) {
				return next(c)
			}
		}
		return problem(kindAdminForbidden, "%s is not in the admin allowlist", addr)
	}
}

// logRequests logs one line per request: never bodies, never keys.
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
