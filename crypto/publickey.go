package crypto

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"fmt"
)

const (
	// rsaFloorBits is the smallest modulus crypto/rsa will verify with, so a
	// smaller minRSABits could only admit keys that can never verify.
	rsaFloorBits = 1024

	// maxRSABits bounds the cost of one verification: every reading is
	// verified with the meter's key, and a meter chooses its own key.
	maxRSABits = 8192

	// minRSAExponent is the smallest RSA public exponent accepted.
	minRSAExponent = 65537

	// maxRSAExponent is the largest exponent crypto/rsa accepts.
	maxRSAExponent = 1<<31 - 1
)

type keyKind uint8

const (
	kindInvalid keyKind = iota
	kindRSA
	kindECDSAP256
	kindECDSAP384
	kindEd25519
)

// PublicKey is a parsed and validated public key, ready to verify readings.
// It is immutable and safe for concurrent use; parse a meter's key once and
// keep the PublicKey rather than parsing it per request.
type PublicKey struct {
	kind    keyKind
	rsa     *rsa.PublicKey
	ecdsa   *ecdsa.PublicKey
	ed25519 ed25519.PublicKey
	sigSize int // RSA: modulus bytes; ECDSA: raw r||s bytes; Ed25519: 64
	alg     string
	der     []byte
	fp      Fingerprint
}

// ParsePublicKey parses the wire form of a public key, as accepted by
// DecodePublicKey, with the checks of ParsePublicKeyDER.
func ParsePublicKey(s string, minRSABits int) (*PublicKey, error) {
	der, err := DecodePublicKey(s)
	if err != nil {
		return nil, err
	}
	return ParsePublicKeyDER(der, minRSABits)
}

// ParsePublicKeyDER parses exactly one DER SubjectPublicKeyInfo, with no
// trailing data, and accepts only keys this service can trust:
//
//   - RSA with a modulus of at least minRSABits (and never below 1024) and
//     at most 8192 bits, and an odd public exponent of at least 65537;
//   - ECDSA on P-256 or P-384 with a point on the curve;
//   - Ed25519;
//
// and only in its canonical DER, the one x509.MarshalPKIXPublicKey (and
// OpenSSL) writes, so that a key has one fingerprint. Errors wrap
// ErrMalformedKey, ErrUnsupportedKey or ErrWeakKey. The returned key keeps
// its own copy of der.
func ParsePublicKeyDER(der []byte, minRSABits int) (*PublicKey, error) {
	if len(der) == 0 {
		return nil, fmt.Errorf("%w: empty DER public key", ErrMalformedKey)
	}
	if err := checkSPKI(der); err != nil {
		return nil, err
	}
	pub, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("%w: %s", ErrMalformedKey, describeX509Error(err))
	}
	// A key's identity is the fingerprint of its DER, so each key must
	// have exactly one DER. The parsers accept others: a public key BIT
	// STRING with unused bits is right-aligned into the same key, so the
	// key shifted left with its unused-bits count raised is a second
	// encoding, and a second fingerprint, of a key registered (or revoked)
	// under the first. Only the encoding x509.MarshalPKIXPublicKey writes
	// (which is OpenSSL's) is accepted.
	if canonical, err := x509.MarshalPKIXPublicKey(pub); err != nil || !bytes.Equal(der, canonical) {
		return nil, fmt.Errorf("%w: not the canonical DER of the key it holds (as openssl pkey -pubout writes it); "+
			"a key has one encoding, and its fingerprint is of that one", ErrMalformedKey)
	}
	k := &PublicKey{der: bytes.Clone(der), fp: FingerprintOf(der)}
	switch pub := pub.(type) {
	case *rsa.PublicKey:
		if err := checkRSA(pub, minRSABits); err != nil {
			return nil, err
		}
		bits := pub.N.BitLen()
		k.kind, k.rsa, k.sigSize, k.alg = kindRSA, pub, (bits+7)/8, fmt.Sprintf("rsa%d", bits)
	case *ecdsa.PublicKey:
		switch pub.Curve {
		case elliptic.P256():
			k.kind, k.alg = kindECDSAP256, string(ECDSAP256)
		case elliptic.P384():
			k.kind, k.alg = kindECDSAP384, string(ECDSAP384)
		default:
			return nil, fmt.Errorf("%w: ECDSA curve %s; want P-256 or P-384",
				ErrUnsupportedKey, pub.Curve.Params().Name)
		}
		k.ecdsa, k.sigSize = pub, 2*((pub.Curve.Params().BitSize+7)/8)
	case ed25519.PublicKey:
		k.kind, k.ed25519, k.sigSize, k.alg = kindEd25519, pub, ed25519.SignatureSize, string(Ed25519)
	default:
		return nil, fmt.Errorf("%w: key of type %T", ErrUnsupportedKey, pub)
	}
	return k, nil
}

// checkRSA enforces the size and exponent policy of ParsePublicKeyDER.
func checkRSA(pub *rsa.PublicKey, minBits int) error {
	minBits = max(minBits, rsaFloorBits)
	bits := pub.N.BitLen()
	if bits < minBits {
		return fmt.Errorf("%w: RSA key of %d bits, want at least %d", ErrWeakKey, bits, minBits)
	}
	if bits > maxRSABits {
		return fmt.Errorf("%w: RSA key of %d bits, want at most %d", ErrUnsupportedKey, bits, maxRSABits)
	}
	// Tiny exponents such as 3 are the classic enabler of PKCS#1 v1.5
	// forgeries against lax verifiers (Bleichenbacher 2006) and of cube-root
	// attacks; no legitimate key generator produces them today. An even
	// exponent cannot belong to a valid key, and crypto/rsa refuses
	// exponents below 2, so every such key is refused here, at registration,
	// rather than failing every verification later.
	if pub.E < minRSAExponent || pub.E%2 == 0 {
		return fmt.Errorf("%w: RSA public exponent %d, want an odd exponent of at least %d",
			ErrWeakKey, pub.E, minRSAExponent)
	}
	if pub.E > maxRSAExponent {
		return fmt.Errorf("%w: RSA public exponent %d, want at most %d", ErrUnsupportedKey, pub.E, maxRSAExponent)
	}
	return nil
}

// DER returns a copy of the DER SubjectPublicKeyInfo of k.
func (k *PublicKey) DER() []byte {
	return bytes.Clone(k.der)
}

// Fingerprint returns the identity of k, the SHA-256 of its DER form.
func (k *PublicKey) Fingerprint() Fingerprint {
	return k.fp
}

// Algorithm names the signature scheme of k: "rsa<bits>" such as "rsa2048"
// or "rsa3072", "ecdsa-p256", "ecdsa-p384" or "ed25519".
func (k *PublicKey) Algorithm() string {
	return k.alg
}

// Base64 returns the padded standard base64 of the DER form of k, the
// canonical wire form accepted by DecodePublicKey.
func (k *PublicKey) Base64() string {
	return base64.StdEncoding.EncodeToString(k.der)
}
