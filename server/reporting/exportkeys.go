package reporting

import (
	"context"
	"encoding/base64"
	"sort"
	"time"

	"smartmeters/crypto"
	"smartmeters/store"
)

// keySwitchGrace is how long after a key replacement a reading may still
// have been verified with the previous key: by a server that had not yet
// heard of the replacement (at most about a second), give or take the clock
// difference between servers.
const keySwitchGrace = 10 * time.Second

// exportKey is one key of a meter's history as an export writes it.
type exportKey struct {
	addedAt   time.Time
	algorithm string
	base64    string
	key       *crypto.PublicKey // nil if it no longer parses
}

// keyTimeline tells which of a meter's keys verified each of its readings.
// Readings carry no key of their own: the key is the one that was the
// meter's current key when the reading was received.
type keyTimeline []exportKey

// meterKeyTimeline returns the key history of the meter ms; a meter with
// no recorded history has had only its current key.
func (a *API) meterKeyTimeline(ctx context.Context, ms store.MeterSummary) (keyTimeline, error) {
	keys, err := a.store.MeterKeys(ctx, ms.ID)
	if err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		keys = []store.MeterKey{{PublicKey: ms.PublicKey, Algorithm: ms.Algorithm, AddedAt: ms.RegisteredAt}}
	}
	tl := make(keyTimeline, len(keys))
	for i, k := range keys {
		tl[i] = exportKey{addedAt: k.AddedAt, algorithm: k.Algorithm, base64: base64.StdEncoding.EncodeToString(k.PublicKey)}
		// Parsed for the grace-period check only; the export's reader
		// applies its own key policy.
		tl[i].key, _ = crypto.ParsePublicKeyDER(k.PublicKey, 1024)
	}
	sort.SliceStable(tl, func(i, j int) bool { return tl[i].addedAt.Before(tl[j].addedAt) })
	return tl, nil
}

// keyFor returns the key that verified r: the latest key taken into use
// at or before r was received (the first key for a reading older than
// all). Within keySwitchGrace after a replacement the signature decides
// between the new key and the one before it.
func (tl keyTimeline) keyFor(r store.Reading) *exportKey {
	i := sort.Search(len(tl), func(i int) bool { return tl[i].addedAt.After(r.ReceivedAt) }) - 1
	if i < 0 {
		return &tl[0]
	}
	if i > 0 && r.ReceivedAt.Sub(tl[i].addedAt) < keySwitchGrace && !tl[i].verifies(r) && tl[i-1].verifies(r) {
		return &tl[i-1]
	}
	return &tl[i]
}

func (k *exportKey) verifies(r store.Reading) bool {
	return k.key != nil && k.key.Verify(r.Reading, r.Signature) == nil
}
