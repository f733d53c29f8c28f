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
package mqtt

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"

	"smartmeters/crypto"
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

	connected atomic.Bool
	client    paho.Client

	mu       sync.Mutex // guards stopping and the Add of inFlight
	stopping bool
	inFlight sync.WaitGroup
	ctx      context.Context // done when the intake stops
}

// New returns an intake of cfg over in, or an error naming what in cfg is
// wrong. Its metrics are registered on reg.
func New(cfg Config, in Ingest, budget Budget, reg prometheus.Registerer, logger *slog.Logger) (*Intake, error) {
	u, err := url.Parse(cfg.Broker)
	if err != nil {
		return nil, fmt.Errorf("MQTT broker %q: %w", cfg.Broker, errors.Unwrap(err))
	}
	if u.Scheme != "mqtt" && u.Scheme != "mqtts" || u.Host == "" || u.Port() == "" {
		return nil, fmt.Errorf("MQTT broker %q: want mqtt://host:port or mqtts://host:port", cfg.Broker)
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
	if cfg.MaxBody < 1 || cfg.MaxBatchBody < cfg.MaxBody || cfg.RetryMax <= 0 {
		return nil, fmt.Errorf("MQTT limits: MaxBody %d, MaxBatchBody %d, RetryMax %s out of range", cfg.MaxBody, cfg.MaxBatchBody, cfg.RetryMax)
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

// Connected reports whether the intake is connected to the broker and
// subscribed.
func (in *Intake) Connected() bool { return in.connected.Load() }

// Run connects to the broker, retrying every second until it answers and
// with backoff up to RetryMax once a connection is lost, and stores the
// readings it delivers until ctx is done. Then it stops
// taking messages, lets those in progress finish (a message not yet
// stored is left unacknowledged, for the broker to deliver again) and
// disconnects.
func (in *Intake) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	in.ctx = ctx
	filter := in.cfg.Topic
	if in.cfg.Shared {
		filter = "$share/" + ShareGroup + "/" + in.cfg.Topic
	}
	opts := paho.NewClientOptions().
		AddBroker(in.cfg.Broker).
		SetClientID(in.cfg.ClientID).
		SetCleanSession(false). // messages published while we are away wait at the broker
		SetOrderMatters(false). // each message in its own goroutine, so that they share group commits
		SetAutoAckDisabled(true).
		SetStore(newPacketStore()).
		SetTLSConfig(in.tls).
		SetKeepAlive(15 * time.Second).
		SetConnectTimeout(10 * time.Second).
		SetConnectRetry(true).
		SetConnectRetryInterval(time.Second).
		SetAutoReconnect(true).
		SetMaxReconnectInterval(in.cfg.RetryMax).
		// Messages of the persistent session arrive right after the
		// connection, before the subscription is renewed: every message
		// goes to the default handler.
		SetDefaultPublishHandler(in.handle).
		SetOnConnectHandler(func(c paho.Client) {
			tok := c.Subscribe(filter, 1, nil)
			go func() {
				if tok.Wait(); tok.Error() != nil {
					in.logger.Error("MQTT subscribe", "topic", filter, "err", tok.Error())
					return
				}
				in.setConnected(true)
				in.logger.Info("MQTT intake connected", "broker", in.cfg.Broker, "topic", filter, "client_id", in.cfg.ClientID)
			}()
		}).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			in.setConnected(false)
			in.logger.Warn("MQTT connection lost; reconnecting", "broker", in.cfg.Broker, "err", err)
		}).
		SetReconnectingHandler(func(paho.Client, *paho.ClientOptions) {
			in.metrics.reconnects.Inc()
		})
	in.client = paho.NewClient(opts)
	in.client.Connect() // with ConnectRetry, it keeps trying in the background
	<-ctx.Done()

	in.mu.Lock()
	in.stopping = true
	in.mu.Unlock()
	in.inFlight.Wait()
	in.setConnected(false)
	in.client.Disconnect(250)
	return nil
}

func (in *Intake) setConnected(on bool) {
	in.connected.Store(on)
	if on {
		in.metrics.connected.Set(1)
	} else {
		in.metrics.connected.Set(0)
	}
}

// enter counts a message in progress, unless the intake is stopping.
func (in *Intake) enter() bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.stopping {
		return false
	}
	in.inFlight.Add(1)
	return true
}

// handle processes one message and acknowledges it once every reading in
// it is stored or answered for good. A message the store did not take is
// retried here with backoff; one still not taken when the intake stops is
// left unacknowledged, and the broker delivers it again to this session.
func (in *Intake) handle(_ paho.Client, m paho.Message) {
	if !in.enter() {
		return
	}
	defer in.inFlight.Done()
	if in.process(in.ctx, m.Topic(), m.Payload()) {
		m.Ack()
	}
}

