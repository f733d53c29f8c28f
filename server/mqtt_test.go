package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"smartmeters/crypto"
	"smartmeters/db/dbtest"
	"smartmeters/server"
	"smartmeters/server/api"
	"smartmeters/server/ingest"
	"smartmeters/server/mqtt"
	"smartmeters/server/mqtt/mqtttest"
	"smartmeters/store"
)

// mqttServer is a server whose MQTT intake reads prefix/readings and
// publishes under prefix/results.
type mqttServer struct {
	testServer
	srv *server.Server
}

// startMQTT serves stores as newTestServer does, with the MQTT intake on
// broker under client ID clientID running until the test ends, and waits
// until it is subscribed. The session it leaves at the broker stays: see
// clearSession.
func startMQTT(t *testing.T, broker, prefix, clientID string, stores server.Stores, set func(*server.Config)) mqttServer {
	t.Helper()
	srv := newServerOver(t, testConfig(func(c *server.Config) {
		c.MQTT.Broker, c.MQTT.ClientID = broker, clientID
		c.MQTT.Topic, c.MQTT.ResultsTopic = prefix+"/readings", prefix+"/results"
		if set != nil {
			set(c)
		}
	}), stores)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.MQTT().Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("MQTT intake: %v", err)
		}
	})
	pub := httptest.NewServer(srv.PublicHandler())
	t.Cleanup(pub.Close)
	adm := httptest.NewServer(srv.AdminHandler())
	t.Cleanup(adm.Close)
	for deadline := time.Now().Add(10 * time.Second); !srv.MQTT().Connected(); {
		if time.Now().After(deadline) {
			t.Fatalf("MQTT intake not connected to %s after 10 s", broker)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return mqttServer{testServer: testServer{public: pub.URL, admin: adm.URL}, srv: srv}
}

// mqttResult is a message of the results topic, with the last level of
// its topic.
type mqttResult struct {
	api.BatchResult
	level string
}

// clientID returns a client ID for a server under test, whose session is
// removed from the broker when the test ends.
func clientID(t *testing.T, broker string) string {
	id := "test-" + mqtttest.Random()
	t.Cleanup(func() { mqtttest.ClearSession(t, broker, id) })
	return id
}

func nextResult(t *testing.T, sub *mqtttest.Subscriber) mqttResult {
	t.Helper()
	m := sub.Next(t)
	var r mqttResult
	if err := json.Unmarshal(m.Payload, &r.BatchResult); err != nil {
		t.Fatalf("result on %s: %v: %s", m.Topic, err, m.Payload)
	}
	r.level = m.Topic[strings.LastIndexByte(m.Topic, '/')+1:]
	return r
}

// TestMQTTIntake publishes every kind of report to the real broker and
// checks the result published for each, and the rows stored: the same
// statuses and problem types as over HTTP, garbage answered on the
// results topic of unknown keys, and a batch answered reading by reading.
func TestMQTTIntake(t *testing.T) {
	broker, ok := mqtttest.URL(t)
	if !ok {
		t.Skip("needs an MQTT broker")
	}
	for _, b := range dbtest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			conn := b.OpenMigrated(t)
			st := store.New(conn)
			prefix := mqtttest.Topic(t)
			ms := startMQTT(t, broker, prefix, clientID(t, broker), server.StoresOf(st), nil)
			sub := mqtttest.Subscribe(t, broker, prefix+"/results/#")
			publish := func(payload []byte) { mqtttest.Publish(t, broker, prefix+"/readings", payload) }

			k, stranger := newKey(t, "ed25519"), newKey(t, "ecdsa-p256")
			fp, strangerFP := k.Public().Fingerprint().String(), stranger.Public().Fingerprint().String()
			if r := register(t, ms.testServer, "mqtt-meter", k); r.status != http.StatusCreated {
				t.Fatalf("register: %s", r.rawBody)
			}
			ts := now.Add(-time.Hour).UnixMilli()
			reading := crypto.Reading{WhIn: 100, WhOut: 1, Timestamp: ts}
			forged := signed(t, k, crypto.Reading{WhIn: 200, WhOut: 1, Timestamp: ts + 1000})
			forged.Reading.WhIn++

			for _, c := range []struct {
				name    string
				payload []byte
				level   string // of the results topic
				status  int
				slug    string // problem type, or "" for success
				rows    int64  // stored once the result is in
			}{
				{"Stored", payloadOf(signed(t, k, reading)), fp, http.StatusCreated, "", 1},
				{"Duplicate", payloadOf(signed(t, k, reading)), fp, http.StatusOK, "", 1},
				{"Conflict", payloadOf(signed(t, k, crypto.Reading{WhIn: 101, WhOut: 1, Timestamp: ts})), fp, http.StatusConflict, "reading-conflict", 1},
				{"UnknownKey", payloadOf(signed(t, stranger, reading)), strangerFP, http.StatusForbidden, "unknown-key", 1},
				{"Forged", payloadOf(forged), fp, http.StatusBadRequest, "invalid-signature", 1},
				{"Garbage", []byte("not json"), mqtt.UnknownLevel, http.StatusBadRequest, "malformed-request", 1},
				{"MissingField", []byte(`{"base64PublicKey":"` + k.Public().Base64() + `"}`), mqtt.UnknownLevel, http.StatusBadRequest, "invalid-field", 1},
				{"Oversized", []byte(`{"pad":"` + strings.Repeat("x", 65<<10) + `"}`), mqtt.UnknownLevel, http.StatusRequestEntityTooLarge, "body-too-large", 1},
				{"EmptyArray", []byte(`[]`), mqtt.UnknownLevel, http.StatusBadRequest, "invalid-field", 1},
			} {
				t.Run(c.name, func(t *testing.T) {
					publish(c.payload)
					r := nextResult(t, sub)
					if r.level != c.level || r.Status != c.status || api.Slug(r.Type) != c.slug {
						t.Fatalf("result on .../%s: %+v; want %d %q on .../%s", r.level, r.BatchResult, c.status, c.slug, c.level)
					}
					if c.level != mqtt.UnknownLevel && r.Timestamp == 0 {
						t.Errorf("result without the reading's timestamp: %+v", r.BatchResult)
					}
					if n := countReadings(t, conn); n != c.rows {
						t.Errorf("%d rows stored, want %d", n, c.rows)
					}
				})
			}
			t.Run("Batch", func(t *testing.T) {
				second := crypto.Reading{WhIn: 300, WhOut: 2, Timestamp: ts + 2000}
				batch := []reportBody{signed(t, k, second), forged, signed(t, stranger, second)}
				publish(payloadOf(batch))
				for i, want := range []struct {
					level, slug string
					status      int
				}{{fp, "", http.StatusCreated}, {fp, "invalid-signature", http.StatusBadRequest}, {strangerFP, "unknown-key", http.StatusForbidden}} {
					r := nextResult(t, sub)
					if r.level != want.level || r.Status != want.status || api.Slug(r.Type) != want.slug {
						t.Errorf("result %d: %+v on .../%s; want %d %q", i, r.BatchResult, r.level, want.status, want.slug)
					}
				}
				if n := countReadings(t, conn); n != 2 {
					t.Errorf("%d rows stored, want 2", n)
				}
			})
			t.Run("MosquittoPub", func(t *testing.T) {
				if _, err := exec.LookPath("mosquitto_pub"); err != nil {
					t.Skip("needs mosquitto_pub")
				}
				body := payloadOf(signed(t, k, crypto.Reading{WhIn: 400, WhOut: 2, Timestamp: ts + 3000}))
				host, port := brokerHostPort(t, broker)
				out, err := exec.Command("mosquitto_pub", "-h", host, "-p", port, "-q", "1", "-t", prefix+"/readings", "-m", string(body)).CombinedOutput()
				if err != nil {
					t.Fatalf("mosquitto_pub: %v: %s", err, out)
				}
				if r := nextResult(t, sub); r.Status != http.StatusCreated || r.Result != api.StatusStored || r.Timestamp != ts+3000 {
					t.Fatalf("result: %+v", r.BatchResult)
				}
			})
			t.Run("MetricsAndReadyz", func(t *testing.T) {
				r := do(t, mustRequest(t, http.MethodGet, ms.admin+"/metrics"))
				for _, line := range []string{
					`smartmeters_readings_received_total{transport="mqtt"} 10`,
					`smartmeters_readings_received_total{transport="http"} 0`,
					`smartmeters_readings_rejected_total{reason="malformed-request"} 1`,
					`smartmeters_readings_rejected_total{reason="body-too-large"} 1`,
					`smartmeters_readings_rejected_total{reason="invalid-signature"} 2`,
					"smartmeters_mqtt_connected 1",
				} {
					if !strings.Contains(r.rawBody, line+"\n") {
						t.Errorf("/metrics lacks %q", line)
					}
				}
				if r := do(t, mustRequest(t, http.MethodGet, ms.public+"/readyz")); r.status != http.StatusOK || r.body["mqtt"] != "connected" {
					t.Errorf("/readyz: %d %s", r.status, r.rawBody)
				}
			})
		})
	}
}

