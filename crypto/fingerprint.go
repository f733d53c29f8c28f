package crypto

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
)

// Fingerprint is the identity of a public key: the SHA-256 of its DER
// SubjectPublicKeyInfo. Every wire encoding of one key has one fingerprint.
type Fingerprint [sha256.Size]byte

// FingerprintOf returns the fingerprint of a DER SubjectPublicKeyInfo. It
// does not parse der, so it is cheap enough to compute before a lookup.
func FingerprintOf(der []byte) Fingerprint {
	return sha256.Sum256(der)
}

// String returns f as 64 lowercase hexadecimal digits, the form ParseFingerprint
// reads back.
func (f Fingerprint) String() string {
	return hex.EncodeToString(f[:])
}

// ParseFingerprint parses 64 hexadecimal digits (either case) into a
// Fingerprint. Any other input yields an error wrapping
// ErrMalformedFingerprint.
func ParseFingerprint(s string) (Fingerprint, error) {
	var f Fingerprint
	if len(s) != 2*len(f) {
		return Fingerprint{}, fmt.Errorf("%w: %d characters, want %d hexadecimal digits",
			ErrMalformedFingerprint, len(s), 2*len(f))
	}
	for i := range f {
		hi, ok1 := fromHexDigit(s[2*i])
		lo, ok2 := fromHexDigit(s[2*i+1])
		if !ok1 || !ok2 {
			at := 2 * i
			if ok1 {
				at++
			}
			return Fingerprint{}, fmt.Errorf("%w: invalid hexadecimal digit %q at offset %d",
				ErrMalformedFingerprint, s[at], at)
		}
		f[i] = hi<<4 | lo
	}
	return f, nil
}

func fromHexDigit(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
