package crypto_test

import (
	"bytes"
	gocrypto "crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"errors"
	"math/big"
	"strings"
	"testing"

	"smartmeters/crypto"
)

func TestParsePublicKeyAlgorithm(t *testing.T) {
	tests := []struct {
		name string
		der  []byte
		want string
	}{
		{"RSA2048", testKey(t, crypto.RSA2048, 0).Public().DER(), "rsa2048"},
		{"RSA3072", rsaPublicDER(t, 3072, 65537), "rsa3072"},
		{"RSA4096", rsaPublicDER(t, 4096, 65537), "rsa4096"},
		{"RSA8192", rsaPublicDER(t, 8192, 65537), "rsa8192"},
		{"RSALargeExponent", rsaPublicDER(t, 2048, 1<<31-1), "rsa2048"},
		{"ECDSAP256", testKey(t, crypto.ECDSAP256, 0).Public().DER(), "ecdsa-p256"},
		{"ECDSAP384", testKey(t, crypto.ECDSAP384, 0).Public().DER(), "ecdsa-p384"},
		{"Ed25519", testKey(t, crypto.Ed25519, 0).Public().DER(), "ed25519"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := crypto.ParsePublicKeyDER(tt.der, 2048)
			if err != nil {
				t.Fatalf("ParsePublicKeyDER: %v", err)
			}
			if got := k.Algorithm(); got != tt.want {
				t.Errorf("Algorithm() = %q, want %q", got, tt.want)
			}
			if !bytes.Equal(k.DER(), tt.der) {
				t.Errorf("DER() differs from the parsed DER")
			}
			if got, want := k.Fingerprint(), crypto.FingerprintOf(tt.der); got != want {
				t.Errorf("Fingerprint() = %v, want %v", got, want)
			}
			if got, want := k.Base64(), base64.StdEncoding.EncodeToString(tt.der); got != want {
				t.Errorf("Base64() = %s, want %s", got, want)
			}
		})
	}
}

func TestPublicKeyOwnsDER(t *testing.T) {
	der := testKey(t, crypto.Ed25519, 0).Public().DER()
	k, err := crypto.ParsePublicKeyDER(der, 2048)
	if err != nil {
		t.Fatal(err)
	}
	want := k.Fingerprint()
	der[len(der)-1] ^= 1
	k.DER()[0] ^= 1
	if k.Fingerprint() != want || crypto.FingerprintOf(k.DER()) != want {
		t.Fatal("PublicKey shares its DER with the caller")
	}
}

func TestDecodePublicKeyEncodings(t *testing.T) {
	for _, typ := range crypto.KeyTypes {
		t.Run(string(typ), func(t *testing.T) {
			der := testKey(t, typ, 0).Public().DER()
			want := crypto.FingerprintOf(der)
			pemKey := string(pemBlock("PUBLIC KEY", der))
			encodings := []struct {
				name string
				in   string
			}{
				{"Padded", base64.StdEncoding.EncodeToString(der)},
				{"Unpadded", base64.RawStdEncoding.EncodeToString(der)},
				{"Whitespace", " \t" + base64.StdEncoding.EncodeToString(der) + "\r\n"},
				{"PEM", pemKey},
				{"PEMCRLF", strings.ReplaceAll(pemKey, "\n", "\r\n")},
				{"PEMWhitespace", "\n\n  " + pemKey + "\n\t "},
			}
			for _, enc := range encodings {
				t.Run(enc.name, func(t *testing.T) {
					got, err := crypto.DecodePublicKey(enc.in)
					if err != nil {
						t.Fatalf("DecodePublicKey: %v", err)
					}
					if !bytes.Equal(got, der) || crypto.FingerprintOf(got) != want {
						t.Fatalf("DecodePublicKey returned other DER (fingerprint %v, want %v)", crypto.FingerprintOf(got), want)
					}
					k, err := crypto.ParsePublicKey(enc.in, 2048)
					if err != nil {
						t.Fatalf("ParsePublicKey: %v", err)
					}
					if k.Fingerprint() != want {
						t.Errorf("ParsePublicKey fingerprint = %v, want %v", k.Fingerprint(), want)
					}
				})
			}
		})
	}
}

