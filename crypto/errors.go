package crypto

import "errors"

// Sentinel errors. Every error about an input (a key, a key type name, a
// signature or a fingerprint) wraps one of them with a detail that says what
// was wrong, so callers branch with errors.Is and can show Error() to
// whoever sent the input. Failures of a random source are returned as they
// are.
var (
	// ErrMalformedKey means a key could not be decoded: bad base64, a PEM
	// block of the wrong type or with extra data, truncated or trailing DER,
	// or key material that is not a valid key (such as an ECDSA point that is
	// not on its curve).
	ErrMalformedKey = errors.New("malformed key")

	// ErrUnsupportedKey means a well-formed key of an algorithm, curve or
	// size this package does not accept (DSA, X25519, P-224, P-521, RSA
	// above 8192 bits, ...), or an unknown key type name.
	ErrUnsupportedKey = errors.New("unsupported key")

	// ErrWeakKey means an RSA key that is smaller than the required minimum
	// or whose public exponent is even or below 65537.
	ErrWeakKey = errors.New("weak key")

	// ErrBadSignature means a signature was not accepted for a reading.
	// Verify wraps it in every error it returns.
	ErrBadSignature = errors.New("bad signature")

	// ErrMalformedSignature means a signature whose base64, length or
	// framing is wrong for its algorithm, so it was rejected without any
	// cryptographic check. DecodeSignature returns it for bad base64; Verify returns it
	// together with ErrBadSignature.
	ErrMalformedSignature = errors.New("malformed signature")

	// ErrMalformedFingerprint means a fingerprint string that is not 64
	// hexadecimal digits.
	ErrMalformedFingerprint = errors.New("malformed fingerprint")
)
