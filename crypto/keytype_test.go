package crypto_test

import (
	"errors"
	"strings"
	"testing"

	"smartmeters/crypto"
)

func TestParseKeyType(t *testing.T) {
	for _, s := range []string{"rsa2048", "ecdsa-p256", "ecdsa-p384", "ed25519"} {
		t.Run(s, func(t *testing.T) {
			got, err := crypto.ParseKeyType(s)
			if err != nil || string(got) != s {
				t.Fatalf("ParseKeyType(%q) = %q, %v, want %q, nil", s, got, err, s)
			}
		})
	}
	for _, s := range []string{"", "RSA2048", "rsa1024", "rsa3072", "ecdsa-p521", "ecdsa", " ed25519", "ed448"} {
		t.Run("ErrUnsupportedKey/"+s, func(t *testing.T) {
			_, err := crypto.ParseKeyType(s)
			if !errors.Is(err, crypto.ErrUnsupportedKey) {
				t.Fatalf("ParseKeyType(%q) error = %v, want ErrUnsupportedKey", s, err)
			}
			for _, valid := range crypto.KeyTypes {
				if !strings.Contains(err.Error(), string(valid)) {
					t.Errorf("error %q does not list %q", err, valid)
				}
			}
		})
	}
}

func TestKeyTypes(t *testing.T) {
	want := []crypto.KeyType{crypto.RSA2048, crypto.ECDSAP256, crypto.ECDSAP384, crypto.Ed25519}
	if len(crypto.KeyTypes) != len(want) {
		t.Fatalf("KeyTypes = %v, want %v", crypto.KeyTypes, want)
	}
	for i, typ := range crypto.KeyTypes {
		if typ != want[i] {
			t.Errorf("KeyTypes[%d] = %q, want %q", i, typ, want[i])
		}
		if _, err := crypto.ParseKeyType(string(typ)); err != nil {
			t.Errorf("ParseKeyType(%q): %v", typ, err)
		}
	}
}
