package ingest

import (
	"time"

	"smartmeters/crypto"
)

// Observer is told what ingest did with each reading, after the fact. It
// is called from many goroutines on the hot path and must neither block
// nor do I/O.
type Observer interface {
	// Stored is called once per reading newly committed.
	Stored(meterID int64, r crypto.Reading, receivedAt time.Time)
	// Rejected is called once per reading refused, with its problem type
	// slug. meterID is the meter that sent it, when the reading's
	// signature verified; 0 when it did not, or was not checked: such a
	// refusal says nothing about the meter, whoever sent it.
	Rejected(reason string, meterID int64, at time.Time)
	// Forged is called, beside Rejected, for each report whose signature
	// does not verify with the registered key of meter meterID: a forgery,
	// or a meter that signs wrongly.
	Forged(meterID int64, at time.Time)
}

// nopObserver observes nothing.
type nopObserver struct{}

func (nopObserver) Stored(int64, crypto.Reading, time.Time) {}
func (nopObserver) Rejected(string, int64, time.Time)       {}
func (nopObserver) Forged(int64, time.Time)                 {}
