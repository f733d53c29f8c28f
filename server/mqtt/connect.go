package mqtt

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// ResultsSuffix ends the client ID of the connection that results are
// published on: <client ID>-results, on a clean session.
const ResultsSuffix = "-results"

// Run connects to the broker, retrying 1 s, 2 s, 4 s … apart up to
// RetryMax until it answers, and as far apart once a connection is lost,
// and stores the readings it delivers until ctx is done. Then it stops
// taking messages, lets those in progress finish (a message not yet
// stored is left unacknowledged, for the broker to deliver again) and
// disconnects.
//
// It keeps two connections. Readings come in on the persistent session
// of Config.ClientID, which Paho stops reading while every worker is
// busy. Results go out on a connection of their own, whose
// acknowledgements therefore never wait behind readings: on one
// connection, the results of a backlog held all 65,535 of Paho's message
// IDs until the readings queued before their acknowledgements were taken,
// and results were lost.
func (in *Intake) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	in.ctx = ctx
	filter := in.cfg.Topic
	if in.cfg.Shared {
		filter = "$share/" + ShareGroup + "/" + in.cfg.Topic
	}
	in.results = paho.NewClient(in.options("results", in.cfg.ClientID+ResultsSuffix).
		// A session of its own that outlives a connection: Paho keeps each
		// result until the broker acknowledges it and, the session being
		// persistent, sends it again after a reconnect (with a clean
		// session it would drop them). It subscribes to nothing, so the
		// broker queues nothing for it.
		SetCleanSession(false).
		SetOnConnectHandler(func(paho.Client) { in.setUp(&in.resultsUp, true) }).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			in.setUp(&in.resultsUp, false)
			in.logger.Warn("MQTT connection lost; reconnecting", "broker", in.broker, "connection", "results", "err", err)
		}))
	in.client = paho.NewClient(in.options("readings", in.cfg.ClientID).
		SetCleanSession(false). // messages published while we are away wait at the broker
		// Paho's router calls handle for one message at a time and reads
		// no more from the broker until it returns; handle passes the
		// message on to a worker, so that messages still share group
		// commits, and waits while every worker is busy.
		SetOrderMatters(true).
		SetAutoAckDisabled(true).
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
				in.setUp(&in.subscribed, true)
				in.logger.Info("MQTT intake connected", "broker", in.broker, "topic", filter, "client_id", in.cfg.ClientID)
			}()
		}).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			in.setUp(&in.subscribed, false)
			in.logger.Warn("MQTT connection lost; reconnecting", "broker", in.broker, "connection", "readings", "err", err)
		}))
	// Results first: a message taken is answered at once.
	if in.connect(ctx, in.results, "results") && in.connect(ctx, in.client, "readings") {
		<-ctx.Done()
	}

	in.mu.Lock()
	in.stopping = true
	in.mu.Unlock()
	in.inFlight.Wait()
	in.setUp(&in.subscribed, false)
	in.client.Disconnect(250)
	in.results.Disconnect(250) // after the last result
	return nil
}

// options are what both connections share: the broker, TLS, keepalive,
// and reconnecting with backoff, each failed attempt logged once.
func (in *Intake) options(name, clientID string) *paho.ClientOptions {
	return paho.NewClientOptions().
		AddBroker(in.cfg.Broker).
		SetClientID(clientID).
		SetProtocolVersion(4). // MQTT 3.1.1, without a second try at 3.1 after each failure
		SetStore(newPacketStore()).
		SetTLSConfig(in.tls).
		SetKeepAlive(15 * time.Second).
		SetConnectTimeout(10 * time.Second).
		SetConnectRetry(false). // connect retries the first connection itself, with backoff
		SetAutoReconnect(true).
		SetMaxReconnectInterval(in.cfg.RetryMax).
		SetReconnectingHandler(func(paho.Client, *paho.ClientOptions) {
			in.metrics.reconnects.Inc()
		}).
		SetConnectionNotificationHandler(in.logReconnects(name))
}

// setUp records that one of the connections is up (subscribed, for
// the readings') or down.
func (in *Intake) setUp(flag *atomic.Bool, on bool) {
	in.upMu.Lock()
	defer in.upMu.Unlock()
	flag.Store(on)
	if in.Connected() {
		in.metrics.connected.Set(1)
	} else {
		in.metrics.connected.Set(0)
	}
}

// connect makes c's first connection to the broker: it tries at once,
// then 1 s, 2 s, 4 s … apart, up to RetryMax, as Paho spaces its attempts
// to reconnect, and logs one line for each attempt that fails. It
// reports false if ctx is done first.
func (in *Intake) connect(ctx context.Context, c paho.Client, name string) bool {
	for attempt := 1; ; attempt++ {
		tok := c.Connect()
		<-tok.Done() // within the connect timeout
		if tok.Error() == nil {
			return true
		}
		wait := retryWait(attempt, in.cfg.RetryMax)
		in.logger.Warn("MQTT broker unreachable; retrying", "broker", in.broker, "connection", name,
			"attempt", attempt, "retry_in", wait, "err", tok.Error())
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-t.C:
		}
	}
}

// logReconnects returns what logs each failed attempt of the connection
// name to reconnect, once (Paho's own lines about it go to the debug
// level: see logPaho); those of the results connection while the readings
// connection is down too, which says the same, at the debug level. The
// first connection's attempts are connect's to log.
func (in *Intake) logReconnects(name string) paho.ConnectionNotificationHandler {
	var reconnect atomic.Int64 // the attempt under way, from 1; 0 while none is
	return func(_ paho.Client, n paho.ConnectionNotification) {
		switch n := n.(type) {
		case paho.ConnectionNotificationConnecting:
			attempt := int64(0)
			if n.IsReconnect {
				attempt = int64(n.Attempt) + 1
			}
			reconnect.Store(attempt)
		case paho.ConnectionNotificationFailed:
			attempt := reconnect.Load()
			if attempt == 0 {
				return
			}
			level := slog.LevelWarn
			if name == "results" && !in.client.IsConnectionOpen() {
				level = slog.LevelDebug
			}
			// Paho waits as retryWait says while the broker stays away
			// (its backoff.go): 1 s after the first attempt, doubling.
			in.logger.Log(in.ctx, level, "MQTT reconnect failed; retrying", "broker", in.broker, "connection", name,
				"attempt", attempt, "retry_in", retryWait(int(attempt), in.cfg.RetryMax), "err", n.Reason)
		}
	}
}

// retryWait is the wait after the failed attempt-th attempt to connect:
// 1 s, doubling, up to most.
func retryWait(attempt int, most time.Duration) time.Duration {
	if attempt > 16 {
		return most
	}
	return min(time.Second<<(attempt-1), most)
}

var logPahoOnce sync.Once

// logPaho sends what the client library logs to logger (the library's
// loggers are global: the first intake's wins). Its errors and warnings go
// to the debug level: they are about connections, each of which the
// intake logs once itself (a failed attempt with the wait before the
// next, a lost connection with its cause), where Paho logs two lines.
func logPaho(logger *slog.Logger) {
	logPahoOnce.Do(func() {
		paho.CRITICAL = slog.NewLogLogger(logger.Handler(), slog.LevelError)
		paho.ERROR = slog.NewLogLogger(logger.Handler(), slog.LevelDebug)
		paho.WARN = slog.NewLogLogger(logger.Handler(), slog.LevelDebug)
	})
}