func brokerHostPort(t *testing.T, broker string) (string, string) {
	t.Helper()
	hostPort, ok := strings.CutPrefix(broker, "mqtt://")
	i := strings.LastIndexByte(hostPort, ':')
	if !ok || i < 0 {
		t.Fatalf("broker %q: want mqtt://host:port", broker)
	}
	return hostPort[:i], hostPort[i+1:]
}

// TestMQTTAckAfterCommit shows that a message is acknowledged only once
// stored: a server whose store takes nothing keeps the message
// unacknowledged, and when it stops, the broker hands the message to the
// next server on the same session, which stores it.
func TestMQTTAckAfterCommit(t *testing.T) {
	broker, ok := mqtttest.URL(t)
	if !ok {
		t.Skip("needs an MQTT broker")
	}
	conn := dbtest.SQLite(t).OpenMigrated(t)
	st := store.New(conn)
	prefix, id := mqtttest.Topic(t), clientID(t, broker)
	sub := mqtttest.Subscribe(t, broker, prefix+"/results/#")
	k := newKey(t, "ed25519")
	down := server.StoresOf(st)
	down.Readings = downReadings{}
	reading := signed(t, k, crypto.Reading{WhIn: 1, WhOut: 1, Timestamp: now.Add(-time.Minute).UnixMilli()})

	t.Run("StoreDown", func(t *testing.T) {
		ms := startMQTT(t, broker, prefix, id, down, nil)
		if r := register(t, ms.testServer, "acked-late", k); r.status != http.StatusCreated {
			t.Fatalf("register: %s", r.rawBody)
		}
		mqtttest.Publish(t, broker, prefix+"/readings", payloadOf(reading))
		for {
			r := do(t, mustRequest(t, http.MethodGet, ms.admin+"/metrics"))
			if strings.Contains(r.rawBody, "smartmeters_mqtt_retries_total 2\n") {
				break // tried three times, and not acknowledged
			}
			time.Sleep(20 * time.Millisecond)
		}
		select {
		case m := <-sub.C:
			t.Fatalf("a result was published while the store was down: %s", m.Payload)
		default:
		}
	})
	t.Run("Redelivered", func(t *testing.T) {
		startMQTT(t, broker, prefix, id, server.StoresOf(st), nil)
		r := nextResult(t, sub)
		if r.Status != http.StatusCreated || r.level != k.Public().Fingerprint().String() {
			t.Fatalf("result after the store came back: %+v", r.BatchResult)
		}
		if n := countReadings(t, conn); n != 1 {
			t.Fatalf("%d rows stored, want 1", n)
		}
	})
}

