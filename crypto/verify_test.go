package crypto_test

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"smartmeters/crypto"
)

// signedCase is one way of signing a reading: a key type and, for ECDSA, the
// signature encoding.
type signedCase struct {
	name string
	typ  crypto.KeyType
	raw  bool // ECDSA raw r||s instead of ASN.1 DER
}

var signedCases = []signedCase{
	{"rsa2048", crypto.RSA2048, false},
	{"ecdsa-p256-der", crypto.ECDSAP256, false},
	{"ecdsa-p256-raw", crypto.ECDSAP256, true},
	{"ecdsa-p384-der", crypto.ECDSAP384, false},
	{"ecdsa-p384-raw", crypto.ECDSAP384, true},
	{"ed25519", crypto.Ed25519, false},
}

// signCase signs r with the n-th key of c.typ in c's encoding.
func signCase(tb testing.TB, c signedCase, n int, r crypto.Reading) []byte {
	tb.Helper()
	sig := sign(tb, testKey(tb, c.typ, n), r)
	if c.raw {
		sig = rawECDSA(tb, sig, ecdsaSize(c.typ))
	}
	return sig
}

func TestSignVerify(t *testing.T) {
	readings := []crypto.Reading{
		{},
		vectorReading,
		{WhIn: -1, WhOut: -9_000_000_000, Timestamp: -1},
	}
	for _, c := range signedCases {
		t.Run(c.name, func(t *testing.T) {
			pub := testKey(t, c.typ, 0).Public()
			for _, r := range readings {
				sig := signCase(t, c, 0, r)
				if err := pub.Verify(r, sig); err != nil {
					t.Errorf("Verify(%+v) = %v, want nil", r, err)
				}
			}
		})
	}
}

func TestVerifyChangedReading(t *testing.T) {
	changes := []struct {
		name   string
		change func(*crypto.Reading)
	}{
		{"WhIn", func(r *crypto.Reading) { r.WhIn++ }},
		{"WhOut", func(r *crypto.Reading) { r.WhOut++ }},
		{"Timestamp", func(r *crypto.Reading) { r.Timestamp++ }},
	}
	for _, c := range signedCases {
		sig := signCase(t, c, 0, vectorReading)
		pub := testKey(t, c.typ, 0).Public()
		for _, ch := range changes {
			t.Run(c.name+"/"+ch.name, func(t *testing.T) {
				r := vectorReading
				ch.change(&r)
				err := pub.Verify(r, sig)
				if !errors.Is(err, crypto.ErrBadSignature) || errors.Is(err, crypto.ErrMalformedSignature) {
					t.Fatalf("Verify(%+v) = %v, want ErrBadSignature only", r, err)
				}
			})
		}
	}
}

func TestVerifyFlippedBits(t *testing.T) {
	for _, c := range signedCases {
		t.Run(c.name, func(t *testing.T) {
			sig := signCase(t, c, 0, vectorReading)
			pub := testKey(t, c.typ, 0).Public()
			for bit := range 8 * len(sig) {
				flipped := bytes.Clone(sig)
				flipped[bit/8] ^= 0x80 >> (bit % 8)
				if err := pub.Verify(vectorReading, flipped); !errors.Is(err, crypto.ErrBadSignature) {
					t.Fatalf("Verify with bit %d of %d flipped = %v, want ErrBadSignature", bit, 8*len(sig), err)
				}
			}
		})
	}
}

func TestVerifyOtherKey(t *testing.T) {
	for _, signer := range signedCases {
		sig := signCase(t, signer, 0, vectorReading)
		for _, verifier := range signedCases {
			if verifier.typ == signer.typ {
				continue
			}
			t.Run(fmt.Sprintf("%s/%s", signer.name, verifier.name), func(t *testing.T) {
				err := testKey(t, verifier.typ, 0).Public().Verify(vectorReading, sig)
				if !errors.Is(err, crypto.ErrBadSignature) {
					t.Fatalf("Verify = %v, want ErrBadSignature", err)
				}
			})
		}
		t.Run(signer.name+"/SameTypeOtherKey", func(t *testing.T) {
			err := testKey(t, signer.typ, 1).Public().Verify(vectorReading, sig)
			if !errors.Is(err, crypto.ErrBadSignature) || errors.Is(err, crypto.ErrMalformedSignature) {
				t.Fatalf("Verify = %v, want ErrBadSignature only", err)
			}
		})
	}
}

