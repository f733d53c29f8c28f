package servecmd_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/jmoiron/sqlx"

	"smartmeters/crypto"
	"smartmeters/db/dbtest"
	"smartmeters/server/mqtt/mqtttest"
)

// TestMQTTFaults publishes signed readings with QoS 1 to a private
// Mosquitto under load while the server is killed with SIGKILL and
// started again, twice, and, between the two, the broker is restarted;
// every reading the broker acknowledged must end up stored exactly once.
// The readings are distinct and the publisher sends each again until the
// broker acknowledges it, so the store must end up holding every one of
// them. It runs on PostgreSQL when it is configured, on SQLite otherwise.
//
// With the shared subscription, the broker is not restarted: Mosquitto
// 2.0.11 loses a few percent of the messages queued for a shared
// subscription when it is restarted and the subscriber is killed
// afterwards (README, MQTT), which a single replica avoids with
// --mqtt-shared=false.
func TestMQTTFaults(t *testing.T) {
	if _, ok := mqtttest.URL(t); !ok {
		t.Skip("needs an MQTT broker (and the mosquitto binary for a private one)")
	}
	if testing.Short() {
		t.Skip("fault test: not in -short")
	}
	bin := buildBinary(t)
	t.Run("SharedServerKilled", func(t *testing.T) { testMQTTFaults(t, bin, true, false) })
	t.Run("UnsharedBrokerRestarted", func(t *testing.T) { testMQTTFaults(t, bin, false, true) })
}

