package simulator

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"smartmeters/crypto"
	"smartmeters/server/api"
)

// Defaults of the MQTT topics, the server's.
const (
	DefaultMQTTTopic        = "smartmeters/readings"
	DefaultMQTTResultsTopic = "smartmeters/results"
)

// MQTTConfig configures reporting through an MQTT broker instead of POST
// /reportReading: each report is published with QoS 1 on Topic, and its
// outcome is the result the server publishes under ResultsTopic.
type MQTTConfig struct {
	Broker       string // mqtt://host:port or mqtts://host:port; empty: report over HTTP
	Topic        string // default DefaultMQTTTopic
	ResultsTopic string // default DefaultMQTTResultsTopic
}

func (c MQTTConfig) withDefaults() MQTTConfig {
	if c.Topic == "" {
		c.Topic = DefaultMQTTTopic
	}
	if c.ResultsTopic == "" {
		c.ResultsTopic = DefaultMQTTResultsTopic
	}
	return c
}

// ValidMQTTBroker reports why s cannot name a broker, or nil: it must be
// an mqtt:// or mqtts:// URL with a port (api.ParseMQTTBroker).
func ValidMQTTBroker(s string) error {
	_, err := api.ParseMQTTBroker(s)
	return err
}

// resultKey names the result of one reading: its key's fingerprint and
// its timestamp.
type resultKey struct {
	fp crypto.Fingerprint
	ts int64
}

// mqttLink publishes reports through a broker and hands each result the
// server publishes to whoever waits for it.
type mqttLink struct {
	client  paho.Client
	topic   string
	results string // the results topic prefix, with its trailing slash

	mu      sync.Mutex
	waiting map[resultKey][]chan reply // in the order the readings were sent
}

// dialMQTT connects to the broker of cfg and subscribes to the results,
// on a clean session of a client ID of its own.
func dialMQTT(ctx context.Context, cfg MQTTConfig) (*mqttLink, error) {
	l := &mqttLink{topic: cfg.Topic, results: cfg.ResultsTopic + "/", waiting: map[resultKey][]chan reply{}}
	subscribed := make(chan error, 1)
	opts := paho.NewClientOptions().
		AddBroker(cfg.Broker).
		SetClientID(fmt.Sprintf("smartmeters-simulate-%d", time.Now().UnixNano())).
		SetCleanSession(true).
		SetAutoReconnect(true).
		SetMaxReconnectInterval(5 * time.Second).
		SetOnConnectHandler(func(c paho.Client) {
			tok := c.Subscribe(l.results+"+", 1, l.deliver)
			go func() {
				tok.Wait()
				select {
				case subscribed <- tok.Error():
				default:
				}
			}()
		})
	l.client = paho.NewClient(opts)
	if err := wait(ctx, l.client.Connect()); err != nil {
		return nil, fmt.Errorf("MQTT broker %s: %w", cfg.Broker, err)
	}
	select {
	case err := <-subscribed:
		if err != nil {
			l.client.Disconnect(0)
			return nil, fmt.Errorf("subscribe to %s+: %w", l.results, err)
		}
	case <-ctx.Done():
		l.client.Disconnect(0)
		return nil, ctx.Err()
	}
	return l, nil
}

// close disconnects from the broker.
func (l *mqttLink) close() { l.client.Disconnect(250) }

// wait waits for tok, or for ctx.
func wait(ctx context.Context, tok paho.Token) error {
	select {
	case <-tok.Done():
		return tok.Error()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// deliver hands a result to the first reading that waits for it; a result
// nobody waits for (a late one, or another client's) is dropped.
func (l *mqttLink) deliver(_ paho.Client, m paho.Message) {
	fp, err := crypto.ParseFingerprint(strings.TrimPrefix(m.Topic(), l.results))
	if err != nil {
		return // the results of payloads without a readable key
	}
	var r api.BatchResult
	if json.Unmarshal(m.Payload(), &r) != nil {
		return
	}
	k := resultKey{fp, r.Timestamp}
	l.mu.Lock()
	var ch chan reply
	if q := l.waiting[k]; len(q) > 0 {
		ch = q[0]
		if len(q) == 1 {
			delete(l.waiting, k)
		} else {
			l.waiting[k] = q[1:]
		}
	}
	l.mu.Unlock()
	if ch != nil {
		ch <- reply{status: r.Status, slug: api.Slug(r.Type), detail: r.Detail, body: m.Payload()}
	}
}

// exchange publishes body, whose readings are keys, and waits until the
// result of each has come or ctx is done.
func (l *mqttLink) exchange(ctx context.Context, body []byte, keys []resultKey) ([]reply, error) {
	chans := make([]chan reply, len(keys))
	l.mu.Lock()
	for i, k := range keys {
		chans[i] = make(chan reply, 1)
		l.waiting[k] = append(l.waiting[k], chans[i])
	}
	l.mu.Unlock()
	defer l.forget(keys, chans)
	if err := wait(ctx, l.client.Publish(l.topic, 1, false, body)); err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	out := make([]reply, len(keys))
	for i, ch := range chans {
		select {
		case out[i] = <-ch:
		case <-ctx.Done():
			return nil, fmt.Errorf("no result on %s: %w", l.results, context.Cause(ctx))
		}
	}
	return out, nil
}

// forget stops waiting for the results of chans that have not come.
func (l *mqttLink) forget(keys []resultKey, chans []chan reply) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, k := range keys {
		q := l.waiting[k]
		for j, ch := range q {
			if ch == chans[i] {
				q = append(q[:j:j], q[j+1:]...)
				break
			}
		}
		if len(q) == 0 {
			delete(l.waiting, k)
		} else {
			l.waiting[k] = q
		}
	}
}
