// Package mqtttest gives tests an MQTT broker: the one that EnvURL names,
// shared by every test (each on topics of its own), or a private Mosquitto
// that a test starts, stops and starts again.
package mqtttest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// EnvURL names the environment variable that points tests at a broker,
// such as mqtt://127.0.0.1:1883.
const EnvURL = "SMARTMETERS_TEST_MQTT_URL"

// EnvRequire names the environment variable that makes a missing broker a
// failure rather than a skip: CI sets it, so that a run can never pass
// with the MQTT tests quietly gone.
const EnvRequire = "SMARTMETERS_TEST_REQUIRE_MQTT"

// URL returns the broker of EnvURL, or false when it is unset; then the
// test fails instead if EnvRequire is set.
func URL(t testing.TB) (string, bool) {
	t.Helper()
	u := os.Getenv(EnvURL)
	if u == "" {
		if os.Getenv(EnvRequire) != "" {
			t.Fatalf("%s is set but %s is not: this run must test MQTT", EnvRequire, EnvURL)
		}
		t.Logf("MQTT part skipped: set %s (such as mqtt://127.0.0.1:1883) to run it", EnvURL)
		return "", false
	}
	return u, true
}

var unsafeTopic = regexp.MustCompile(`[^A-Za-z0-9_-]+`)

// Topic returns a topic prefix no other test uses, so that tests on one
// broker do not see each other's messages.
func Topic(t testing.TB) string {
	return "smartmeters-test/" + unsafeTopic.ReplaceAllString(t.Name(), "_") + "-" + Random()
}

// Random returns 8 random hexadecimal digits, for unique client IDs.
func Random() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Message is one message a Subscriber received.
type Message struct {
	Topic   string
	Payload []byte
}

// Subscriber collects the messages of a topic filter.
type Subscriber struct {
	C <-chan Message
}

// Subscribe subscribes to filter with QoS 1 on a clean session until the
// test ends. Messages come in the order the broker sent them.
func Subscribe(t testing.TB, url, filter string) *Subscriber {
	t.Helper()
	ch := make(chan Message, 10_000)
	c := connect(t, url, "sub-"+Random(), true)
	tok := c.Subscribe(filter, 1, func(_ paho.Client, m paho.Message) {
		ch <- Message{Topic: m.Topic(), Payload: m.Payload()}
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe to %s: %v", filter, tok.Error())
	}
	return &Subscriber{C: ch}
}

// Next returns the next message, failing the test if none comes within
// 20 s.
func (s *Subscriber) Next(t testing.TB) Message {
	t.Helper()
	select {
	case m := <-s.C:
		return m
	case <-time.After(20 * time.Second):
		t.Fatal("no MQTT message within 20 s")
		return Message{}
	}
}

// Publish publishes payload on topic with QoS 1 from a client of its own
// and waits for the broker's acknowledgement.
func Publish(t testing.TB, url, topic string, payload []byte) {
	t.Helper()
	NewPublisher(t, url).Publish(t, topic, payload)
}

// Publisher is one client that publishes many messages.
type Publisher struct{ c paho.Client }

// NewPublisher connects a publisher, disconnected when the test ends.
func NewPublisher(t testing.TB, url string) *Publisher {
	t.Helper()
	return &Publisher{connect(t, url, "pub-"+Random(), true)}
}

// Publish publishes payload on topic with QoS 1 and waits for the
// broker's acknowledgement.
func (p *Publisher) Publish(t testing.TB, topic string, payload []byte) {
	t.Helper()
	tok := p.c.Publish(topic, 1, false, payload)
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish on %s: %v", topic, tok.Error())
	}
}

// Send publishes payload on topic with qos and returns at once; the
// token completes once the broker has acknowledged it (QoS 1) or the
// client has written it (QoS 0).
func (p *Publisher) Send(topic string, qos byte, payload []byte) paho.Token {
	return p.c.Publish(topic, qos, false, payload)
}

