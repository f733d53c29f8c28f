package reporting

import (
	"context"
	"encoding/base64"

	"smartmeters/store"
)

// exportKey is one key of a meter's history as an export writes it.
type exportKey struct {
	algorithm string
	base64    string
}

// keyTimeline holds a meter's keys by their number (store.MeterKey.Seq):
// every stored reading names the key that signed it.
type keyTimeline map[int]exportKey

// meterKeyTimeline returns the keys meter ms has had.
func (a *API) meterKeyTimeline(ctx context.Context, ms store.MeterSummary) (keyTimeline, error) {
	keys, err := a.store.MeterKeys(ctx, ms.ID)
	if err != nil {
		return nil, err
	}
	tl := make(keyTimeline, len(keys))
	for _, k := range keys {
		tl[k.Seq] = exportKey{algorithm: k.Algorithm, base64: base64.StdEncoding.EncodeToString(k.PublicKey)}
	}
	return tl, nil
}

// keyFor returns the key that signed r.
func (tl keyTimeline) keyFor(r store.Reading) exportKey {
	return tl[r.KeySeq]
}
