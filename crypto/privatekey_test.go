package crypto_test

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"strings"
	"testing"
	"testing/iotest"

	"smartmeters/crypto"
)

func TestGenerateKey(t *testing.T) {
	for _, typ := range crypto.KeyTypes {
		t.Run(string(typ), func(t *testing.T) {
			k := testKey(t, typ, 0)
			if k.Type() != typ {
				t.Errorf("Type() = %q, want %q", k.Type(), typ)
			}
			if got := k.Public().Algorithm(); got != string(typ) {
				t.Errorf("Public().Algorithm() = %q, want %q", got, typ)
			}
		})
	}
	t.Run("Ed25519Deterministic", func(t *testing.T) {
		seed := bytes.Repeat([]byte{42}, 32)
		a, errA := crypto.GenerateKey(crypto.Ed25519, bytes.NewReader(seed))
		b, errB := crypto.GenerateKey(crypto.Ed25519, bytes.NewReader(seed))
		if errA != nil || errB != nil {
			t.Fatalf("GenerateKey: %v, %v", errA, errB)
		}
		if a.Public().Fingerprint() != b.Public().Fingerprint() {
			t.Error("one seed gave two Ed25519 keys")
		}
	})
	t.Run("Ed25519ShortReader", func(t *testing.T) {
		if _, err := crypto.GenerateKey(crypto.Ed25519, bytes.NewReader(make([]byte, 31))); err == nil {
			t.Fatal("GenerateKey with 31 random bytes succeeded")
		}
	})
	t.Run("Ed25519FailingReader", func(t *testing.T) {
		boom := errors.New("boom")
		if _, err := crypto.GenerateKey(crypto.Ed25519, iotest.ErrReader(boom)); !errors.Is(err, boom) {
			t.Fatalf("GenerateKey error = %v, want %v", err, boom)
		}
	})
	for _, typ := range []crypto.KeyType{"", "rsa1024", "ecdsa-p521", "x25519"} {
		t.Run("ErrUnsupportedKey/"+string(typ), func(t *testing.T) {
			if _, err := crypto.GenerateKey(typ, nil); !errors.Is(err, crypto.ErrUnsupportedKey) {
				t.Fatalf("GenerateKey(%q) error = %v, want ErrUnsupportedKey", typ, err)
			}
		})
	}
}

func TestPrivateKeyPEMRoundTrip(t *testing.T) {
	for _, typ := range crypto.KeyTypes {
		t.Run(string(typ), func(t *testing.T) {
			orig := testKey(t, typ, 0)
			pemKey, err := orig.MarshalPKCS8PEM()
			if err != nil {
				t.Fatalf("MarshalPKCS8PEM: %v", err)
			}
			if !bytes.HasPrefix(pemKey, []byte("-----BEGIN PRIVATE KEY-----\n")) {
				t.Fatalf("MarshalPKCS8PEM = %q, want a PRIVATE KEY block", pemKey)
			}
			for _, in := range [][]byte{pemKey, bytes.ReplaceAll(pemKey, []byte("\n"), []byte("\r\n")), append([]byte("\n "), append(pemKey, "\n\n"...)...)} {
				k, err := crypto.ParsePrivateKeyPEM(in)
				if err != nil {
					t.Fatalf("ParsePrivateKeyPEM: %v", err)
				}
				if k.Type() != typ || k.Public().Base64() != orig.Public().Base64() {
					t.Fatalf("parsed %s key %s, want %s key %s", k.Type(), k.Public().Base64(), typ, orig.Public().Base64())
				}
				if err := orig.Public().Verify(vectorReading, sign(t, k, vectorReading)); err != nil {
					t.Fatalf("signature by parsed key: %v", err)
				}
			}
		})
	}
	t.Run("rsa3072", func(t *testing.T) {
		key, err := rsa.GenerateKey(rand.Reader, 3072)
		if err != nil {
			t.Fatal(err)
		}
		k, err := crypto.ParsePrivateKeyPEM(marshalPKCS8PEM(t, key))
		if err != nil {
			t.Fatalf("ParsePrivateKeyPEM: %v", err)
		}
		if k.Type() != "rsa3072" || k.Public().Algorithm() != "rsa3072" {
			t.Errorf("Type() = %q, Algorithm() = %q, want rsa3072", k.Type(), k.Public().Algorithm())
		}
	})
}

