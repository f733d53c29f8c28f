package ingest

import (
	"github.com/prometheus/client_golang/prometheus"

	"smartmeters/server/api"
)

// RejectionReasons are the problems a report can be refused with, which
// label smartmeters_readings_rejected_total.
var RejectionReasons = []api.Kind{
	api.MalformedRequest, api.InvalidField, api.InvalidKey, api.InvalidSignature,
	api.UnknownKey, api.KeyRevoked, api.ReadingConflict, api.BodyTooLarge, api.BatchTooLarge,
	api.UnsupportedMedia, api.TimestampFuture, api.RegisterDecreased, api.RateLimited,
	api.Overloaded, api.Unavailable, api.Internal,
}

// metrics are the ingest path's Prometheus metrics.
type metrics struct {
	receivedHTTP   prometheus.Counter
	receivedMQTT   prometheus.Counter
	stored         prometheus.Counter
	duplicate      prometheus.Counter
	rejected       *prometheus.CounterVec
	batchSize      prometheus.Histogram
	commitSeconds  prometheus.Histogram
	verifySeconds  *prometheus.HistogramVec
	keyCacheHits   prometheus.Counter
	keyCacheMisses prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	received := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "smartmeters_readings_received_total",
		Help: "Readings received, by transport: http (/reportReading and /reportReadings) or mqtt.",
	}, []string{"transport"})
	m := &metrics{
		receivedHTTP: received.WithLabelValues(string(HTTP)),
		receivedMQTT: received.WithLabelValues(string(MQTT)),
		stored: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "smartmeters_readings_stored_total",
			Help: "Readings newly committed to the store.",
		}),
		duplicate: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "smartmeters_readings_duplicate_total",
			Help: "Readings identical to one already stored (harmless resends).",
		}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "smartmeters_readings_rejected_total",
			Help: "Readings rejected, by problem type.",
		}, []string{"reason"}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "smartmeters_commit_batch_size",
			Help:    "Readings per group commit.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 11), // 1 … 1024
		}),
		commitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "smartmeters_commit_seconds",
			Help:    "Time to write and commit one batch.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14), // 0.5 ms … 4 s
		}),
		verifySeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "smartmeters_verify_seconds",
			Help:    "Time to verify one signature, by algorithm.",
			Buckets: prometheus.ExponentialBuckets(0.00001, 2, 12), // 10 µs … 20 ms
		}, []string{"algorithm"}),
		keyCacheHits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "smartmeters_key_cache_hits_total",
			Help: "Key lookups answered from memory (known or recently unknown keys).",
		}),
		keyCacheMisses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "smartmeters_key_cache_misses_total",
			Help: "Key lookups that went to the store.",
		}),
	}
	// Every reason is there from the start, at 0, so that rate() over it
	// is 0 rather than nothing until a first rejection.
	for _, k := range RejectionReasons {
		m.rejected.WithLabelValues(k.Slug)
	}
	reg.MustRegister(
		received, m.stored, m.duplicate, m.rejected, m.batchSize, m.commitSeconds,
		m.verifySeconds, m.keyCacheHits, m.keyCacheMisses,
	)
	return m
}

// received is the counter of readings received by via.
func (m *metrics) received(via Transport) prometheus.Counter {
	if via == MQTT {
		return m.receivedMQTT
	}
	return m.receivedHTTP
}