// process stores the readings of payload, published on topic, and
// publishes their results, and reports whether they are all final.
func (in *Intake) process(ctx context.Context, topic string, payload []byte) bool {
	if ok, wait := in.perTopic.Take(topic, 1, in.cfg.Now()); !ok {
		p := api.Errorf(api.RateLimited, "topic %s carries more than %g messages a second; retry in %s",
			topic, in.perTopic.Rate(), wait.Round(time.Millisecond))
		in.publishProblem(in.ingest.Refuse(p))
		return true
	}
	batch := isArray(payload)
	limit := in.cfg.MaxBody
	if batch {
		limit = in.cfg.MaxBatchBody
	}
	if int64(len(payload)) > limit {
		p := api.Errorf(api.BodyTooLarge, "the payload of %d bytes exceeds %d bytes", len(payload), limit)
		in.publishProblem(in.ingest.Refuse(p))
		return true
	}
	cost := 2 * int64(len(payload)) // the payload, and what is decoded from it
	var published []bool            // of a batch: whose result was published
	for attempt := 1; ; attempt++ {
		if in.budget.Take(cost) {
			var done bool
			if batch {
				done = in.reportBatch(ctx, payload, &published)
			} else {
				done = in.report(ctx, payload)
			}
			in.budget.Give(cost)
			if done {
				return true
			}
		}
		in.metrics.retries.Inc()
		t := time.NewTimer(backoff(attempt, in.cfg.RetryMax))
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-t.C:
		}
	}
}

// isArray reports whether payload is a JSON array, as for
// /reportReadings, rather than the object of /reportReading.
func isArray(payload []byte) bool {
	for _, c := range payload {
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		}
		return c == '['
	}
	return false
}

func (in *Intake) report(ctx context.Context, payload []byte) bool {
	r := in.ingest.Report(ctx, ingest.MQTT, payload)
	if transient(r) {
		return false
	}
	in.publish(r)
	return true
}

// reportBatch publishes the result of every reading that is final and
// not yet published; a reading the store did not take is left for the
// next attempt, which sends the whole batch again (what was stored comes
// back a duplicate, and is not published twice).
func (in *Intake) reportBatch(ctx context.Context, payload []byte, published *[]bool) bool {
	results, err := in.ingest.ReportBatch(ctx, ingest.MQTT, payload)
	if err != nil {
		in.publishProblem(err)
		return true
	}
	if *published == nil {
		*published = make([]bool, len(results))
	}
	done := true
	for i, r := range results {
		switch {
		case transient(r):
			done = false
		case !(*published)[i]:
			in.publish(r)
			(*published)[i] = true
		}
	}
	return done
}

// transient reports whether r is an answer to retry: the store did not
// take the reading, or the server is stopping.
func transient(r ingest.Result) bool {
	return r.Problem != nil && r.Problem.Status == http.StatusServiceUnavailable
}

// publish sends the result of one reading to the results topic of its
// key: the status and fields of the HTTP answer, with the reading's
// timestamp whenever it could be read.
func (in *Intake) publish(r ingest.Result) {
	a := r.Answer()
	if a.Timestamp == 0 {
		a.Timestamp = r.Timestamp
	}
	level := UnknownLevel
	if r.Fingerprint != (crypto.Fingerprint{}) {
		level = r.Fingerprint.String()
	}
	in.send(in.cfg.ResultsTopic+"/"+level, a)
}

// publishProblem sends the problem that refused a payload as a whole,
// unread, to the results topic of unknown keys.
func (in *Intake) publishProblem(err error) {
	var p *api.Problem
	if !errors.As(err, &p) {
		in.logger.Error("MQTT message failed", "err", err)
		p = api.Errorf(api.Internal, "internal error")
	}
	in.send(in.cfg.ResultsTopic+"/"+UnknownLevel, api.BatchResult{Status: p.Status, Type: p.Type, Title: p.Title, Detail: p.Detail})
}

// send publishes v with QoS 1, without waiting: the client delivers it
// once connected.
func (in *Intake) send(topic string, v api.BatchResult) {
	b, err := json.Marshal(v)
	if err != nil {
		in.logger.Error("MQTT result", "err", err)
		return
	}
	in.client.Publish(topic, 1, false, b)
	in.metrics.published.Inc()
}

// backoff is the wait before attempt+1: a uniform draw below
// 100ms·2^(attempt-1), capped at most.
func backoff(attempt int, most time.Duration) time.Duration {
	ceiling := most
	if attempt <= 16 {
		ceiling = min(100*time.Millisecond<<(attempt-1), most)
	}
	return rand.N(ceiling) + 1
}

var logPahoOnce sync.Once

// logPaho sends what the client library logs as errors and warnings to
// logger (the library's loggers are global: the first intake's wins).
func logPaho(logger *slog.Logger) {
	logPahoOnce.Do(func() {
		paho.CRITICAL = slog.NewLogLogger(logger.Handler(), slog.LevelError)
		paho.ERROR = slog.NewLogLogger(logger.Handler(), slog.LevelError)
		paho.WARN = slog.NewLogLogger(logger.Handler(), slog.LevelWarn)
	})
}
