package crypto

import (
	"bytes"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
)

const (
	pemBegin          = "-----BEGIN"
	pemPublicKeyType  = "PUBLIC KEY"
	pemPrivateKeyType = "PRIVATE KEY"
)

// DecodePublicKey turns the wire form of a public key into its DER
// SubjectPublicKeyInfo. The wire form is either standard-alphabet base64 of
// the DER, padded or unpadded and on one line, or a single PEM "PUBLIC KEY"
// block; surrounding whitespace is ignored. It does not parse the key, so
// it is cheap enough to run on every request before a lookup by
// FingerprintOf. Errors wrap ErrMalformedKey.
func DecodePublicKey(s string) (der []byte, err error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, fmt.Errorf("%w: empty public key", ErrMalformedKey)
	}
	if strings.HasPrefix(s, pemBegin) {
		return decodePEM([]byte(s), pemPublicKeyType)
	}
	der, err = decodeBase64(s)
	if err != nil {
		return nil, fmt.Errorf("%w: public key: %s", ErrMalformedKey, err)
	}
	return der, nil
}

// DecodeSignature decodes a signature sent as standard-alphabet base64,
// padded or unpadded and on one line; surrounding whitespace is ignored.
// Errors wrap ErrMalformedSignature.
func DecodeSignature(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, fmt.Errorf("%w: empty signature", ErrMalformedSignature)
	}
	sig, err := decodeBase64(s)
	if err != nil {
		return nil, fmt.Errorf("%w: %s", ErrMalformedSignature, err)
	}
	return sig, nil
}

// decodeBase64 decodes standard-alphabet base64, choosing the padded or the
// unpadded decoder by length so that both forms cost a single pass. Line
// breaks are refused because encoding/base64 would silently skip them and
// they would defeat that choice.
func decodeBase64(s string) ([]byte, error) {
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		return nil, fmt.Errorf("line break at offset %d inside base64; send it on one line", i)
	}
	enc := base64.StdEncoding
	if len(s)%4 != 0 {
		enc = base64.RawStdEncoding
	}
	b, err := enc.DecodeString(s)
	if err == nil {
		return b, nil
	}
	if i := strings.IndexAny(s, "-_"); i >= 0 {
		return nil, fmt.Errorf("URL-safe base64 character %q at offset %d; use the standard alphabet (+ and /)", s[i], i)
	}
	var at base64.CorruptInputError
	if errors.As(err, &at) {
		if len(s)%4 != 0 && strings.HasSuffix(s, "=") {
			return nil, fmt.Errorf("invalid base64 padding: %d characters ending in '='", len(s))
		}
		return nil, fmt.Errorf("invalid base64 at offset %d", int64(at))
	}
	return nil, fmt.Errorf("invalid base64: %w", err)
}

// decodePEM returns the bytes of the single PEM block in data, which must be
// of type wantType and carry no headers. Only whitespace may surround the
// block. Errors wrap ErrMalformedKey.
func decodePEM(data []byte, wantType string) ([]byte, error) {
	data = bytes.TrimSpace(data)
	if !bytes.HasPrefix(data, []byte(pemBegin)) {
		return nil, fmt.Errorf("%w: not a PEM %q block", ErrMalformedKey, wantType)
	}
	block, rest := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("%w: invalid PEM %q block", ErrMalformedKey, wantType)
	}
	if block.Type != wantType {
		return nil, fmt.Errorf("%w: PEM block of type %q, want %q", ErrMalformedKey, block.Type, wantType)
	}
	if len(block.Headers) != 0 {
		return nil, fmt.Errorf("%w: PEM %q block has headers; encrypted or annotated keys are not accepted",
			ErrMalformedKey, wantType)
	}
	if extra := bytes.TrimSpace(rest); len(extra) != 0 {
		return nil, fmt.Errorf("%w: %s of data after the PEM %q block", ErrMalformedKey, byteCount(len(extra)), wantType)
	}
	return block.Bytes, nil
}
