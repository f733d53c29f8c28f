package simulator

import (
	"strings"
	"testing"
	"time"

	"smartmeters/crypto"
)

// TestStatusWhileGenerating checks that the line shows the progress of
// key generation, which takes a while for RSA, before reporting starts.
func TestStatusWhileGenerating(t *testing.T) {
	st := newStats()
	at := time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC)
	p := startStatus(Config{Meters: 100, Readings: 6, KeyType: crypto.RSA2048, Now: func() time.Time { return at }}, st)
	defer p.stop()
	st.generated.Store(37)
	st.registered.Store(30)
	if got, want := p.line(), "generating rsa2048 keys 37/100  registered 30/100"; !strings.HasSuffix(got, want) {
		t.Errorf("status %q, want it to end with %q", got, want)
	}
}
