package crypto

import (
	gocrypto "crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
)

// Failures of a well-formed signature are built once: Verify runs per
// request, and rejecting a forged reading should cost no allocation.
var (
	errRSAMismatch     = fmt.Errorf("%w: RSA PKCS#1 v1.5 SHA-256 signature does not match the reading", ErrBadSignature)
	errECDSAMismatch   = fmt.Errorf("%w: ECDSA signature does not match the reading", ErrBadSignature)
	errEd25519Mismatch = fmt.Errorf("%w: Ed25519 signature does not match the reading", ErrBadSignature)
)

// maxECDSADERSize is the longest ASN.1 DER ECDSA signature on P-384:
// SEQUENCE { INTEGER r, INTEGER s }, each integer 48 bytes plus a sign byte.
const maxECDSADERSize = 2 + 2*(2+48+1)

// Verify checks that sig is k's signature of r.Message() and returns nil if
// it is. Otherwise the error wraps ErrBadSignature and, if sig has the
// wrong length or framing for k's algorithm, also ErrMalformedSignature.
//
// RSA signatures are RSASSA-PKCS1-v1_5 with SHA-256 and exactly as long as
// the modulus. ECDSA signatures use SHA-256 on P-256 and SHA-384 on P-384
// and are either raw r||s, exactly 64 or 96 bytes, or ASN.1 DER; a
// signature of exactly the raw length is read as raw first and as DER only
// if that fails. Ed25519 signatures are 64 bytes over the message itself.
func (k *PublicKey) Verify(r Reading, sig []byte) error {
	msg := r.Message()
	return k.verify(msg[:], sig)
}

// verify checks sig over msg as Verify describes.
func (k *PublicKey) verify(msg, sig []byte) error {
	switch k.kind {
	case kindRSA:
		if len(sig) != k.sigSize {
			return malformedSignature("RSA signature of %d bytes, want %d", len(sig), k.sigSize)
		}
		h := sha256.Sum256(msg)
		if rsa.VerifyPKCS1v15(k.rsa, gocrypto.SHA256, h[:], sig) != nil {
			return errRSAMismatch
		}
		return nil
	case kindECDSAP256:
		h := sha256.Sum256(msg)
		return k.verifyECDSA(h[:], sig)
	case kindECDSAP384:
		h := sha512.Sum384(msg)
		return k.verifyECDSA(h[:], sig)
	case kindEd25519:
		if len(sig) != ed25519.SignatureSize {
			return malformedSignature("Ed25519 signature of %d bytes, want %d", len(sig), ed25519.SignatureSize)
		}
		if !ed25519.Verify(k.ed25519, msg, sig) {
			return errEd25519Mismatch
		}
		return nil
	}
	return fmt.Errorf("%w: PublicKey was not made by ParsePublicKey or ParsePublicKeyDER", ErrBadSignature)
}

func (k *PublicKey) verifyECDSA(hash, sig []byte) error {
	if len(sig) == k.sigSize {
		// buf escapes into ecdsa.VerifyASN1: one small allocation, next to
		// the ten crypto/ecdsa makes to verify.
		var buf [maxECDSADERSize]byte
		half := k.sigSize / 2
		if ecdsa.VerifyASN1(k.ecdsa, hash, rawToDER(buf[:0], sig[:half], sig[half:])) {
			return nil
		}
		// A DER signature can, rarely, be exactly as long as a raw one.
		if !isDERFramed(sig, k.sigSize) {
			return errECDSAMismatch
		}
	}
	if !isDERFramed(sig, k.sigSize) {
		return malformedSignature("ECDSA signature of %d bytes is neither raw r||s of %d bytes nor ASN.1 DER",
			len(sig), k.sigSize)
	}
	if !ecdsa.VerifyASN1(k.ecdsa, hash, sig) {
		return errECDSAMismatch
	}
	return nil
}

// isDERFramed reports whether sig is framed as a DER SEQUENCE that could
// hold an ECDSA signature whose raw form is rawSize bytes. The integers
// inside are parsed by ecdsa.VerifyASN1.
func isDERFramed(sig []byte, rawSize int) bool {
	maxLen := 2 + 2*(2+rawSize/2+1) // always below 128, so the length is one byte
	return len(sig) >= 8 && len(sig) <= maxLen && sig[0] == 0x30 && int(sig[1]) == len(sig)-2
}

// rawToDER appends the ASN.1 DER form of the ECDSA signature (r, s), given
// as unsigned big-endian integers of at most 48 bytes, to dst.
func rawToDER(dst, r, s []byte) []byte {
	start := len(dst)
	dst = append(dst, 0x30, 0)
	dst = appendDERInteger(dst, r)
	dst = appendDERInteger(dst, s)
	dst[start+1] = byte(len(dst) - start - 2)
	return dst
}

// appendDERInteger appends the minimal DER INTEGER encoding of the
// unsigned big-endian integer v.
func appendDERInteger(dst, v []byte) []byte {
	for len(v) > 1 && v[0] == 0 {
		v = v[1:]
	}
	if v[0]&0x80 != 0 {
		dst = append(dst, 0x02, byte(len(v)+1), 0)
	} else {
		dst = append(dst, 0x02, byte(len(v)))
	}
	return append(dst, v...)
}

func malformedSignature(format string, args ...any) error {
	return fmt.Errorf("%w: %w: "+format, append([]any{ErrBadSignature, ErrMalformedSignature}, args...)...)
}
