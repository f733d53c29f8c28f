package crypto_test

import (
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"testing"

	"smartmeters/crypto"
)

// TestSignExport checks that an export's signature verifies for its digest
// and row count only, for every key type, and that a reading's signature
// over the same bytes' prefix never passes for an export's.
func TestSignExport(t *testing.T) {
	for _, kt := range crypto.KeyTypes {
		t.Run(string(kt), func(t *testing.T) {
			k, err := crypto.GenerateKey(kt, rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			d := sha256.Sum256([]byte("export"))
			sig, err := k.SignExport(d, 42)
			if err != nil {
				t.Fatal(err)
			}
			pub := k.Public()
			if err := pub.VerifyExport(d, 42, sig); err != nil {
				t.Fatalf("VerifyExport: %v", err)
			}
			other := sha256.Sum256([]byte("export!"))
			for name, check := range map[string]error{
				"OtherDigest": pub.VerifyExport(other, 42, sig),
				"OtherRows":   pub.VerifyExport(d, 41, sig),
			} {
				if !errors.Is(check, crypto.ErrBadSignature) {
					t.Errorf("%s: %v, want ErrBadSignature", name, check)
				}
			}
			rs, err := k.Sign(crypto.Reading{WhIn: 1, WhOut: 2, Timestamp: 3})
			if err != nil {
				t.Fatal(err)
			}
			if err := pub.VerifyExport(d, 42, rs); err == nil {
				t.Error("a reading's signature verified as an export's")
			}
		})
	}
}
