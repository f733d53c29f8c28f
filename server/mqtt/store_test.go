package mqtt

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"

	"smartmeters/server/mqtt/mqtttest"
)

func TestPacketStoreHandsOutCopies(t *testing.T) {
	s := newPacketStore()
	s.Open()
	p := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
	p.Qos, p.MessageID, p.TopicName, p.Payload = 1, 7, "smartmeters/results/x", []byte(`{"status":201}`)
	s.Put("o.7", p)
	p.Dup, p.Payload[2] = true, 'X' // what a writer or a resend does to the packet it holds

	a, b := s.Get("o.7").(*packets.PublishPacket), s.Get("o.7").(*packets.PublishPacket)
	if a == b {
		t.Fatal("Get returned the same packet twice")
	}
	a.Dup = true
	for _, got := range []*packets.PublishPacket{b, s.Get("o.7").(*packets.PublishPacket)} {
		if got.Dup || got.Qos != 1 || got.MessageID != 7 || got.TopicName != "smartmeters/results/x" || string(got.Payload) != `{"status":201}` {
			t.Fatalf("Get = dup %t qos %d id %d %s %s; want what was put", got.Dup, got.Qos, got.MessageID, got.TopicName, got.Payload)
		}
	}

	ack := packets.NewControlPacket(packets.Puback).(*packets.PubackPacket)
	ack.MessageID = 9
	s.Put("i.9", ack)
	received := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
	received.Qos, received.MessageID, received.Payload = 1, 5, []byte("a reading")
	s.Put("i.5", received) // a PUBLISH received is not kept
	if got := s.All(); !slices.Equal(slices.Sorted(slices.Values(got)), []string{"i.9", "o.7"}) {
		t.Fatalf("All = %v", got)
	}
	if got, ok := s.Get("i.9").(*packets.PubackPacket); !ok || got.MessageID != 9 {
		t.Fatalf("Get(i.9) = %v", s.Get("i.9"))
	}
	s.Del("o.7")
	if s.Get("o.7") != nil || len(s.All()) != 1 {
		t.Fatalf("after Del: %v", s.All())
	}
	s.Close()
	s.Put("o.8", p)
	if s.Get("i.9") != nil || s.All() != nil {
		t.Fatal("a closed store answers")
	}
	s.Open()
	if s.Get("i.9") == nil || s.Get("o.8") != nil {
		t.Fatal("the store did not keep its packets across Close and Open, or took one while closed")
	}
	s.Reset()
	if len(s.All()) != 0 {
		t.Fatalf("after Reset: %v", s.All())
	}
}

// TestPacketStoreResends publishes with QoS 1 from a client that keeps
// its packets in flight in a packetStore while the broker is restarted:
// every message must reach a subscriber, the ones caught by the restart
// sent again from the store. Under the race detector it also checks that
// the resend does not touch a packet the lost connection still holds.
func TestPacketStoreResends(t *testing.T) {
	if testing.Short() {
		t.Skip("restarts a broker: not in -short")
	}
	broker := mqtttest.StartPrivate(t)
	topic := "store/" + mqtttest.Random()
	connect := func(id string, store paho.Store) paho.Client {
		t.Helper()
		opts := paho.NewClientOptions().AddBroker(broker.URL).SetClientID(id).SetCleanSession(false).
			SetConnectRetry(true).SetConnectRetryInterval(50 * time.Millisecond).
			SetAutoReconnect(true).SetMaxReconnectInterval(200 * time.Millisecond)
		if store != nil {
			opts.SetStore(store)
		}
		c := paho.NewClient(opts)
		if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("connect %s: %v", id, tok.Error())
		}
		t.Cleanup(func() { c.Disconnect(100) })
		return c
	}
	var mu sync.Mutex
	seen := map[string]bool{}
	sub := connect("store-sub-"+mqtttest.Random(), nil)
	if tok := sub.Subscribe(topic, 1, func(_ paho.Client, m paho.Message) {
		mu.Lock()
		seen[string(m.Payload())] = true
		mu.Unlock()
	}); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}

	store := newPacketStore()
	pub := connect("store-pub-"+mqtttest.Random(), store)
	const total = 3000
	tokens := make([]paho.Token, total)
	for i := range total {
		if i == total/3 {
			broker.Stop() // with messages in flight, and more published while it is away
		}
		if i == 2*total/3 {
			broker.Start()
		}
		tokens[i] = pub.Publish(topic, 1, false, fmt.Sprint(i))
	}
	// A message being written when the connection broke completes its
	// token with the write's error, and stays in the store to be sent
	// again: what counts is what the subscriber gets.
	deadline := time.Now().Add(30 * time.Second)
	for _, tok := range tokens {
		tok.WaitTimeout(time.Until(deadline))
	}
	for {
		mu.Lock()
		n := len(seen)
		mu.Unlock()
		if n == total && len(store.All()) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the subscriber got %d of %d messages; %d packets left in the store", n, total, len(store.All()))
		}
		time.Sleep(50 * time.Millisecond)
	}
}
