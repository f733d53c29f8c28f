// Package reporting reads the fleet back for operators: the meter list and
// each meter's state, readings and consumption, the fleet's figures, the
// CSV export, the live event stream and the dashboard, all on the admin
// listener.
//
// It learns what ingest does through Live, an ingest.Observer, and reads
// everything else from its own Store; it never touches the ingest path.
// The energy arithmetic is the pure package energy.
package reporting

import (
	"context"
	"log/slog"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"smartmeters/crypto"
	"smartmeters/server/api"
	"smartmeters/store"
)

// Store is what the reporting API needs from storage: reading the fleet
// and its readings back.
type Store interface {
	ListMeters(ctx context.Context, f store.MeterFilter) ([]store.MeterSummary, error)
	MeterSummaryByID(ctx context.Context, id int64) (store.MeterSummary, error)
	MeterKeys(ctx context.Context, id int64) ([]store.MeterKey, error)
	ReadingsBetween(ctx context.Context, meterID, from, to int64, limit int) ([]store.Reading, error)
	NewestReadingsBetween(ctx context.Context, meterID, from, to int64, limit int) ([]store.Reading, error)
	RegisterSeries(ctx context.Context, meterID, from, to int64) ([]crypto.Reading, error)
	RegistersAround(ctx context.Context, meterID int64, edges []int64) ([]crypto.Reading, error)
	CountMeterStates(ctx context.Context, since time.Time) (store.MeterCounts, error)
	EachRegisterBetween(ctx context.Context, from, to int64, fn func(meterID int64, r crypto.Reading) error) error
	FleetEnergy(ctx context.Context, edges []int64) ([][2]int64, error)
}

// API serves the reporting endpoints and the dashboard.
type API struct {
	store      Store
	live       *Live
	exportKey  *crypto.PrivateKey // signs exports
	exportsCut prometheus.Counter
	// silentAfter is how long a meter may go without a reading before it
	// is silent, unless a request's window says otherwise.
	silentAfter time.Duration
	now         func() time.Time
	logger      *slog.Logger
}

// New returns the reporting API over st, with the live figures of live,
// signing exports with exportKey, calling a meter silent after silentAfter
// without a reading, and registering its metrics on reg; now is the clock
// (nil for time.Now).
func New(st Store, live *Live, exportKey *crypto.PrivateKey, silentAfter time.Duration, reg prometheus.Registerer, now func() time.Time, logger *slog.Logger) *API {
	if now == nil {
		now = time.Now
	}
	a := &API{store: st, live: live, exportKey: exportKey, silentAfter: silentAfter, now: now, logger: logger}
	a.exportsCut = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "smartmeters_exports_cut_off_total",
		Help: "Exports ended before their last row: the client stopped reading, or the store failed.",
	})
	reg.MustRegister(a.exportsCut, meterStates{a})
	return a
}

// Route sets up the reporting endpoints and the dashboard on e.
func (a *API) Route(e *echo.Echo) {
	e.GET("/meters", a.handleListMeters)
	e.GET("/meters/:id", a.handleMeter)
	e.GET("/meters/:id/readings", a.handleMeterReadings)
	e.GET("/meters/:id/consumption", a.handleConsumption)
	e.GET("/meters/:id/export.csv", a.handleExport)
	e.GET(api.PathSigningKey, a.handleSigningKey)
	e.GET("/fleet", a.handleFleet)
	e.GET("/fleet/consumption.csv", a.handleFleetCSV)
	e.GET("/events", a.handleEvents)
	a.routeDashboard(e)
}