func TestParsePublicKeyErrors(t *testing.T) {
	rsaDER := testKey(t, crypto.RSA2048, 0).Public().DER()
	p256DER := testKey(t, crypto.ECDSAP256, 0).Public().DER()
	ed25519DER := testKey(t, crypto.Ed25519, 0).Public().DER()

	offCurve := bytes.Clone(p256DER)
	offCurve[len(offCurve)-1] ^= 1 // last byte of the point's Y coordinate

	withHeaders := strings.Replace(string(pemBlock("PUBLIC KEY", p256DER)),
		"-----\n", "-----\nComment: meter 7\n\n", 1)
	badPEMBody := strings.Replace(string(pemBlock("PUBLIC KEY", p256DER)), "MF", "M*", 1)

	p224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	p521, _ := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	x25519, _ := ecdh.X25519().GenerateKey(rand.Reader)
	p256Point := p256DER[len(p256DER)-65:]
	dsaDER := spkiDER(t, asn1.ObjectIdentifier{1, 2, 840, 10040, 4, 1},
		struct{ P, Q, G *big.Int }{big.NewInt(23), big.NewInt(11), big.NewInt(4)},
		mustMarshal(t, big.NewInt(8)))
	secp256k1DER := spkiDER(t, asn1.ObjectIdentifier{1, 2, 840, 10045, 2, 1},
		asn1.ObjectIdentifier{1, 3, 132, 0, 10}, p256Point)
	ecNullParams := spkiDER(t, asn1.ObjectIdentifier{1, 2, 840, 10045, 2, 1}, asn1.NullRawValue, p256Point)
	ecNoParams := spkiDER(t, asn1.ObjectIdentifier{1, 2, 840, 10045, 2, 1}, nil, p256Point)
	shortEd25519 := spkiDER(t, asn1.ObjectIdentifier{1, 3, 101, 112}, nil, make([]byte, 31))

	urlSafe := b64(rsaDER)
	urlSafe = urlSafe[:40] + "-" + urlSafe[41:80] + "_" + urlSafe[81:]

	tests := []struct {
		name    string
		in      string
		minBits int
		want    error
		detail  string
	}{
		{"Empty", "", 2048, crypto.ErrMalformedKey, "empty"},
		{"Whitespace", " \n\t", 2048, crypto.ErrMalformedKey, "empty"},
		{"BadBase64", "MFkw!!!", 2048, crypto.ErrMalformedKey, "offset 4"},
		{"URLSafeDash", urlSafe, 2048, crypto.ErrMalformedKey, `URL-safe base64 character '-' at offset 40`},
		{"URLSafeUnderscore", b64(p256DER)[:20] + "_" + b64(p256DER)[21:], 2048, crypto.ErrMalformedKey, `'_'`},
		{"BadPadding", b64(p256DER) + "=", 2048, crypto.ErrMalformedKey, "padding"},
		{"LineBreak", b64(rsaDER)[:64] + "\n" + b64(rsaDER)[64:], 2048, crypto.ErrMalformedKey, "line break at offset 64"},
		{"PEMRSAPrivateKey", string(pemBlock("RSA PRIVATE KEY", rsaDER)), 2048, crypto.ErrMalformedKey, `"RSA PRIVATE KEY", want "PUBLIC KEY"`},
		{"PEMRSAPublicKey", string(pemBlock("RSA PUBLIC KEY", rsaDER)), 2048, crypto.ErrMalformedKey, `"RSA PUBLIC KEY"`},
		{"PEMTrailingData", string(pemBlock("PUBLIC KEY", p256DER)) + "garbage", 2048, crypto.ErrMalformedKey, "7 bytes of data after"},
		{"PEMTwoBlocks", string(pemBlock("PUBLIC KEY", p256DER)) + string(pemBlock("PUBLIC KEY", p256DER)), 2048, crypto.ErrMalformedKey, "after the PEM"},
		{"PEMHeaders", withHeaders, 2048, crypto.ErrMalformedKey, "headers"},
		{"PEMBadBody", badPEMBody, 2048, crypto.ErrMalformedKey, "invalid PEM"},
		{"NotDER", b64([]byte("not a key")), 2048, crypto.ErrMalformedKey, "invalid DER SubjectPublicKeyInfo: unexpected ASN.1 structure"},
		{"TruncatedDER", b64(p256DER[:len(p256DER)-1]), 2048, crypto.ErrMalformedKey, "invalid DER SubjectPublicKeyInfo: data truncated"},
		{"TruncatedDERHeader", b64(rsaDER[:10]), 2048, crypto.ErrMalformedKey, "SubjectPublicKeyInfo"},
		{"TrailingByte", b64(append(bytes.Clone(p256DER), 0)), 2048, crypto.ErrMalformedKey, "1 byte of trailing data"},
		{"TrailingDER", b64(append(bytes.Clone(ed25519DER), ed25519DER...)), 2048, crypto.ErrMalformedKey, "44 bytes of trailing data"},
		{"ECDSAOffCurve", b64(offCurve), 2048, crypto.ErrMalformedKey, "not on curve"},
		{"ECDSANoParams", b64(ecNoParams), 2048, crypto.ErrMalformedKey, "without curve parameters"},
		{"Ed25519Short", b64(shortEd25519), 2048, crypto.ErrMalformedKey, "wrong Ed25519 public key size"},
		{"DSA", b64(dsaDER), 2048, crypto.ErrUnsupportedKey, "DSA (1.2.840.10040.4.1)"},
		{"X25519", b64(marshalPKIX(t, x25519.PublicKey())), 2048, crypto.ErrUnsupportedKey, "X25519"},
		{"ECDSAP224", b64(marshalPKIX(t, &p224.PublicKey)), 2048, crypto.ErrUnsupportedKey, "P-224"},
		{"ECDSAP521", b64(marshalPKIX(t, &p521.PublicKey)), 2048, crypto.ErrUnsupportedKey, "P-521"},
		{"ECDSASecp256k1", b64(secp256k1DER), 2048, crypto.ErrUnsupportedKey, "secp256k1"},
		{"ECDSAImplicitCurve", b64(ecNullParams), 2048, crypto.ErrUnsupportedKey, "named curve"},
		{"RSA1024", b64(rsaPublicDER(t, 1024, 65537)), 2048, crypto.ErrWeakKey, "1024 bits, want at least 2048"},
		{"RSA2047", b64(rsaPublicDER(t, 2047, 65537)), 2048, crypto.ErrWeakKey, "2047 bits"},
		{"RSA2048Min3072", b64(rsaDER), 3072, crypto.ErrWeakKey, "2048 bits, want at least 3072"},
		{"RSA512MinZero", b64(rsaPublicDER(t, 512, 65537)), 0, crypto.ErrWeakKey, "want at least 1024"},
		{"RSAExponent3", b64(rsaPublicDER(t, 2048, 3)), 2048, crypto.ErrWeakKey, "exponent 3,"},
		{"RSAExponent65535", b64(rsaPublicDER(t, 2048, 65535)), 2048, crypto.ErrWeakKey, "exponent 65535,"},
		{"RSAExponentEven", b64(rsaPublicDER(t, 2048, 65538)), 2048, crypto.ErrWeakKey, "odd"},
		{"RSAExponentHuge", b64(rsaPublicDER(t, 2048, 1<<31+1)), 2048, crypto.ErrUnsupportedKey, "at most 2147483647"},
		{"RSA8200", b64(rsaPublicDER(t, 8200, 65537)), 2048, crypto.ErrUnsupportedKey, "8200 bits, want at most 8192"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := crypto.ParsePublicKey(tt.in, tt.minBits)
			if !errors.Is(err, tt.want) {
				t.Fatalf("ParsePublicKey = %v, %v; want error wrapping %v", k, err, tt.want)
			}
			if k != nil {
				t.Errorf("ParsePublicKey returned a key with error %v", err)
			}
			if !strings.Contains(err.Error(), tt.detail) {
				t.Errorf("error %q does not mention %q", err, tt.detail)
			}
			for _, other := range []error{crypto.ErrMalformedKey, crypto.ErrUnsupportedKey, crypto.ErrWeakKey} {
				if other != tt.want && errors.Is(err, other) {
					t.Errorf("error %q also wraps %v", err, other)
				}
			}
		})
	}
}

