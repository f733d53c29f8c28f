package crypto_test

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"flag"
	"io"
	"os"
	"path/filepath"
	"testing"

	"smartmeters/crypto"
)

var update = flag.Bool("update", false, "regenerate testdata/vectors.json")

var vectorsPath = filepath.Join("testdata", "vectors.json")

// vector is one entry of testdata/vectors.json, a worked example for a
// firmware author: every intermediate value can be checked by hand.
type vector struct {
	Name               string         `json:"name"`
	KeyType            crypto.KeyType `json:"keyType"`
	Description        string         `json:"description"`
	PrivateKeyPKCS8PEM string         `json:"privateKeyPkcs8Pem"`
	Base64PublicKey    string         `json:"base64PublicKey"`
	Fingerprint        string         `json:"fingerprint"`
	Reading            crypto.Reading `json:"reading"`
	MessageHex         string         `json:"messageHex"`
	DigestAlgorithm    string         `json:"digestAlgorithm,omitempty"`
	DigestHex          string         `json:"digestHex,omitempty"`
	SignatureEncoding  string         `json:"signatureEncoding"`
	Base64Signature    string         `json:"base64Signature"`
}

const messageSteps = "Build the 28-byte message: ASCII \"SMR1\", then whIn, whOut and timestamp (Unix ms), " +
	"each a big-endian two's complement int64 (messageHex). "

// vectorSpecs describes the vectors in file order. A raw ECDSA vector
// re-encodes the signature of the DER vector before it, so both show one
// (r, s) pair.
var vectorSpecs = []struct {
	name, description string
	typ               crypto.KeyType
	raw               bool
	encoding          string
}{
	{"rsa2048", messageSteps + "Hash it with SHA-256 (digestHex) and sign with RSASSA-PKCS1-v1_5 " +
		"(Java: Signature \"SHA256withRSA\"; mbedTLS: mbedtls_pk_sign with MBEDTLS_MD_SHA256). " +
		"The signature is as long as the modulus, 256 bytes, and deterministic: signing with this private key " +
		"must give base64Signature exactly.",
		crypto.RSA2048, false, "RSASSA-PKCS1-v1_5, 256 bytes"},
	{"ecdsa-p256-der", messageSteps + "Hash it with SHA-256 (digestHex) and sign with ECDSA on P-256 " +
		"(Java: Signature \"SHA256withECDSA\"). The signature is ASN.1 DER SEQUENCE { INTEGER r, INTEGER s }, " +
		"usually 70 to 72 bytes. ECDSA is randomized: your signature will differ but must verify.",
		crypto.ECDSAP256, false, "ASN.1 DER SEQUENCE { r INTEGER, s INTEGER }"},
	{"ecdsa-p256-raw", messageSteps + "Same key, reading and signature as ecdsa-p256-der, encoded raw: " +
		"r and s as 32-byte unsigned big-endian integers, left-padded with zeros, concatenated into exactly 64 bytes " +
		"(WebCrypto, mbedtls_ecdsa_sign + mbedtls_mpi_write_binary, micro-ecc).",
		crypto.ECDSAP256, true, "raw r||s, 32 + 32 bytes big-endian"},
	{"ecdsa-p384-der", messageSteps + "Hash it with SHA-384 (digestHex) and sign with ECDSA on P-384 " +
		"(Java: Signature \"SHA384withECDSA\"). The signature is ASN.1 DER SEQUENCE { INTEGER r, INTEGER s }, " +
		"usually 102 to 104 bytes. ECDSA is randomized: your signature will differ but must verify.",
		crypto.ECDSAP384, false, "ASN.1 DER SEQUENCE { r INTEGER, s INTEGER }"},
	{"ecdsa-p384-raw", messageSteps + "Same key, reading and signature as ecdsa-p384-der, encoded raw: " +
		"r and s as 48-byte unsigned big-endian integers, left-padded with zeros, concatenated into exactly 96 bytes.",
		crypto.ECDSAP384, true, "raw r||s, 48 + 48 bytes big-endian"},
	{"ed25519", messageSteps + "Sign the 28 message bytes themselves with Ed25519 (RFC 8032; no separate " +
		"digest, no prehash: Java: Signature \"Ed25519\"; libsodium: crypto_sign_detached). The signature is 64 bytes " +
		"and deterministic, so yours must match base64Signature exactly.",
		crypto.Ed25519, false, "Ed25519, 64 bytes"},
}

// ed25519VectorSeed makes the Ed25519 vector reproducible.
var ed25519VectorSeed = sha256.Sum256([]byte("smartmeters ed25519 test vector"))