// connect returns a client connected to url, disconnected when the test
// ends.
func connect(t testing.TB, url, clientID string, clean bool) paho.Client {
	t.Helper()
	c := paho.NewClient(paho.NewClientOptions().AddBroker(url).SetClientID(clientID).SetCleanSession(clean))
	tok := c.Connect()
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect to %s: %v", url, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

// ClearSession removes the persistent session of clientID from the
// broker, which a server under test leaves behind.
func ClearSession(t testing.TB, url, clientID string) {
	t.Helper()
	c := paho.NewClient(paho.NewClientOptions().AddBroker(url).SetClientID(clientID).SetCleanSession(true))
	if tok := c.Connect(); tok.WaitTimeout(10*time.Second) && tok.Error() == nil {
		c.Disconnect(100)
	}
}

// Private is a Mosquitto of a test's own, on a port of its own, with
// persistence on, so that it can be restarted without losing what it
// acknowledged.
type Private struct {
	URL  string
	t    testing.TB
	dir  string
	port string
	cmd  *exec.Cmd
}

// StartPrivate starts a private Mosquitto, stopped when the test ends. It
// skips the test when the mosquitto binary is not installed, or fails it
// if EnvRequire is set.
func StartPrivate(t testing.TB) *Private {
	t.Helper()
	return startPrivate(t, nil)
}

// TLS is what a private broker's TLS listener needs, PEM-encoded: the CA
// that signs the certificates it trusts, and its own certificate and key.
type TLS struct {
	CA, Cert, Key []byte
}

// StartPrivateTLS starts a private Mosquitto as StartPrivate does, whose
// one listener speaks only TLS with the certificate of tls and demands a
// client certificate that tls.CA signed. Its URL is mqtts://.
func StartPrivateTLS(t testing.TB, tls TLS) *Private {
	t.Helper()
	return startPrivate(t, &tls)
}

func startPrivate(t testing.TB, tls *TLS) *Private {
	t.Helper()
	if _, err := exec.LookPath("mosquitto"); err != nil {
		if os.Getenv(EnvRequire) != "" {
			t.Fatalf("%s is set but mosquitto is not installed", EnvRequire)
		}
		t.Skip("needs the mosquitto binary")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(l.Addr().String())
	l.Close()
	// Mosquitto started as root runs as the user mosquitto, which must
	// reach and write its directory: not one under t.TempDir's private
	// parent.
	dir, err := os.MkdirTemp("", "mosquitto-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	// Room for every message queued for a session that is away: a broker
	// that drops what it acknowledged would lose readings. (0, "no limit",
	// stops delivery altogether on Mosquitto before 2.0.12.)
	conf := fmt.Sprintf("listener %s 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location %s/\n"+
		"autosave_interval 1\nmax_queued_messages 1000000\nlog_dest file %s/mosquitto.log\n", port, dir, dir)
	scheme := "mqtt"
	if tls != nil {
		scheme = "mqtts"
		for name, data := range map[string][]byte{"ca.pem": tls.CA, "broker.pem": tls.Cert, "broker.key": tls.Key} {
			// Readable by the user mosquitto, as the directory is.
			if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		conf += fmt.Sprintf("cafile %[1]s/ca.pem\ncertfile %[1]s/broker.pem\nkeyfile %[1]s/broker.key\nrequire_certificate true\n", dir)
	}
	if err := os.WriteFile(filepath.Join(dir, "mosquitto.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	p := &Private{URL: scheme + "://127.0.0.1:" + port, t: t, dir: dir, port: port}
	p.Start()
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(dir, "mosquitto.log"))
			t.Logf("mosquitto log:\n%s", lastLines(string(log), 40))
		}
	})
	return p
}

// Start starts the broker and waits until it takes connections.
func (p *Private) Start() {
	p.t.Helper()
	p.cmd = exec.Command("mosquitto", "-c", filepath.Join(p.dir, "mosquitto.conf"))
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	for range 200 {
		if c, err := net.Dial("tcp", "127.0.0.1:"+p.port); err == nil {
			c.Close()
			return
		}
		time.Sleep(25 * time.Millisecond)
	}
	p.t.Fatalf("mosquitto on port %s did not start", p.port)
}

// Stop stops the broker gracefully (SIGTERM), which saves its persistent
// state, and waits for it to exit.
func (p *Private) Stop() {
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(os.Interrupt)
	_ = p.cmd.Wait()
	p.cmd = nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
