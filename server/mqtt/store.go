package mqtt

import (
	"bytes"
	"strings"
	"sync"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// packetStore keeps the session's packets in flight in memory, as Paho's
// MemoryStore does, but encoded, so that every Get decodes a packet of
// its own. Paho's MemoryStore hands back the packet it was given: after
// a reconnect, the resend sets the DUP flag of a result while the lost
// connection's writer may still be encoding the same packet, a data race
// inside Paho (eclipse-paho/paho.mqtt.golang#703). Its FileStore avoids
// the race the same way, at the cost of a file written per message.
type packetStore struct {
	mu     sync.Mutex
	open   bool
	frames map[string][]byte
}

var _ paho.Store = (*packetStore)(nil)

// inboundPrefix starts Paho's keys of packets received (store.go).
const inboundPrefix = "i."

func newPacketStore() *packetStore {
	return &packetStore{frames: make(map[string][]byte)}
}

func (s *packetStore) Open() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.open = true
}

func (s *packetStore) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.open = false
}

// Put keeps p's wire form. Paho calls it before it hands p to a
// connection, so nothing else touches p meanwhile.
//
// A PUBLISH received (key "i.<id>") is not kept: Paho puts every QoS 1
// message it receives until it is acknowledged, a second copy of each
// payload the intake holds, yet after a reconnect it only discards what
// it finds (client.resume); the broker delivers again what was not
// acknowledged.
func (s *packetStore) Put(key string, p packets.ControlPacket) {
	if _, ok := p.(*packets.PublishPacket); ok && strings.HasPrefix(key, inboundPrefix) {
		return
	}
	var b bytes.Buffer
	if err := p.Write(&b); err != nil {
		return // a bytes.Buffer does not fail; a packet that cannot be encoded could not be sent either
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.open {
		s.frames[key] = b.Bytes()
	}
}

// Get returns a new packet decoded from what Put kept under key, or nil.
func (s *packetStore) Get(key string) packets.ControlPacket {
	s.mu.Lock()
	frame, ok := s.frames[key]
	open := s.open
	s.mu.Unlock()
	if !ok || !open {
		return nil
	}
	p, err := packets.ReadPacket(bytes.NewReader(frame))
	if err != nil {
		return nil
	}
	return p
}

func (s *packetStore) All() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.open {
		return nil
	}
	keys := make([]string, 0, len(s.frames))
	for k := range s.frames {
		keys = append(keys, k)
	}
	return keys
}

func (s *packetStore) Del(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.frames, key)
}

func (s *packetStore) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.frames)
}
