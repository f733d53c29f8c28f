package mqtt

import "github.com/prometheus/client_golang/prometheus"

// metrics are the MQTT intake's Prometheus metrics. Readings it receives
// are counted by the ingest path, as
// smartmeters_readings_received_total{transport="mqtt"}, and refusals by
// reason in smartmeters_readings_rejected_total, as for HTTP.
type metrics struct {
	connected  prometheus.Gauge
	reconnects prometheus.Counter
	retries    prometheus.Counter
	published  prometheus.Counter
	held       prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		connected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "smartmeters_mqtt_connected",
			Help: "1 while the MQTT intake is connected to the broker, subscribed and able to publish results, 0 otherwise.",
		}),
		reconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "smartmeters_mqtt_reconnects_total",
			Help: "Attempts to reconnect to the MQTT broker after the connection was lost.",
		}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "smartmeters_mqtt_retries_total",
			Help: "MQTT messages processed again, unacknowledged, because the store did not take them or the memory budget had no room.",
		}),
		published: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "smartmeters_mqtt_results_published_total",
			Help: "Results published on the MQTT results topics.",
		}),
		held: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "smartmeters_mqtt_payloads_held",
			Help: "MQTT payloads the intake holds: being stored, or waiting for a worker or for room in the memory budget; at most --mqtt-in-flight plus one.",
		}),
	}
	reg.MustRegister(m.connected, m.reconnects, m.retries, m.published, m.held)
	return m
}
