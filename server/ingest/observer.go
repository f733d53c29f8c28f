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
	// slug. meterID is the meter whose registered key the report named,
	// or 0 when the key was not known (or the report not decoded).
	Rejected(reason string, meterID int64, at time.Time)
}

// nopObserver observes nothing.
type nopObserver struct{}

func (nopObserver) Stored(int64, crypto.Reading, time.Time) {}
func (nopObserver) Rejected(string, int64, time.Time)       {}