// TestMQTTReplicas runs two servers on one store, sharing the
// subscription: the broker hands each message to one of them, both get
// some, and every reading is stored once and answered once.
func TestMQTTReplicas(t *testing.T) {
	broker, ok := mqtttest.URL(t)
	if !ok {
		t.Skip("needs an MQTT broker")
	}
	for _, b := range dbtest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			conn := b.OpenMigrated(t)
			st := store.New(conn)
			prefix := mqtttest.Topic(t)
			a := startMQTT(t, broker, prefix, clientID(t, broker), server.StoresOf(st), nil)
			bb := startMQTT(t, broker, prefix, clientID(t, broker), server.StoresOf(st), nil)
			sub := mqtttest.Subscribe(t, broker, prefix+"/results/#")
			k := newKey(t, "ed25519")
			if r := register(t, a.testServer, "shared", k); r.status != http.StatusCreated {
				t.Fatalf("register: %s", r.rawBody)
			}
			const n = 40
			first := now.Add(-time.Hour).UnixMilli()
			for i := range int64(n) {
				r := crypto.Reading{WhIn: 10 + i, WhOut: 0, Timestamp: first + i*1000}
				mqtttest.Publish(t, broker, prefix+"/readings", payloadOf(signed(t, k, r)))
			}
			seen := map[int64]bool{}
			for range n {
				r := nextResult(t, sub)
				if r.Status != http.StatusCreated || seen[r.Timestamp] {
					t.Fatalf("result %+v (seen before: %t)", r.BatchResult, seen[r.Timestamp])
				}
				seen[r.Timestamp] = true
			}
			if got := countReadings(t, conn); got != n {
				t.Fatalf("%d rows stored, want %d", got, n)
			}
			for name, s := range map[string]mqttServer{"A": a, "B": bb} {
				r := do(t, mustRequest(t, http.MethodGet, s.admin+"/metrics"))
				if strings.Contains(r.rawBody, `smartmeters_readings_received_total{transport="mqtt"} 0`+"\n") {
					t.Errorf("replica %s received nothing: the subscription is not shared", name)
				}
			}
		})
	}
}