func TestParsePublicKeyDEREmpty(t *testing.T) {
	for _, der := range [][]byte{nil, {}} {
		if _, err := crypto.ParsePublicKeyDER(der, 2048); !errors.Is(err, crypto.ErrMalformedKey) {
			t.Errorf("ParsePublicKeyDER(%v) error = %v, want ErrMalformedKey", der, err)
		}
	}
}

func mustMarshal(tb testing.TB, v any) []byte {
	tb.Helper()
	b, err := asn1.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// TestParsePublicKeyOneEncoding checks that a key is accepted in one DER
// only. encoding/asn1 right-aligns a BIT STRING with unused bits, so the
// subjectPublicKey shifted left by n bits with n unused bits is the same
// key to crypto/x509, under another fingerprint: registering it would
// enrol a revoked or taken key again.
func TestParsePublicKeyOneEncoding(t *testing.T) {
	type spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	for _, typ := range crypto.KeyTypes {
		t.Run(string(typ), func(t *testing.T) {
			// A key whose first byte leaves room to shift; RSA and ECDSA
			// keys always do (0x30, 0x04), Ed25519 keys half the time.
			var der []byte
			var s spki
			for i := 0; ; i++ {
				der = testKey(t, typ, i).Public().DER()
				if _, err := asn1.Unmarshal(der, &s); err != nil {
					t.Fatal(err)
				}
				if s.PublicKey.Bytes[0]&0x80 == 0 {
					break
				}
			}
			want, err := x509.ParsePKIXPublicKey(der)
			if err != nil {
				t.Fatal(err)
			}
			n := 1
			for ; n <= 7 && s.PublicKey.Bytes[0]>>(8-n) == 0; n++ {
				shifted := new(big.Int).Lsh(new(big.Int).SetBytes(s.PublicKey.Bytes), uint(n)).FillBytes(make([]byte, len(s.PublicKey.Bytes)))
				alt, err := asn1.Marshal(spki{s.Algorithm, asn1.BitString{Bytes: shifted, BitLength: 8*len(shifted) - n}})
				if err != nil {
					t.Fatal(err)
				}
				// The other encoding is the same key to crypto/x509...
				got, err := x509.ParsePKIXPublicKey(alt)
				if err != nil || !want.(interface{ Equal(gocrypto.PublicKey) bool }).Equal(got) {
					t.Fatalf("shift %d: not another encoding of the key (%v)", n, err)
				}
				if crypto.FingerprintOf(alt) == crypto.FingerprintOf(der) {
					t.Fatalf("shift %d: same fingerprint", n)
				}
				// ...and refused here, in DER and in base64.
				if _, err := crypto.ParsePublicKeyDER(alt, 2048); !errors.Is(err, crypto.ErrMalformedKey) {
					t.Errorf("shift %d: ParsePublicKeyDER: %v, want ErrMalformedKey", n, err)
				}
				if _, err := crypto.ParsePublicKey(base64.StdEncoding.EncodeToString(alt), 2048); !errors.Is(err, crypto.ErrMalformedKey) {
					t.Errorf("shift %d: ParsePublicKey: %v, want ErrMalformedKey", n, err)
				}
			}
			if n == 1 {
				t.Fatal("no other encoding was tried")
			}
			if _, err := crypto.ParsePublicKeyDER(der, 2048); err != nil {
				t.Fatalf("canonical DER refused: %v", err)
			}
		})
	}
}
