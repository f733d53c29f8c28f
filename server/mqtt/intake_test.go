package mqtt_test

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"smartmeters/server/ingest"
	"smartmeters/server/mqtt"
)

// noIngest is never called: New only checks its configuration.
type noIngest struct{}

func (noIngest) Report(context.Context, ingest.Transport, []byte) ingest.Result {
	return ingest.Result{}
}
func (noIngest) ReportBatch(context.Context, ingest.Transport, []byte) ([]ingest.Result, error) {
	return nil, nil
}
func (noIngest) Refuse(err error) error { return err }

type noBudget struct{}

func (noBudget) Take(int64) bool { return true }
func (noBudget) Give(int64)      {}

func TestNewRefusesBadConfig(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.pem")
	for _, c := range []struct {
		name string
		set  func(*mqtt.Config)
		want string
	}{
		{"HTTPBroker", func(c *mqtt.Config) { c.Broker = "http://127.0.0.1:1883" }, "want mqtt://host:port"},
		{"NoPort", func(c *mqtt.Config) { c.Broker = "mqtt://127.0.0.1" }, "want mqtt://host:port"},
		{"HashTopic", func(c *mqtt.Config) { c.Topic = "smartmeters/#" }, "# is not allowed"},
		{"PartialPlus", func(c *mqtt.Config) { c.Topic = "smartmeters/a+" }, "+ must be a whole level"},
		{"DollarTopic", func(c *mqtt.Config) { c.Topic = "$SYS/x" }, "broker's"},
		{"EmptyTopic", func(c *mqtt.Config) { c.Topic = "" }, "empty"},
		{"WildcardResults", func(c *mqtt.Config) { c.ResultsTopic = "results/+" }, "without wildcards"},
		{"NoClientID", func(c *mqtt.Config) { c.ClientID = "" }, "client ID"},
		{"CAWithoutTLS", func(c *mqtt.Config) { c.CACert = missing }, "need an mqtts:// broker"},
		{"MissingCA", func(c *mqtt.Config) { c.Broker, c.CACert = "mqtts://127.0.0.1:8883", missing }, "MQTT CA"},
		{"CertWithoutKey", func(c *mqtt.Config) { c.Broker, c.Cert = "mqtts://127.0.0.1:8883", missing }, "go together"},
		{"NegativeRate", func(c *mqtt.Config) { c.RatePerTopic = -1 }, "rate per topic"},
		{"NegativeInFlight", func(c *mqtt.Config) { c.InFlight = -1 }, "InFlight -1 out of range"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := mqtt.Config{
				Broker: "mqtt://127.0.0.1:1883", Topic: mqtt.DefaultTopic, ResultsTopic: mqtt.DefaultResultsTopic,
				ClientID: "test", MaxBody: 1 << 10, MaxBatchBody: 1 << 20, RetryMax: time.Second,
			}
			c.set(&cfg)
			_, err := mqtt.New(cfg, noIngest{}, noBudget{}, prometheus.NewRegistry(), slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("New: %v; want an error about %q", err, c.want)
			}
		})
	}
}