// payloadOf is the JSON of v, as a message payload.
func payloadOf(v any) []byte { return []byte(mustJSON(v)) }

// TestMQTTFlood floods one topic with forgeries while an honest meter
// publishes on another: past its allowance the flood is refused
// rate-limited, unread, and every honest reading is stored. The clock is
// pinned, so that the allowance is exactly the burst.
func TestMQTTFlood(t *testing.T) {
	broker, ok := mqtttest.URL(t)
	if !ok {
		t.Skip("needs an MQTT broker")
	}
	conn := dbtest.SQLite(t).OpenMigrated(t)
	prefix := mqtttest.Topic(t)
	const rate, burst, flood, honest = 2, 20, 50, 5 // the burst is ten seconds' worth
	ms := startMQTT(t, broker, prefix+"/in", clientID(t, broker), server.StoresOf(store.New(conn)), func(c *server.Config) {
		c.MQTT.Topic, c.MQTT.RatePerTopic = prefix+"/in/readings/+", rate
	})
	sub := mqtttest.Subscribe(t, broker, prefix+"/in/results/#")
	k, victim := newKey(t, "ed25519"), newKey(t, "ed25519")
	for name, key := range map[string]*crypto.PrivateKey{"honest": k, "victim": victim} {
		if r := register(t, ms.testServer, name, key); r.status != http.StatusCreated {
			t.Fatalf("register: %s", r.rawBody)
		}
	}
	pub := mqtttest.NewPublisher(t, broker)
	ts := now.Add(-time.Hour).UnixMilli()
	for i := range int64(flood) {
		forged := signed(t, victim, crypto.Reading{WhIn: 1, Timestamp: ts + i})
		forged.Reading.WhIn++
		pub.Publish(t, prefix+"/in/readings/flooder", payloadOf(forged))
	}
	for i := range int64(honest) {
		pub.Publish(t, prefix+"/in/readings/honest", payloadOf(signed(t, k, crypto.Reading{WhIn: 1 + i, Timestamp: ts + i*1000})))
	}
	count := map[string]int{}
	for range flood + honest {
		r := nextResult(t, sub)
		count[api.Slug(r.Type)+r.Result]++
	}
	if count["rate-limited"] != flood-burst || count["invalid-signature"] != burst || count["stored"] != honest {
		t.Fatalf("results: %v; want %d rate-limited, %d invalid-signature, %d stored", count, flood-burst, burst, honest)
	}
	if n := countReadings(t, conn); n != honest {
		t.Fatalf("%d rows stored, want %d", n, honest)
	}
}

