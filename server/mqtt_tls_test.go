package server_test

import (
	"context"
	"net/http"
	"net/url"
	"os/exec"
	"testing"
	"time"

	"smartmeters/crypto"
	"smartmeters/db/dbtest"
	"smartmeters/server"
	"smartmeters/server/mqtt/mqtttest"
	"smartmeters/store"
)

// TestMQTTOverTLS runs the intake against a private Mosquitto that speaks
// only TLS and demands a client certificate: with --mqtt-ca-cert,
// --mqtt-cert and --mqtt-key the server connects and stores a reading
// that mosquitto_pub sends over TLS; with a CA that did not sign the
// broker's certificate, or without a client certificate, it does not
// connect.
func TestMQTTOverTLS(t *testing.T) {
	if _, err := exec.LookPath("mosquitto_pub"); err != nil {
		t.Skip("needs mosquitto_pub")
	}
	ca, stranger := newTestCA(t, "mqtt-ca"), newTestCA(t, "another-ca")
	brokerCert, brokerKey := ca.issue(t, "broker", false)
	broker := mqtttest.StartPrivateTLS(t, mqtttest.TLS{CA: ca.pem, Cert: brokerCert, Key: brokerKey})
	dir := t.TempDir()
	caFile, strangerFile := writeFile(t, dir, "ca.pem", ca.pem), writeFile(t, dir, "stranger.pem", stranger.pem)
	cert, key := ca.issue(t, "smartmeters", true)
	certFile, keyFile := writeFile(t, dir, "client.pem", cert), writeFile(t, dir, "client.key", key)
	pubCert, pubKey := ca.issue(t, "meter", true)
	pubCertFile, pubKeyFile := writeFile(t, dir, "meter.pem", pubCert), writeFile(t, dir, "meter.key", pubKey)

	conn := dbtest.SQLite(t).OpenMigrated(t)
	st := store.New(conn)
	prefix := mqtttest.Topic(t)
	ms := startMQTT(t, broker.URL, prefix, "tls-"+mqtttest.Random(), server.StoresOf(st), func(c *server.Config) {
		c.MQTT.CACert, c.MQTT.Cert, c.MQTT.Key = caFile, certFile, keyFile
	})
	k := newKey(t, "ed25519")
	if r := register(t, ms.testServer, "tls-meter", k); r.status != http.StatusCreated {
		t.Fatalf("register: %s", r.rawBody)
	}
	u, err := url.Parse(broker.URL)
	if err != nil {
		t.Fatal(err)
	}
	payload := payloadOf(signed(t, k, crypto.Reading{WhIn: 7, WhOut: 1, Timestamp: now.Add(-time.Minute).UnixMilli()}))
	out, err := exec.Command("mosquitto_pub", "-h", u.Hostname(), "-p", u.Port(), "--cafile", caFile,
		"--cert", pubCertFile, "--key", pubKeyFile, "-q", "1", "-t", prefix+"/readings", "-m", string(payload)).CombinedOutput()
	if err != nil {
		t.Fatalf("mosquitto_pub over TLS: %v: %s", err, out)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var n int
		if err := conn.Get(&n, `SELECT count(*) FROM readings`); err != nil {
			t.Fatal(err)
		}
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d readings stored 10 s after the publish over TLS, want 1", n)
		}
	}

	for name, set := range map[string]func(*server.Config){
		"BrokerNotTrusted":    func(c *server.Config) { c.MQTT.CACert, c.MQTT.Cert, c.MQTT.Key = strangerFile, certFile, keyFile },
		"NoClientCertificate": func(c *server.Config) { c.MQTT.CACert = caFile },
	} {
		t.Run(name, func(t *testing.T) {
			srv := newServerOver(t, testConfig(func(c *server.Config) {
				c.MQTT.Broker, c.MQTT.ClientID = broker.URL, "tls-"+mqtttest.Random()
				c.MQTT.Topic, c.MQTT.ResultsTopic = prefix+"/readings", prefix+"/results"
				set(c)
			}), server.StoresOf(st))
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- srv.MQTT().Run(ctx) }()
			time.Sleep(2 * time.Second)
			connected := srv.MQTT().Connected()
			cancel()
			<-done
			if connected {
				t.Fatal("the intake connected to the broker")
			}
		})
	}
}
