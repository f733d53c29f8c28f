// Package crypto owns everything a meter and the server must agree on to
// trust a reading: the reading type, its 28-byte signed encoding, public key
// parsing and fingerprints, and signing and verification for every supported
// algorithm.
//
// The signed message is exactly 28 bytes:
//
//	offset  size  field
//	0       4     ASCII "SMR1" (format tag and version)
//	4       8     whIn, big-endian signed 64-bit
//	12      8     whOut, big-endian signed 64-bit
//	20      8     timestamp in Unix milliseconds, big-endian signed 64-bit
//
// Signatures by algorithm:
//
//   - RSA (2048 bits or more by default, at most 8192, public exponent odd
//     and at least 65537): RSASSA-PKCS1-v1_5 with SHA-256 (Java's
//     SHA256withRSA).
//   - ECDSA P-256: SHA-256; P-384: SHA-384. ASN.1 DER (Java's SHA256withECDSA)
//     or raw r||s of exactly 64 or 96 bytes (WebCrypto).
//   - Ed25519: over the 28 bytes themselves.
//
// A public key travels as base64 (standard alphabet, padded or not, on one
// line) of its DER SubjectPublicKeyInfo, or as a PEM "PUBLIC KEY" block. Its
// identity is the SHA-256 fingerprint of the DER form, so every encoding of
// one key names one meter. Private keys, which only meters and the simulator
// hold, are PEM "PRIVATE KEY" blocks in PKCS#8.
//
// Per request the server calls DecodePublicKey and FingerprintOf to find the
// meter, then Verify with the PublicKey it parsed once at registration.
// DecodePublicKey allocates only the DER it returns, and Verify allocates
// nothing beyond what crypto/rsa, crypto/ecdsa and crypto/ed25519 allocate
// themselves, except one small buffer for a raw ECDSA signature.
// testdata/vectors.json holds a worked, verified example for each algorithm,
// written for firmware authors.
//
// Every error about an input (a key, a key type name, a signature or a
// fingerprint) wraps one of the sentinel errors ErrMalformedKey,
// ErrUnsupportedKey, ErrWeakKey, ErrBadSignature, ErrMalformedSignature or
// ErrMalformedFingerprint, and says precisely what was wrong.
package crypto
