package simulator_test

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"smartmeters/db/dbtest"
	"smartmeters/server"
	"smartmeters/server/mqtt/mqtttest"
	"smartmeters/simulator"
	"smartmeters/store"
)

// TestRunOverMQTT runs the swarm through the real broker, forgeries
// included: every genuine reading is accepted on the strength of its
// result on the results topic, every forgery is refused with the problem
// its kind calls for, and the store holds exactly the accepted readings.
func TestRunOverMQTT(t *testing.T) {
	broker, ok := mqtttest.URL(t)
	if !ok {
		t.Skip("needs an MQTT broker")
	}
	prefix, clientID := mqtttest.Topic(t), "test-"+mqtttest.Random()
	t.Cleanup(func() { mqtttest.ClearSession(t, broker, clientID) })
	conn := dbtest.SQLite(t).OpenMigrated(t)
	cfg := server.DefaultConfig()
	cfg.MQTT.Broker, cfg.MQTT.ClientID = broker, clientID
	cfg.MQTT.Topic, cfg.MQTT.ResultsTopic = prefix+"/readings", prefix+"/results"
	srv, err := server.New(cfg, server.StoresOf(store.New(conn)), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.MQTT().Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	for deadline := time.Now().Add(10 * time.Second); !srv.MQTT().Connected(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("MQTT intake not connected after 10 s")
		}
	}
	adm := httptest.NewServer(srv.AdminHandler())
	t.Cleanup(adm.Close)

	ts := testServer{public: "http://127.0.0.1:1", admin: adm.URL, db: conn} // the public listener is never used
	sc := ts.config(5, 6)
	sc.Tamper = 0.3
	sc.MQTT = simulator.MQTTConfig{Broker: broker, Topic: prefix + "/readings", ResultsTopic: prefix + "/results"}
	sum := runSim(t, context.Background(), sc)
	if err := sum.Err(); err != nil {
		t.Fatalf("Err: %v", err)
	}
	if sum.Tamper.Sent == 0 || sum.Tamper.Accepted != 0 {
		t.Errorf("tamper: %+v; want forgeries sent and none accepted", sum.Tamper)
	}
	if got := count(t, conn, `SELECT count(*) FROM readings`); got != sum.Accepted || got == 0 {
		t.Errorf("store holds %d readings; %d were accepted", got, sum.Accepted)
	}
}