// slowReadings commits through next after a delay, so that the intake's
// workers are all busy while messages keep coming.
type slowReadings struct {
	next  ingest.ReadingStore
	delay time.Duration
}

func (s slowReadings) InsertReadings(ctx context.Context, rs []store.Reading) ([]store.Outcome, error) {
	time.Sleep(s.delay)
	return s.next.InsertReadings(ctx, rs)
}

// TestMQTTHoldsBoundedPayloads publishes, as fast as the broker takes
// them, oversized payloads and garbage with QoS 0 and QoS 1 between valid
// readings, to a server whose store is slow: the intake never holds more
// than its InFlight payloads and the one waiting for a worker, the rest
// waiting at the broker, and yet every message is answered and every
// valid reading stored.
func TestMQTTHoldsBoundedPayloads(t *testing.T) {
	broker, ok := mqtttest.URL(t)
	if !ok {
		t.Skip("needs an MQTT broker")
	}
	conn := dbtest.SQLite(t).OpenMigrated(t)
	st := store.New(conn)
	stores := server.StoresOf(st)
	stores.Readings = slowReadings{next: st, delay: 20 * time.Millisecond}
	prefix := mqtttest.Topic(t)
	const inFlight = 4
	ms := startMQTT(t, broker, prefix, clientID(t, broker), stores, func(c *server.Config) { c.MQTT.InFlight = inFlight })
	sub := mqtttest.Subscribe(t, broker, prefix+"/results/#")
	k := newKey(t, "ed25519")
	if r := register(t, ms.testServer, "bounded", k); r.status != http.StatusCreated {
		t.Fatalf("register: %s", r.rawBody)
	}

	oversized := []byte(`{"pad":"` + strings.Repeat("x", 65<<10) + `"}`)     // over MaxBodyBytes: refused unread
	garbage := []byte(`{"pad":` + strings.Repeat(" ", 60<<10) + `"not json`) // within it: taken by a worker
	pub := mqtttest.NewPublisher(t, broker)
	var tokens []paho.Token
	send := func(qos byte, payload []byte) {
		tokens = append(tokens, pub.Send(prefix+"/readings", qos, payload))
	}
	const rounds = 40
	ts := now.Add(-time.Hour).UnixMilli()
	for i := range int64(rounds) {
		for _, qos := range []byte{0, 1} {
			send(qos, oversized)
			send(qos, garbage)
		}
		send(1, payloadOf(signed(t, k, crypto.Reading{WhIn: 1 + i, WhOut: 0, Timestamp: ts + i*1000})))
	}
	for _, tok := range tokens {
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
	}

	count := map[string]int{}
	for range 5 * rounds {
		r := nextResult(t, sub)
		count[api.Slug(r.Type)+r.Result]++
	}
	if count["body-too-large"] != 2*rounds || count["malformed-request"] != 2*rounds || count["stored"] != rounds {
		t.Fatalf("results: %v; want %d body-too-large, %d malformed-request, %d stored", count, 2*rounds, 2*rounds, rounds)
	}
	if n := countReadings(t, conn); n != rounds {
		t.Fatalf("%d rows stored, want %d", n, rounds)
	}
	most := ms.srv.MQTT().MostHeld()
	t.Logf("at most %d payloads held at once", most)
	if most > inFlight+1 {
		t.Fatalf("%d payloads held at once; want at most %d, one per worker and one waiting for a worker", most, inFlight+1)
	}
	if most < inFlight {
		t.Fatalf("at most %d payloads held at once: the workers were never all busy, so the test shows nothing", most)
	}
	r := do(t, mustRequest(t, http.MethodGet, ms.admin+"/metrics"))
	if !strings.Contains(r.rawBody, "smartmeters_mqtt_payloads_held 0\n") {
		t.Errorf("/metrics lacks smartmeters_mqtt_payloads_held 0 once every message is answered")
	}
}
