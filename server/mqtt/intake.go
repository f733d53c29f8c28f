// Package mqtt is the MQTT intake: a second way in beside POST
// /reportReading. It subscribes to signed readings on a broker through a
// shared subscription, stores them through the same ingest path and group
// commit as HTTP, and acknowledges each message (the QoS 1 PUBACK) only
// once its readings are committed or answered for good. Each reading's
// result is published on the results topic.
//
// The client is Eclipse Paho (github.com/eclipse/paho.mqtt.golang): it
// keeps a persistent session, reconnects with backoff by itself and lets
// the application send the PUBACK (ClientOptions.SetAutoAckDisabled and
// Message.Ack), which is what "acknowledged only once stored" needs.
//
// Paho reads a whole message before it hands it over, and has no limit
// on its size: the largest payload is the broker's to bound (Mosquitto:
// message_size_limit). What the intake bounds is how many it holds. Paho's
// router hands it one message at a time and reads nothing more from the
// connection until the intake takes it, which it does once one of
// Config.InFlight workers is free and the memory budget has room for the
// payload; messages beyond those wait at the broker, behind its in-flight
// window (QoS 1) or TCP's (QoS 0). So the intake holds at most InFlight +
// 1 payloads, and Paho up to four more on their way from the socket.
// Results go out on a second connection, whose acknowledgements never
// wait behind readings not yet taken.
package mqtt

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"

	"smartmeters/server/api"
	"smartmeters/server/ingest"
	"smartmeters/server/ratelimit"
)

// Defaults of Config.
const (
	DefaultTopic        = "smartmeters/readings"
	DefaultResultsTopic = "smartmeters/results"
	// ShareGroup names the shared subscription every replica joins:
	// $share/smartmeters/<topic>. The broker hands each message to one
	// member of the group.
	ShareGroup = "smartmeters"
	// UnknownLevel is the last topic level of the results of a payload
	// whose public key could not be read: <results topic>/unknown.
	UnknownLevel = "unknown"
	// DefaultInFlight is Config.InFlight's default: enough single
	// readings at once for group commits as large as over HTTP. The bytes
	// they hold are bounded by the memory budget, which each takes before
	// it starts.
	DefaultInFlight = 256
)

// Config configures the MQTT intake.
type Config struct {
	// Broker is the broker's URL: mqtt://host:port, or mqtts://host:port
	// for TLS; a user and password in it are sent to the broker.
	Broker string
	// Topic is the topic filter readings are published on; + wildcards
	// are allowed.
	Topic string
	// ResultsTopic is the prefix of the results topics: the result of a
	// reading goes to ResultsTopic/<fingerprint of its key>.
	ResultsTopic string
	// ClientID names this replica's persistent session at the broker; it
	// must be stable across restarts and differ between replicas.
	ClientID string
	// Shared subscribes as $share/<ShareGroup>/<Topic>, so that replicas
	// split the messages; off, as plain Topic, for a single replica on a
	// broker whose shared subscriptions lose messages (Mosquitto 2.0.11
	// does, when it is restarted and a subscriber then dies).
	Shared bool
	// CACert names a PEM file of the CAs that sign the broker's
	// certificate (mqtts; default: the system's); Cert and Key a client
	// certificate and its key, for brokers that demand one.
	CACert, Cert, Key string

	// MaxBody bounds a payload of one reading, and MaxBatchBody one of an
	// array of readings; larger payloads are refused body-too-large.
	MaxBody, MaxBatchBody int64
	// RetryMax is the longest wait between two attempts to connect, or to
	// store a message the store did not take.
	RetryMax time.Duration
	// InFlight bounds the messages being stored at once, each by a worker
	// of its own that holds room for it in the memory budget; while all
	// are busy, or the budget has no room, the next message waits, and
	// the broker keeps the rest. 0 means DefaultInFlight.
	InFlight int

	// RatePerTopic limits the messages a second taken from each topic,
	// with bursts of ten seconds' worth; 0 means no limit. The topic is
	// the one source of a message that a subscriber can tell: with a
	// topic per publisher (Topic smartmeters/readings/+, and a broker ACL
	// that lets each client write only its own), one publisher's flood is
	// refused without holding up the others. Now is the clock of the
	// limit; nil means time.Now.
	RatePerTopic float64
	Now          func() time.Time
}

// Ingest is what the intake needs of the ingest path.
type Ingest interface {
	Report(ctx context.Context, via ingest.Transport, body []byte) ingest.Result
	ReportBatch(ctx context.Context, via ingest.Transport, body []byte) ([]ingest.Result, error)
	Refuse(err error) error
}

// Budget is the memory budget that a message's payload, and what is
// decoded from it, is held in while it is processed.
type Budget interface {
	Take(n int64) bool
	Give(n int64)
}