func TestVectors(t *testing.T) {
	if *update {
		writeVectors(t)
	}
	vectors := readVectors(t)
	if len(vectors) != len(vectorSpecs) {
		t.Fatalf("%s has %d vectors, want %d", vectorsPath, len(vectors), len(vectorSpecs))
	}
	for i, v := range vectors {
		t.Run(v.Name, func(t *testing.T) {
			spec := vectorSpecs[i]
			if v.Name != spec.name || v.KeyType != spec.typ {
				t.Fatalf("vector %d is %s/%s, want %s/%s", i, v.Name, v.KeyType, spec.name, spec.typ)
			}
			if _, err := crypto.ParseKeyType(string(v.KeyType)); err != nil {
				t.Errorf("keyType: %v", err)
			}
			msg := v.Reading.Message()
			if got := hex.EncodeToString(msg[:]); got != v.MessageHex {
				t.Errorf("Message() = %s, want messageHex %s", got, v.MessageHex)
			}
			if got := digestHex(v.DigestAlgorithm, msg[:]); got != v.DigestHex {
				t.Errorf("%s of message = %s, want digestHex %s", v.DigestAlgorithm, got, v.DigestHex)
			}

			der, err := crypto.DecodePublicKey(v.Base64PublicKey)
			if err != nil {
				t.Fatalf("DecodePublicKey: %v", err)
			}
			if got := crypto.FingerprintOf(der).String(); got != v.Fingerprint {
				t.Errorf("FingerprintOf = %s, want fingerprint %s", got, v.Fingerprint)
			}
			pub, err := crypto.ParsePublicKey(v.Base64PublicKey, 2048)
			if err != nil {
				t.Fatalf("ParsePublicKey: %v", err)
			}
			if pub.Algorithm() != string(v.KeyType) || pub.Fingerprint().String() != v.Fingerprint {
				t.Errorf("parsed %s key %s, want %s key %s", pub.Algorithm(), pub.Fingerprint(), v.KeyType, v.Fingerprint)
			}

			sig, err := crypto.DecodeSignature(v.Base64Signature)
			if err != nil {
				t.Fatalf("DecodeSignature: %v", err)
			}
			if err := pub.Verify(v.Reading, sig); err != nil {
				t.Errorf("Verify: %v", err)
			}
			changed := v.Reading
			changed.Timestamp++
			if err := pub.Verify(changed, sig); err == nil {
				t.Errorf("Verify accepted the signature for another reading")
			}
			if spec.raw {
				derSig, _ := crypto.DecodeSignature(vectors[i-1].Base64Signature)
				if want := rawECDSA(t, derSig, ecdsaSize(v.KeyType)); !bytes.Equal(sig, want) {
					t.Errorf("raw signature %x is not the DER signature of %s (%x)", sig, vectors[i-1].Name, want)
				}
			}

			priv, err := crypto.ParsePrivateKeyPEM([]byte(v.PrivateKeyPKCS8PEM))
			if err != nil {
				t.Fatalf("ParsePrivateKeyPEM: %v", err)
			}
			if priv.Type() != v.KeyType || priv.Public().Base64() != v.Base64PublicKey {
				t.Errorf("private key is %s with public key %s, want %s with %s",
					priv.Type(), priv.Public().Base64(), v.KeyType, v.Base64PublicKey)
			}
			if v.KeyType == crypto.RSA2048 || v.KeyType == crypto.Ed25519 { // deterministic schemes
				if got := base64.StdEncoding.EncodeToString(sign(t, priv, v.Reading)); got != v.Base64Signature {
					t.Errorf("%s signature = %s, want base64Signature %s", v.KeyType, got, v.Base64Signature)
				}
			}
		})
	}
}

func digestHex(alg string, msg []byte) string {
	switch alg {
	case "SHA-256":
		h := sha256.Sum256(msg)
		return hex.EncodeToString(h[:])
	case "SHA-384":
		h := sha512.Sum384(msg)
		return hex.EncodeToString(h[:])
	}
	return ""
}

func readVectors(t *testing.T) []vector {
	t.Helper()
	data, err := os.ReadFile(vectorsPath)
	if err != nil {
		t.Fatalf("reading vectors (regenerate with go test -run TestVectors -update): %v", err)
	}
	var vectors []vector
	if err := json.Unmarshal(data, &vectors); err != nil {
		t.Fatalf("parsing %s: %v", vectorsPath, err)
	}
	return vectors
}

// writeVectors regenerates testdata/vectors.json. RSA and ECDSA keys are
// fresh each time; the Ed25519 key comes from a fixed seed.
func writeVectors(t *testing.T) {
	t.Helper()
	var (
		vectors []vector
		key     *crypto.PrivateKey
		sig     []byte
		err     error
	)
	msg := vectorReading.Message()
	for _, spec := range vectorSpecs {
		if spec.raw {
			// The key and the DER signature carry over from the previous vector.
			sig = rawECDSA(t, sig, ecdsaSize(spec.typ))
		} else {
			var random io.Reader // crypto/rand
			if spec.typ == crypto.Ed25519 {
				random = bytes.NewReader(ed25519VectorSeed[:])
			}
			if key, err = crypto.GenerateKey(spec.typ, random); err != nil {
				t.Fatalf("GenerateKey(%s): %v", spec.typ, err)
			}
			sig = sign(t, key, vectorReading)
		}
		pemKey, err := key.MarshalPKCS8PEM()
		if err != nil {
			t.Fatal(err)
		}
		v := vector{
			Name:               spec.name,
			KeyType:            spec.typ,
			Description:        spec.description,
			PrivateKeyPKCS8PEM: string(pemKey),
			Base64PublicKey:    key.Public().Base64(),
			Fingerprint:        key.Public().Fingerprint().String(),
			Reading:            vectorReading,
			MessageHex:         hex.EncodeToString(msg[:]),
			SignatureEncoding:  spec.encoding,
			Base64Signature:    base64.StdEncoding.EncodeToString(sig),
		}
		switch spec.typ {
		case crypto.RSA2048, crypto.ECDSAP256:
			v.DigestAlgorithm = "SHA-256"
		case crypto.ECDSAP384:
			v.DigestAlgorithm = "SHA-384"
		}
		v.DigestHex = digestHex(v.DigestAlgorithm, msg[:])
		vectors = append(vectors, v)
	}
	data, err := json.MarshalIndent(vectors, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(vectorsPath, append(data, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}
