package server

import (
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"smartmeters/buildinfo"
)

// metrics are the server's Prometheus metrics, on a registry of its own so
// that several servers can live in one process (as in tests). The ingest
// path registers its own on the same registry.
type metrics struct {
	registry      *prometheus.Registry
	httpSeconds   *prometheus.HistogramVec
	observers     sync.Map // routeCode → prometheus.Observer, httpSeconds' children
	budgetInUse   prometheus.Gauge
	budgetRefused prometheus.Counter
}

func newMetrics() *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		httpSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "smartmeters_http_request_seconds",
			Help:    "HTTP request latency, by route and status code.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}, []string{"route", "code"}),
		budgetInUse: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "smartmeters_memory_budget_bytes_in_use",
			Help: "Bytes of the memory budget held by open connections and request bodies in flight.",
		}),
		budgetRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "smartmeters_memory_budget_refused_total",
			Help: "Connections and request bodies refused because the memory budget, or a client's share of it, was spent.",
		}),
	}
	buildInfo := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "smartmeters_build_info",
		Help:        "Always 1; its labels name the build: the binary's version and the Go version it was built with.",
		ConstLabels: prometheus.Labels{"version": buildinfo.Version(), "goversion": buildinfo.GoVersion()},
	})
	buildInfo.Set(1)
	m.registry.MustRegister(
		m.httpSeconds, m.budgetInUse, m.budgetRefused, buildInfo,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// unmatchedRoute labels the requests that matched no route, so that
// probes of made-up paths neither hide nor multiply the label's values.
const unmatchedRoute = "unmatched"

type routeCode struct {
	route string
	code  int
}

// observeRequest records one request's latency under its route and status
// code, looking the histogram's child up once per pair rather than
// hashing the labels on every request.
func (m *metrics) observeRequest(route string, code int, latency time.Duration) {
	if route == "" {
		route = unmatchedRoute
	}
	key := routeCode{route, code}
	o, ok := m.observers.Load(key)
	if !ok {
		o, _ = m.observers.LoadOrStore(key, m.httpSeconds.WithLabelValues(route, strconv.Itoa(code)))
	}
	o.(prometheus.Observer).Observe(latency.Seconds())
}
