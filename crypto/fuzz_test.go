package crypto_test

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"os"
	"testing"

	"smartmeters/crypto"
)

// FuzzParsePublicKey feeds arbitrary text to the key decoders: no input
// may panic, and a key that parses must round-trip: its DER is the one
// crypto/x509 writes for the key and parses again to the same
// fingerprint, which is the SHA-256 of that DER, and its base64 form
// parses to the same key.
func FuzzParsePublicKey(f *testing.F) {
	raw, err := os.ReadFile("testdata/vectors.json")
	if err != nil {
		f.Fatal(err)
	}
	var vs []struct{ Base64PublicKey, Base64Signature string }
	if err := json.Unmarshal(raw, &vs); err != nil {
		f.Fatal(err)
	}
	for _, v := range vs {
		f.Add(v.Base64PublicKey)
		f.Add(v.Base64Signature)
	}
	f.Add("-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEArVYZ1T/lVNOuvB2gTOjg/mWJhZxZzIEDK2/jTPInjVM=\n-----END PUBLIC KEY-----\n")
	f.Add("MCowBQYDK2VwAyEArVYZ1T_lVNOuvB2gTOjg_mWJhZxZzIEDK2_jTPInjVM")
	f.Fuzz(func(t *testing.T, s string) {
		_, _ = crypto.DecodeSignature(s)
		der, derr := crypto.DecodePublicKey(s)
		k, err := crypto.ParsePublicKey(s, 2048)
		if err != nil {
			return
		}
		if derr != nil || !bytes.Equal(der, k.DER()) {
			t.Fatalf("ParsePublicKey accepted what DecodePublicKey did not decode the same way: %v", derr)
		}
		// One encoding a key: what is accepted is the DER crypto/x509
		// writes for it, so no second DER (and fingerprint) of a key is.
		if pub, err := x509.ParsePKIXPublicKey(k.DER()); err != nil {
			t.Fatalf("accepted DER that crypto/x509 does not parse: %v", err)
		} else if canonical, err := x509.MarshalPKIXPublicKey(pub); err != nil || !bytes.Equal(canonical, k.DER()) {
			t.Fatalf("accepted a DER that is not the key's canonical one: %x", k.DER())
		}
		if k.Fingerprint() != crypto.FingerprintOf(k.DER()) {
			t.Fatal("fingerprint is not that of the DER")
		}
		again, err := crypto.ParsePublicKeyDER(k.DER(), 2048)
		if err != nil || again.Fingerprint() != k.Fingerprint() || again.Algorithm() != k.Algorithm() {
			t.Fatalf("DER does not parse back to the same key: %v", err)
		}
		if b, err := crypto.ParsePublicKey(k.Base64(), 2048); err != nil || b.Fingerprint() != k.Fingerprint() {
			t.Fatalf("base64 form does not parse back to the same key: %v", err)
		}
	})
}
