package server

import (
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"smartmeters/server/api"
)

// route wires every route of both listeners.
func (s *Server) route() {
	pub := s.public
	pub.Use(s.limitPublic)
	pub.POST(api.PathReportReading, s.handleReportReading)
	pub.POST(api.PathReportReadings, s.handleReportReadings)
	pub.GET("/healthz", s.health.handleHealthz)
	pub.GET("/readyz", s.health.handleReadyz)
	pub.GET("/openapi.json", serveOpenAPI(publicOpenAPI))

	adm := s.admin
	adm.Use(s.allowAdmin)
	adm.GET("/healthz", s.health.handleHealthz)
	adm.GET("/readyz", s.health.handleReadyz)
	adm.GET("/openapi.json", serveOpenAPI(adminOpenAPI))
	adm.POST(api.PathRegister, s.registry.handleRegister)
	adm.POST("/meters/:id/revoke", s.registry.handleRevokeKey)
	adm.POST("/meters/:id/key", s.registry.handleReplaceKey)
	adm.GET("/meters/:id/keys", s.registry.handleKeyHistory)
	adm.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(s.metrics.registry, promhttp.HandlerOpts{})))
	routePprof(adm)
	s.reporting.Route(adm)
}
