package reporting

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"
)

var meterStatesDesc = prometheus.NewDesc("smartmeters_meters",
	"Meters by state: registered; reporting (a reading timestamped within --silent-after) and silent (none), of those whose key is not revoked; revoked.",
	[]string{"state"}, nil)

// meterStates is the smartmeters_meters gauge, counted by the store when
// scraped (at most every fleetCountsTTL, shared with the event stream),
// so that an alert can fire on silent meters. While the store does not
// answer the gauge is left out, rather than reporting stale counts.
type meterStates struct{ a *API }

func (m meterStates) Describe(ch chan<- *prometheus.Desc) { ch <- meterStatesDesc }

func (m meterStates) Collect(ch chan<- prometheus.Metric) {
	c, err := m.a.meterCounts(context.Background(), m.a.now())
	if err != nil {
		return
	}
	for _, s := range []struct {
		state string
		n     int64
	}{{"registered", c.Registered}, {"reporting", c.Reporting}, {"silent", c.Silent}, {"revoked", c.Revoked}} {
		ch <- prometheus.MustNewConstMetric(meterStatesDesc, prometheus.GaugeValue, float64(s.n), s.state)
	}
}