func testMQTTFaults(t *testing.T, bin string, shared, restartBroker bool) {
	broker := mqtttest.StartPrivate(t)
	bs := dbtest.Backends(t)
	b := bs[len(bs)-1]
	runBinary(t, bin, "migrate", "--database-url", b.URL, "up")
	db := b.Open(t)

	start := func() *replica {
		t.Helper()
		r := startServer(t, bin, "mqtt", b.URL, "--mqtt-broker", broker.URL, "--mqtt-client-id", "faults",
			"--mqtt-topic", "faults/readings", "--mqtt-results-topic", "faults/results", fmt.Sprintf("--mqtt-shared=%t", shared))
		waitMQTT(t, r)
		return r
	}
	srv := start()
	const meters, perMeter = 20, 150
	keys := make([]*crypto.PrivateKey, meters)
	for i := range keys {
		keys[i] = generateKey(t)
		if res := srv.post(t, "/register", map[string]string{"username": fmt.Sprintf("faults-%d", i), "base64PublicKey": keys[i].Public().Base64()}); res.status != http.StatusCreated {
			t.Fatalf("register: %d %s", res.status, res.raw)
		}
	}

	// The publisher keeps its session too, so that what it sent while
	// the broker was away is sent again when it is back. Its in-flight
	// messages are kept in files: Paho's memory store hands the packet it
	// is still writing to the resend after a reconnect, which sets the
	// packet's DUP flag meanwhile, a data race inside Paho
	// (eclipse-paho/paho.mqtt.golang#703) that the race detector reports
	// in this process; a file store decodes a copy for the resend.
	pub := paho.NewClient(paho.NewClientOptions().AddBroker(broker.URL).SetClientID("faults-publisher").
		SetCleanSession(false).SetConnectRetry(true).SetConnectRetryInterval(100 * time.Millisecond).
		SetAutoReconnect(true).SetMaxReconnectInterval(time.Second).SetStore(paho.NewFileStore(t.TempDir())))
	if tok := pub.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publisher: %v", tok.Error())
	}
	t.Cleanup(func() { pub.Disconnect(100) })

	// The publisher keeps a backlog of at most 300 readings at the broker,
	// so that it is still publishing when the faults come, whatever the
	// pace of the server.
	var acked, stored atomic.Int64
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop) })
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			var n int64
			if db.QueryRow(`SELECT count(*) FROM readings`).Scan(&n) == nil {
				stored.Store(n)
			}
		}
	}()
	first := time.Now().Add(-24 * time.Hour).UnixMilli()
	window := make(chan struct{}, 64) // messages in flight
	var wg sync.WaitGroup             // the publishes in flight
	published := make(chan struct{})
	go func() {
		defer close(published)
		for seq := range int64(perMeter) {
			for _, k := range keys {
				r := crypto.Reading{WhIn: 1000 + seq, WhOut: seq, Timestamp: first + seq*1000}
				sig, err := k.Sign(r)
				if err != nil {
					panic(err)
				}
				body, _ := json.Marshal(map[string]any{"base64PublicKey": k.Public().Base64(), "base64Signature": sig, "reading": r})
				for acked.Load()-stored.Load() > 300 {
					time.Sleep(5 * time.Millisecond)
				}
				window <- struct{}{}
				wg.Go(func() {
					defer func() { <-window }()
					for {
						tok := pub.Publish("faults/readings", 1, false, body)
						if tok.WaitTimeout(30*time.Second) && tok.Error() == nil {
							acked.Add(1)
							return
						}
					}
				})
			}
		}
	}()
	const total = meters * perMeter
	waitStored := func(n int64) {
		t.Helper()
		for deadline := time.Now().Add(120 * time.Second); stored.Load() < n; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("only %d readings stored after 120 s (%d acknowledged), want %d; the server's metrics:\n%s",
					stored.Load(), acked.Load(), n, mqttMetrics(t, srv))
			}
		}
	}
	kill := func() {
		t.Helper()
		t.Logf("SIGKILL the server at %d acknowledged, %d stored", acked.Load(), stored.Load())
		_ = srv.cmd.Process.Kill()
		_ = srv.cmd.Wait()
		srv = start()
	}
	waitStored(total / 4)
	kill()
	waitStored(total / 2)
	if restartBroker {
		t.Logf("restart the broker at %d acknowledged, %d stored", acked.Load(), stored.Load())
		broker.Stop()
		broker.Start()
		waitMQTT(t, srv)
	}
	waitStored(3 * total / 4)
	kill()
	<-published
	wg.Wait()
	deadline := time.Now().Add(60 * time.Second)
	for countRows(t, db) < total {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d acknowledged readings stored 60 s after the last; the server's metrics:\n%s",
				countRows(t, db), total, mqttMetrics(t, srv))
		}
		time.Sleep(50 * time.Millisecond)
	}
	var rows, distinct int64
	if err := db.QueryRow(`SELECT count(*), count(DISTINCT meter_id * 100000000000000 + timestamp) FROM readings`).Scan(&rows, &distinct); err != nil {
		t.Fatal(err)
	}
	if rows != total || distinct != total {
		t.Fatalf("%d rows, %d distinct readings; want each of the %d acknowledged readings once", rows, distinct, total)
	}
}

// waitMQTT waits until r's MQTT intake is connected.
func waitMQTT(t *testing.T, r *replica) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		res, err := http.Get(r.publicURL + "/readyz")
		if err == nil {
			var body struct{ MQTT string }
			_ = json.NewDecoder(res.Body).Decode(&body)
			res.Body.Close()
			if body.MQTT == "connected" {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: MQTT intake not connected after 30 s\n%s", r.name, r.logs)
		}
	}
}

func countRows(t *testing.T, db *sqlx.DB) int64 {
	t.Helper()
	var n int64
	if err := db.QueryRow(`SELECT count(*) FROM readings`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// mqttMetrics returns the lines of r's /metrics about MQTT.
func mqttMetrics(t *testing.T, r *replica) string {
	res, err := http.Get(r.adminURL + "/metrics")
	if err != nil {
		return err.Error()
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	var out []string
	for line := range strings.Lines(string(raw)) {
		if strings.Contains(line, "mqtt") && !strings.HasPrefix(line, "#") {
			out = append(out, line)
		}
	}
	return strings.Join(out, "")
}