func TestVerifyMalformedSignature(t *testing.T) {
	rsaSig := signCase(t, signedCases[0], 0, vectorReading)
	p256DER := signCase(t, signedCases[1], 0, vectorReading)
	p256Raw := signCase(t, signedCases[2], 0, vectorReading)
	p384Raw := signCase(t, signedCases[4], 0, vectorReading)
	edSig := signCase(t, signedCases[5], 0, vectorReading)

	badFrame := bytes.Clone(p256DER)
	badFrame[1]++

	tests := []struct {
		name   string
		typ    crypto.KeyType
		sig    []byte
		detail string
	}{
		{"RSAEmpty", crypto.RSA2048, nil, "0 bytes, want 256"},
		{"RSAShort", crypto.RSA2048, rsaSig[1:], "255 bytes, want 256"},
		{"RSALong", crypto.RSA2048, append(bytes.Clone(rsaSig), 0), "257 bytes, want 256"},
		{"ECDSAP256Empty", crypto.ECDSAP256, nil, "0 bytes"},
		{"ECDSAP256Raw63", crypto.ECDSAP256, p256Raw[:63], "63 bytes is neither raw r||s of 64 bytes nor ASN.1 DER"},
		{"ECDSAP256Raw65", crypto.ECDSAP256, append(bytes.Clone(p256Raw), 0), "65 bytes"},
		{"ECDSAP256DERBadLength", crypto.ECDSAP256, badFrame, "ASN.1 DER"},
		{"ECDSAP256DERTrailing", crypto.ECDSAP256, append(bytes.Clone(p256DER), 0), "ASN.1 DER"},
		{"ECDSAP256Rawof384", crypto.ECDSAP256, p384Raw, "96 bytes"},
		{"ECDSAP384Raw95", crypto.ECDSAP384, p384Raw[:95], "95 bytes is neither raw r||s of 96 bytes"},
		{"ECDSAP384Raw97", crypto.ECDSAP384, append(bytes.Clone(p384Raw), 0), "97 bytes"},
		{"ECDSAP384RSASig", crypto.ECDSAP384, rsaSig, "256 bytes"},
		{"Ed25519Empty", crypto.Ed25519, nil, "0 bytes, want 64"},
		{"Ed25519Short", crypto.Ed25519, edSig[:63], "63 bytes, want 64"},
		{"Ed25519Long", crypto.Ed25519, append(bytes.Clone(edSig), 0), "65 bytes, want 64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := testKey(t, tt.typ, 0).Public().Verify(vectorReading, tt.sig)
			if !errors.Is(err, crypto.ErrBadSignature) || !errors.Is(err, crypto.ErrMalformedSignature) {
				t.Fatalf("Verify = %v, want ErrBadSignature and ErrMalformedSignature", err)
			}
			if !bytes.Contains([]byte(err.Error()), []byte(tt.detail)) {
				t.Errorf("error %q does not mention %q", err, tt.detail)
			}
		})
	}
}

// TestVerifyECDSARawShortIntegers checks raw signatures whose r or s has
// leading zero bytes, which DER encodes in fewer bytes.
func TestVerifyECDSARawShortIntegers(t *testing.T) {
	for _, typ := range []crypto.KeyType{crypto.ECDSAP256, crypto.ECDSAP384} {
		t.Run(string(typ), func(t *testing.T) {
			key := testKey(t, typ, 0)
			size := ecdsaSize(typ)
			for range 10000 {
				raw := rawECDSA(t, sign(t, key, vectorReading), size)
				if raw[0] != 0 && raw[size] != 0 {
					continue
				}
				if err := key.Public().Verify(vectorReading, raw); err != nil {
					t.Fatalf("Verify(raw %x) = %v, want nil", raw, err)
				}
				return
			}
			t.Fatal("no signature with a short integer in 10000 tries")
		})
	}
}

func TestVerifyZeroPublicKey(t *testing.T) {
	var k crypto.PublicKey
	if err := k.Verify(vectorReading, make([]byte, 64)); !errors.Is(err, crypto.ErrBadSignature) {
		t.Fatalf("Verify on zero PublicKey = %v, want ErrBadSignature", err)
	}
}

func TestDecodeSignature(t *testing.T) {
	sig := []byte{0xfb, 0xff, 0x01, 0x02, 0x03}
	tests := []struct {
		name string
		in   string
		want error
	}{
		{"Padded", "+/8BAgM=", nil},
		{"Unpadded", "+/8BAgM", nil},
		{"Whitespace", " +/8BAgM=\n", nil},
		{"Empty", "", crypto.ErrMalformedSignature},
		{"URLSafe", "-_8BAgM", crypto.ErrMalformedSignature},
		{"BadPadding", "+/8BAgM==", crypto.ErrMalformedSignature},
		{"LineBreak", "+/8B\nAgM=", crypto.ErrMalformedSignature},
		{"NotBase64", "sig!", crypto.ErrMalformedSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := crypto.DecodeSignature(tt.in)
			if !errors.Is(err, tt.want) {
				t.Fatalf("DecodeSignature(%q) error = %v, want %v", tt.in, err, tt.want)
			}
			if tt.want == nil && !bytes.Equal(got, sig) {
				t.Errorf("DecodeSignature(%q) = %x, want %x", tt.in, got, sig)
			}
		})
	}
}
