package simulator

import (
	"math/rand/v2"
	"sync"
	"time"

	"smartmeters/crypto"
)

// Each use of the seed draws from its own stream, so that, say, changing
// the tamper fraction does not change the usernames or the load profiles.
const (
	streamUsernames uint64 = 0x75736572 + iota
	streamOffsets
	streamTamper
	streamMeter
)

// meter is one simulated meter. The scheduler goroutine owns everything but
// accepted, which the workers update.
type meter struct {
	username string
	key      *crypto.PrivateKey
	pubB64   string             // the public key as sent in every report
	fp       crypto.Fingerprint // of the public key, which names its MQTT results

	profile     profile
	rng         rand.PCG // noise of this meter
	whIn, whOut float64  // the registers, in Wh
	regAt       int64    // Unix ms up to which the registers are integrated
	lastTS      int64    // the latest timestamp any reading of this meter used
	scheduled   int      // readings handed to the workers so far

	mu       sync.Mutex
	accepted crypto.Reading // the latest genuine reading the server accepted
}

// newMeter returns meter number index of the fleet seeded by seed, with
// identity id and registers integrated up to Unix millisecond start. Its
// profile and starting registers depend only on seed and index.
func newMeter(id MeterKey, index int, seed int64, start int64) *meter {
	m := &meter{username: id.Username, key: id.Key, pubB64: id.Key.Public().Base64(), fp: id.Key.Public().Fingerprint(), regAt: start, lastTS: start}
	m.rng.Seed(uint64(seed), mix(streamMeter^uint64(index)))
	r := rand.New(&m.rng)
	m.profile = newProfile(r)
	m.whIn = 20e6 * r.Float64() // up to 20 MWh imported so far
	if m.profile.solarPeakW > 0 {
		m.whOut = m.profile.solarPeakW / 6000 * 8e6 * r.Float64()
	}
	return m
}

// next returns m's genuine reading at Unix millisecond now, advancing the
// registers. Timestamps of one meter strictly increase, even when the
// scheduler runs late and hands out two readings within a millisecond.
func (m *meter) next(now int64, loc *time.Location) crypto.Reading {
	ts := max(now, m.lastTS+1)
	m.integrate(ts, loc)
	m.lastTS = ts
	return m.reading(ts)
}

// nextForged returns a reading at Unix millisecond now that carries m's
// current registers without advancing them, so that a forged reading, even
// if wrongly stored, leaves the genuine sequence intact and non-decreasing.
func (m *meter) nextForged(now int64) crypto.Reading {
	ts := max(now, m.lastTS+1)
	m.lastTS = ts
	return m.reading(ts)
}

func (m *meter) reading(ts int64) crypto.Reading {
	return crypto.Reading{WhIn: int64(m.whIn), WhOut: int64(m.whOut), Timestamp: ts}
}

// setAccepted records that the server accepted r.
func (m *meter) setAccepted(r crypto.Reading) {
	m.mu.Lock()
	if r.Timestamp > m.accepted.Timestamp {
		m.accepted = r
	}
	m.mu.Unlock()
}

// lastAccepted returns the latest accepted reading of m, with a zero
// Timestamp if none is known yet.
func (m *meter) lastAccepted() crypto.Reading {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.accepted
}

// mix is the SplitMix64 finaliser: it turns neighbouring integers into
// unrelated seeds.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

const usernameAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789"

// usernames draws distinct usernames, "meter-" and ten letters or digits,
// from a seeded stream. Not safe for concurrent use.
type usernames struct {
	rng  *rand.Rand
	used map[string]bool
}

func newUsernames(seed int64) *usernames {
	return &usernames{rng: rand.New(rand.NewPCG(uint64(seed), streamUsernames)), used: map[string]bool{}}
}

// next returns a username not returned before.
func (u *usernames) next() string {
	for {
		b := []byte("meter-0000000000")
		for i := len("meter-"); i < len(b); i++ {
			b[i] = usernameAlphabet[u.rng.IntN(len(usernameAlphabet))]
		}
		if s := string(b); !u.used[s] {
			u.used[s] = true
			return s
		}
	}
}
