package store

import (
	"log/slog"
	"strings"
	"time"

	"github.com/lib/pq"

	"smartmeters/crypto"
)

// KeyChannel is the PostgreSQL notification channel on which every
// registration, revocation and replacement is announced, with the
// fingerprints it concerns as comma-separated hex.
const KeyChannel = "smartmeters_keys"

// KeyChange is one message of a KeyListener.
type KeyChange struct {
	// Fingerprints are keys registered, revoked or replaced by some server.
	Fingerprints []crypto.Fingerprint
	// Down means the listener lost its connection: until a change with Up
	// arrives, notifications may be missed.
	Down bool
	// Up means the listener is connected again; notifications sent while
	// it was down are lost, so whatever was cached may be stale.
	Up bool
}

// KeyListener receives the key changes of every server on one PostgreSQL
// database, over a connection of its own that it re-establishes by itself
// after a connection loss or a database restart.
type KeyListener struct {
	l *pq.Listener
	c chan KeyChange
}

// ListenKeyChanges connects to the PostgreSQL database at url and listens
// on KeyChannel. Call Close when done.
func ListenKeyChanges(url string, logger *slog.Logger) (*KeyListener, error) {
	kl := &KeyListener{c: make(chan KeyChange, 64)}
	kl.l = pq.NewListener(url, 100*time.Millisecond, 5*time.Second, func(ev pq.ListenerEventType, err error) {
		// Called on pq's dispatch goroutine, in order with notifications.
		switch ev {
		case pq.ListenerEventDisconnected:
			logger.Warn("key change listener disconnected", "err", err)
			kl.c <- KeyChange{Down: true}
		case pq.ListenerEventConnectionAttemptFailed:
			logger.Warn("key change listener cannot connect", "err", err)
		case pq.ListenerEventReconnected:
			logger.Info("key change listener reconnected")
		}
	})
	if err := kl.l.Listen(KeyChannel); err != nil {
		kl.l.Close()
		return nil, err
	}
	go kl.run()
	return kl, nil
}

func (kl *KeyListener) run() {
	defer close(kl.c)
	for n := range kl.l.Notify {
		if n == nil {
			// pq sends nil after it has reconnected.
			kl.c <- KeyChange{Up: true}
			continue
		}
		kl.c <- KeyChange{Fingerprints: parseFingerprints(n.Extra)}
	}
}

// Changes returns the channel of key changes. It is closed after Close.
func (kl *KeyListener) Changes() <-chan KeyChange { return kl.c }

// Ping checks the listener's connection; a dead one is replaced, and
// Changes then reports Down and, once reconnected, Up.
func (kl *KeyListener) Ping() error { return kl.l.Ping() }

// Close closes the connection.
func (kl *KeyListener) Close() error { return kl.l.Close() }

// parseFingerprints reads a notification payload, skipping what is not a
// fingerprint.
func parseFingerprints(payload string) []crypto.Fingerprint {
	var out []crypto.Fingerprint
	for _, s := range strings.Split(payload, ",") {
		if fp, err := crypto.ParseFingerprint(s); err == nil {
			out = append(out, fp)
		}
	}
	return out
}