func TestParsePrivateKeyPEMErrors(t *testing.T) {
	valid, err := testKey(t, crypto.ECDSAP256, 0).MarshalPKCS8PEM()
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	rsa1024, _ := rsa.GenerateKey(rand.Reader, 1024)
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p521, _ := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	p224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	x25519, _ := ecdh.X25519().GenerateKey(rand.Reader)
	sec1, _ := x509.MarshalECPrivateKey(p256)
	pkcs8DER, _ := x509.MarshalPKCS8PrivateKey(p256)

	withHeaders := strings.Replace(string(valid), "-----\n", "-----\nProc-Type: 4,ENCRYPTED\n\n", 1)

	tests := []struct {
		name   string
		in     string
		want   error
		detail string
	}{
		{"Empty", "", crypto.ErrMalformedKey, "not a PEM"},
		{"Garbage", "garbage", crypto.ErrMalformedKey, "not a PEM"},
		{"Base64DER", b64(pkcs8DER), crypto.ErrMalformedKey, "not a PEM"},
		{"LeadingText", "Bag Attributes\n" + string(valid), crypto.ErrMalformedKey, "not a PEM"},
		{"TrailingText", string(valid) + "garbage\n", crypto.ErrMalformedKey, "7 bytes of data after"},
		{"TwoBlocks", string(valid) + string(valid), crypto.ErrMalformedKey, "after the PEM"},
		{"BrokenPEM", "-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n", crypto.ErrMalformedKey, "invalid PEM"},
		{"Headers", withHeaders, crypto.ErrMalformedKey, "headers"},
		{"PublicKey", string(pemBlock("PUBLIC KEY", marshalPKIX(t, &p256.PublicKey))), crypto.ErrMalformedKey, `"PUBLIC KEY", want "PRIVATE KEY"`},
		{"PKCS1", string(pemBlock("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsaKey))), crypto.ErrMalformedKey, `"RSA PRIVATE KEY"`},
		{"SEC1", string(pemBlock("EC PRIVATE KEY", sec1)), crypto.ErrMalformedKey, `"EC PRIVATE KEY"`},
		{"Encrypted", string(pemBlock("ENCRYPTED PRIVATE KEY", pkcs8DER)), crypto.ErrMalformedKey, `"ENCRYPTED PRIVATE KEY"`},
		{"NotPKCS8", string(pemBlock("PRIVATE KEY", []byte("not a key"))), crypto.ErrMalformedKey, "PKCS#8"},
		{"SEC1InPKCS8Block", string(pemBlock("PRIVATE KEY", sec1)), crypto.ErrMalformedKey, "PKCS#8"},
		{"TruncatedPKCS8", string(pemBlock("PRIVATE KEY", pkcs8DER[:len(pkcs8DER)-1])), crypto.ErrMalformedKey, "PKCS#8"},
		{"TrailingDER", string(pemBlock("PRIVATE KEY", append(bytes.Clone(pkcs8DER), 0))), crypto.ErrMalformedKey, "1 byte of trailing data"},
		{"P224", string(marshalPKCS8PEM(t, p224)), crypto.ErrUnsupportedKey, "P-224"},
		{"P521", string(marshalPKCS8PEM(t, p521)), crypto.ErrUnsupportedKey, "P-521"},
		{"X25519", string(marshalPKCS8PEM(t, x25519)), crypto.ErrUnsupportedKey, "X25519"},
		{"RSA1024", string(marshalPKCS8PEM(t, rsa1024)), crypto.ErrWeakKey, "1024 bits, want at least 2048"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := crypto.ParsePrivateKeyPEM([]byte(tt.in))
			if !errors.Is(err, tt.want) {
				t.Fatalf("ParsePrivateKeyPEM = %v, %v; want error wrapping %v", k, err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.detail) {
				t.Errorf("error %q does not mention %q", err, tt.detail)
			}
		})
	}
}
