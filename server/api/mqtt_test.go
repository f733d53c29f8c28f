package api_test

import (
	"testing"

	"smartmeters/server/api"
)

// TestParseMQTTBroker checks the broker URLs that serve and the simulator
// take, and what each refusal says.
func TestParseMQTTBroker(t *testing.T) {
	tests := []struct{ in, wantErr string }{
		{"mqtt://127.0.0.1:1883", ""},
		{"mqtts://broker.example:8883", ""},
		{"127.0.0.1:1883", "no scheme: add mqtt:// (mqtt://127.0.0.1:1883) or mqtts://"},
		{"localhost:1883", "no scheme: add mqtt:// (mqtt://localhost:1883) or mqtts://"},
		{"mqtt://127.0.0.1", "want mqtt://host:port or mqtts://host:port"},
		{"http://127.0.0.1:1883", "want mqtt://host:port or mqtts://host:port"},
		{"mqtt://:1883", "want mqtt://host:port or mqtts://host:port"},
		{"mqtt://[::1", "missing ']' in host"},
	}
	for _, tt := range tests {
		_, err := api.ParseMQTTBroker(tt.in)
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("%q: %v, want accepted", tt.in, err)
		case tt.wantErr != "" && (err == nil || err.Error() != tt.wantErr):
			t.Errorf("%q: error %v, want %q", tt.in, err, tt.wantErr)
		}
	}
}
