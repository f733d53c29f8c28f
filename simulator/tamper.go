package simulator

import (
	"math/rand/v2"

	"smartmeters/crypto"
)

// forgery is the kind of a reading: genuine, or forged on purpose in one of
// the ways a correct server must refuse.
type forgery uint8

const (
	genuine          forgery = iota
	forgedSignature          // the meter's own reading with one bit of its signature flipped
	forgedUnknownKey         // a plausible reading signed by a key that was never registered
	forgedReplay             // an accepted reading's timestamp with other values, correctly signed
	forgeryCount
)

func (f forgery) String() string {
	switch f {
	case forgedSignature:
		return "bad-signature"
	case forgedUnknownKey:
		return "unknown-key"
	case forgedReplay:
		return "replay"
	}
	return "genuine"
}

// expected returns the problem type slug a correct server answers f with.
func (f forgery) expected() string {
	switch f {
	case forgedSignature:
		return "invalid-signature"
	case forgedUnknownKey:
		return "unknown-key"
	case forgedReplay:
		return "reading-conflict"
	}
	return ""
}

// tamperer decides which readings are forged. It is used by the scheduler
// goroutine only.
type tamperer struct {
	fraction float64
	rng      *rand.Rand
	next     forgery // the kind of the next forgery: kinds take turns
}

func newTamperer(fraction float64, seed int64) *tamperer {
	return &tamperer{fraction: fraction, rng: rand.New(rand.NewPCG(uint64(seed), streamTamper)), next: forgedSignature}
}

// choose returns the kind of m's next reading. A replay needs an accepted
// reading of m to replay; without one, the next kind in turn is chosen.
func (t *tamperer) choose(m *meter) (forgery, crypto.Reading) {
	if t.fraction == 0 || t.rng.Float64() >= t.fraction {
		return genuine, crypto.Reading{}
	}
	f := t.next
	var replayed crypto.Reading
	if f == forgedReplay {
		if replayed = m.lastAccepted(); replayed.Timestamp == 0 {
			f = forgedSignature
		}
	}
	if t.next++; t.next == forgeryCount {
		t.next = forgedSignature
	}
	if f == forgedReplay {
		// Other values at a stored timestamp: the server must answer with a
		// conflict, never overwrite.
		replayed.WhIn += 1 + t.rng.Int64N(1000)
	}
	return f, replayed
}

// corrupt flips one bit in the middle of sig.
func corrupt(sig []byte) []byte {
	out := append([]byte(nil), sig...)
	out[len(out)/2] ^= 0x10
	return out
}
