package crypto_test

import (
	"errors"
	"strings"
	"testing"

	"smartmeters/crypto"
)

func TestFingerprint(t *testing.T) {
	const emptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	fp := crypto.FingerprintOf(nil)
	if got := fp.String(); got != emptySHA256 {
		t.Fatalf("FingerprintOf(nil).String() = %s, want %s", got, emptySHA256)
	}
	tests := []struct {
		name string
		in   string
	}{
		{"Lower", emptySHA256},
		{"Upper", strings.ToUpper(emptySHA256)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := crypto.ParseFingerprint(tt.in)
			if err != nil || got != fp {
				t.Fatalf("ParseFingerprint(%q) = %v, %v, want %v, nil", tt.in, got, err, fp)
			}
		})
	}
}

func TestParseFingerprintErrors(t *testing.T) {
	valid := crypto.FingerprintOf([]byte("key")).String()
	tests := []struct {
		name   string
		in     string
		detail string
	}{
		{"Empty", "", "0 characters"},
		{"Short", valid[:63], "63 characters"},
		{"Long", valid + "0", "65 characters"},
		{"NotHex", "g" + valid[1:], `'g' at offset 0`},
		{"NotHexLowNibble", valid[:9] + "x" + valid[10:], `'x' at offset 9`},
		{"Spaces", " " + valid[1:], `' ' at offset 0`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := crypto.ParseFingerprint(tt.in)
			if !errors.Is(err, crypto.ErrMalformedFingerprint) {
				t.Fatalf("ParseFingerprint(%q) error = %v, want ErrMalformedFingerprint", tt.in, err)
			}
			if !strings.Contains(err.Error(), tt.detail) {
				t.Errorf("error %q does not mention %q", err, tt.detail)
			}
		})
	}
}
