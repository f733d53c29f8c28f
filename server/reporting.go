package server

import (
	"context"
	"time"

	"github.com/labstack/echo/v4"

	"smartmeters/crypto"
	"smartmeters/store"
)

// ReportingStore is what the reporting API needs from storage: reading the
// fleet and its readings back.
type ReportingStore interface {
	ListMeters(ctx context.Context, f store.MeterFilter) ([]store.MeterSummary, error)
	MeterSummaryByID(ctx context.Context, id int64) (store.MeterSummary, error)
	ReadingsBetween(ctx context.Context, meterID, from, to int64, limit int) ([]store.Reading, error)
	EachReading(ctx context.Context, meterID int64, fn func(store.Reading) error) error
	RegisterSeries(ctx context.Context, meterID, from, to int64) ([]crypto.Reading, error)
	CountMeters(ctx context.Context) (int64, error)
	CountReportingMeters(ctx context.Context, since time.Time) (int64, error)
	EachRegisterBetween(ctx context.Context, from, to int64, fn func(meterID int64, r crypto.Reading) error) error
}

// routeReporting sets up the reporting side on the admin listener e: the
// live figures fed by the ingest hooks (events.go), the JSON API that reads
// the fleet back, the CSV export, the event stream and the dashboard.
func (s *Server) routeReporting(e *echo.Echo) {
	s.live = newLiveStats()
	e.GET("/meters", s.handleListMeters)
	e.GET("/meters/:id", s.handleMeter)
	e.GET("/meters/:id/readings", s.handleMeterReadings)
	e.GET("/meters/:id/consumption", s.handleConsumption)
	e.GET("/meters/:id/export.csv", s.handleExport)
	e.GET("/fleet", s.handleFleet)
	e.GET("/events", s.handleEvents)
	s.routeDashboard(e)
}