// Intake subscribes to readings and stores them. Run it once.
type Intake struct {
	cfg      Config
	tls      *tls.Config
	ingest   Ingest
	budget   Budget
	logger   *slog.Logger
	metrics  *metrics
	perTopic *ratelimit.Buckets[string]

	broker   string        // the broker's URL without its password, for the logs
	workers  chan struct{} // a token for each message being stored
	held     atomic.Int64  // payloads taken from Paho and not yet done with
	mostHeld atomic.Int64

	client     paho.Client // subscribed to the readings
	results    paho.Client // publishes the results
	upMu       sync.Mutex  // orders the updates of metrics.connected
	subscribed atomic.Bool // the readings' connection is up and subscribed
	resultsUp  atomic.Bool // the results' connection is up

	mu       sync.Mutex // guards stopping and the Add of inFlight
	stopping bool
	inFlight sync.WaitGroup
	ctx      context.Context // done when the intake stops
}

// ParseBroker parses a broker URL (api.ParseMQTTBroker), naming it in
// the error.
func ParseBroker(s string) (*url.URL, error) {
	u, err := api.ParseMQTTBroker(s)
	if err != nil {
		return nil, fmt.Errorf("MQTT broker %q: %w", s, err)
	}
	return u, nil
}

// New returns an intake of cfg over in, or an error naming what in cfg is
// wrong. Its metrics are registered on reg.
func New(cfg Config, in Ingest, budget Budget, reg prometheus.Registerer, logger *slog.Logger) (*Intake, error) {
	u, err := ParseBroker(cfg.Broker)
	if err != nil {
		return nil, err
	}
	if err := checkTopicFilter(cfg.Topic); err != nil {
		return nil, fmt.Errorf("MQTT topic %q: %w", cfg.Topic, err)
	}
	if cfg.ResultsTopic == "" || strings.ContainsAny(cfg.ResultsTopic, "+#") {
		return nil, fmt.Errorf("MQTT results topic %q: want a topic name without wildcards", cfg.ResultsTopic)
	}
	if cfg.ClientID == "" {
		return nil, errors.New("MQTT client ID: must not be empty")
	}
	if cfg.MaxBody < 1 || cfg.MaxBatchBody < cfg.MaxBody || cfg.RetryMax <= 0 || cfg.InFlight < 0 {
		return nil, fmt.Errorf("MQTT limits: MaxBody %d, MaxBatchBody %d, RetryMax %s, InFlight %d out of range", cfg.MaxBody, cfg.MaxBatchBody, cfg.RetryMax, cfg.InFlight)
	}
	if cfg.InFlight == 0 {
		cfg.InFlight = DefaultInFlight
	}
	tlsCfg, err := cfg.tlsConfig(u.Scheme == "mqtts")
	if err != nil {
		return nil, err
	}
	if !(cfg.RatePerTopic >= 0) {
		return nil, fmt.Errorf("MQTT rate per topic %g: must be 0 (no limit) or more", cfg.RatePerTopic)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	logPaho(logger)
	return &Intake{
		cfg: cfg, tls: tlsCfg, ingest: in, budget: budget, logger: logger, metrics: newMetrics(reg),
		perTopic: ratelimit.New[string](cfg.RatePerTopic, 0),
		broker:   u.Redacted(), workers: make(chan struct{}, cfg.InFlight),
	}, nil
}

// checkTopicFilter accepts a topic filter with + wildcards as whole levels.
func checkTopicFilter(t string) error {
	if t == "" {
		return errors.New("empty")
	}
	if strings.HasPrefix(t, "$") {
		return errors.New("topics starting with $ are the broker's")
	}
	for level := range strings.SplitSeq(t, "/") {
		if strings.Contains(level, "#") {
			return errors.New("# is not allowed; use + for a level")
		}
		if strings.Contains(level, "+") && level != "+" {
			return errors.New("+ must be a whole level")
		}
	}
	return nil
}

// tlsConfig loads the CA and client certificate of cfg; nil unless on.
func (cfg Config) tlsConfig(on bool) (*tls.Config, error) {
	if !on {
		if cfg.CACert != "" || cfg.Cert != "" || cfg.Key != "" {
			return nil, errors.New("MQTT CA and client certificates need an mqtts:// broker")
		}
		return nil, nil
	}
	t := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.CACert != "" {
		pemCA, err := os.ReadFile(cfg.CACert)
		if err != nil {
			return nil, fmt.Errorf("MQTT CA: %w", err)
		}
		t.RootCAs = x509.NewCertPool()
		if !t.RootCAs.AppendCertsFromPEM(pemCA) {
			return nil, fmt.Errorf("MQTT CA %s: no PEM certificate in it", cfg.CACert)
		}
	}
	if (cfg.Cert == "") != (cfg.Key == "") {
		return nil, errors.New("MQTT client certificate and key go together")
	}
	if cfg.Cert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.Cert, cfg.Key)
		if err != nil {
			return nil, fmt.Errorf("MQTT client certificate: %w", err)
		}
		t.Certificates = []tls.Certificate{cert}
	}
	return t, nil
}

// Connected reports whether the intake is connected to the broker,
// subscribed to the readings and able to publish their results.
func (in *Intake) Connected() bool { return in.subscribed.Load() && in.resultsUp.Load() }

// MostHeld returns the most payloads the intake has held at once since
// New: taken from Paho and not yet stored, refused or given up. It is at
// most Config.InFlight + 1.
func (in *Intake) MostHeld() int { return int(in.mostHeld.Load()) }
