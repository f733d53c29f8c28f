package crypto

import "fmt"

// KeyType names a kind of key that GenerateKey can create and a meter can be
// configured with.
type KeyType string

// The key types GenerateKey accepts. Each is also the Algorithm of the
// public keys it produces.
const (
	RSA2048   KeyType = "rsa2048"    // RSA, 2048-bit modulus, exponent 65537
	ECDSAP256 KeyType = "ecdsa-p256" // ECDSA on NIST P-256
	ECDSAP384 KeyType = "ecdsa-p384" // ECDSA on NIST P-384
	Ed25519   KeyType = "ed25519"    // Ed25519
)

// KeyTypes lists every KeyType that GenerateKey and ParseKeyType accept, in
// the order they are offered to users.
var KeyTypes = []KeyType{RSA2048, ECDSAP256, ECDSAP384, Ed25519}

// ParseKeyType returns the KeyType named exactly s (case-sensitive). Any
// other string yields an error wrapping ErrUnsupportedKey that lists the
// valid names.
func ParseKeyType(s string) (KeyType, error) {
	switch t := KeyType(s); t {
	case RSA2048, ECDSAP256, ECDSAP384, Ed25519:
		return t, nil
	}
	return "", fmt.Errorf("%w: key type %q, want one of %s, %s, %s, %s",
		ErrUnsupportedKey, s, RSA2048, ECDSAP256, ECDSAP384, Ed25519)
}
