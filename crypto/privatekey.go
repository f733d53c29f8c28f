package crypto

import (
	gocrypto "crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
)

// minPrivateRSABits is the smallest RSA key ParsePrivateKeyPEM loads: a
// meter must never sign with a key the server would refuse by default.
const minPrivateRSABits = 2048

// PrivateKey signs readings the way a meter does. The server never holds
// one; the simulator and the tests do.
type PrivateKey struct {
	key gocrypto.Signer // *rsa.PrivateKey, *ecdsa.PrivateKey or ed25519.PrivateKey
	pub *PublicKey
	typ KeyType
}

// GenerateKey creates a new key of type t, reading randomness from random,
// or from crypto/rand if random is nil. An Ed25519 key is derived from the
// first 32 bytes of random, so a fixed reader gives a fixed key; RSA and
// ECDSA key generation may ignore random (crypto/rsa and crypto/ecdsa do
// since Go 1.26), so those keys are never reproducible. An unknown t yields
// an error wrapping ErrUnsupportedKey.
func GenerateKey(t KeyType, random io.Reader) (*PrivateKey, error) {
	if random == nil {
		random = rand.Reader
	}
	var (
		key gocrypto.Signer
		err error
	)
	switch t {
	case RSA2048:
		key, err = rsa.GenerateKey(random, 2048)
	case ECDSAP256:
		key, err = ecdsa.GenerateKey(elliptic.P256(), random)
	case ECDSAP384:
		key, err = ecdsa.GenerateKey(elliptic.P384(), random)
	case Ed25519:
		seed := make([]byte, ed25519.SeedSize)
		if _, err = io.ReadFull(random, seed); err == nil {
			key = ed25519.NewKeyFromSeed(seed)
		}
	default:
		_, err = ParseKeyType(string(t)) // its error lists the valid types
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("generating %s key: %w", t, err)
	}
	return newPrivateKey(key)
}

// newPrivateKey wraps a signer whose public half passes the checks of
// ParsePublicKeyDER.
func newPrivateKey(key gocrypto.Signer) (*PrivateKey, error) {
	der, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return nil, fmt.Errorf("%w: %s", ErrUnsupportedKey, describeX509Error(err))
	}
	pub, err := ParsePublicKeyDER(der, minPrivateRSABits)
	if err != nil {
		return nil, err
	}
	return &PrivateKey{key: key, pub: pub, typ: KeyType(pub.Algorithm())}, nil
}

// Public returns the public half of k.
func (k *PrivateKey) Public() *PublicKey {
	return k.pub
}

// Type returns the type of k: one of KeyTypes, or "rsa<bits>" for an RSA
// key of another size loaded by ParsePrivateKeyPEM.
func (k *PrivateKey) Type() KeyType {
	return k.typ
}

// Sign returns k's signature of r.Message(), which k.Public().Verify
// accepts: RSASSA-PKCS1-v1_5 with SHA-256 for RSA; ASN.1 DER with SHA-256
// (P-256) or SHA-384 (P-384) for ECDSA, randomized; Ed25519 over the
// message itself.
func (k *PrivateKey) Sign(r Reading) ([]byte, error) {
	msg := r.Message()
	return k.sign(msg[:])
}

// sign signs msg as Sign describes.
func (k *PrivateKey) sign(msg []byte) ([]byte, error) {
	var (
		sig []byte
		err error
	)
	switch key := k.key.(type) {
	case *rsa.PrivateKey:
		h := sha256.Sum256(msg)
		sig, err = rsa.SignPKCS1v15(nil, key, gocrypto.SHA256, h[:])
	case *ecdsa.PrivateKey:
		if k.pub.kind == kindECDSAP384 {
			h := sha512.Sum384(msg)
			sig, err = ecdsa.SignASN1(rand.Reader, key, h[:])
		} else {
			h := sha256.Sum256(msg)
			sig, err = ecdsa.SignASN1(rand.Reader, key, h[:])
		}
	case ed25519.PrivateKey:
		sig = ed25519.Sign(key, msg)
	default:
		return nil, fmt.Errorf("%w: PrivateKey was not made by GenerateKey or ParsePrivateKeyPEM", ErrUnsupportedKey)
	}
	if err != nil {
		return nil, fmt.Errorf("signing with %s key: %w", k.typ, err)
	}
	return sig, nil
}

// MarshalPKCS8PEM encodes k as a PEM "PRIVATE KEY" block holding its
// PKCS#8 DER form, the form ParsePrivateKeyPEM reads.
func (k *PrivateKey) MarshalPKCS8PEM() ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k.key)
	if err != nil {
		return nil, fmt.Errorf("marshaling %s private key: %w", k.typ, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemPrivateKeyType, Bytes: der}), nil
}

// ParsePrivateKeyPEM parses a single PEM "PRIVATE KEY" block holding a
// PKCS#8 key; only whitespace may surround it. The key must be RSA of at
// least 2048 bits with an odd exponent of at least 65537, ECDSA on P-256 or
// P-384, or Ed25519. Errors wrap ErrMalformedKey, ErrUnsupportedKey or
// ErrWeakKey.
func ParsePrivateKeyPEM(pemBytes []byte) (*PrivateKey, error) {
	der, err := decodePEM(pemBytes, pemPrivateKeyType)
	if err != nil {
		return nil, err
	}
	if err := checkPKCS8(der); err != nil {
		return nil, err
	}
	key, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("%w: %s", ErrMalformedKey, describeX509Error(err))
	}
	signer, ok := key.(gocrypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%w: private key of type %T cannot sign", ErrUnsupportedKey, key)
	}
	return newPrivateKey(signer)
}
