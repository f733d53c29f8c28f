package crypto

import (
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Object identifiers of the key algorithms and curves this package accepts,
// and of the common ones it refuses, so a refusal can name what it saw.
var (
	oidRSA     = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}
	oidECDSA   = asn1.ObjectIdentifier{1, 2, 840, 10045, 2, 1}
	oidEd25519 = asn1.ObjectIdentifier{1, 3, 101, 112}

	oidP256 = asn1.ObjectIdentifier{1, 2, 840, 10045, 3, 1, 7}
	oidP384 = asn1.ObjectIdentifier{1, 3, 132, 0, 34}
)

var refusedAlgorithms = []struct {
	oid  asn1.ObjectIdentifier
	name string
}{
	{asn1.ObjectIdentifier{1, 2, 840, 10040, 4, 1}, "DSA"},
	{asn1.ObjectIdentifier{1, 2, 840, 10046, 2, 1}, "Diffie-Hellman"},
	{asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 10}, "RSASSA-PSS"},
	{asn1.ObjectIdentifier{1, 3, 132, 1, 12}, "ECDH"},
	{asn1.ObjectIdentifier{1, 3, 101, 110}, "X25519"},
	{asn1.ObjectIdentifier{1, 3, 101, 111}, "X448"},
	{asn1.ObjectIdentifier{1, 3, 101, 113}, "Ed448"},
}

var refusedCurves = []struct {
	oid  asn1.ObjectIdentifier
	name string
}{
	{asn1.ObjectIdentifier{1, 3, 132, 0, 33}, "P-224"},
	{asn1.ObjectIdentifier{1, 3, 132, 0, 35}, "P-521"},
	{asn1.ObjectIdentifier{1, 3, 132, 0, 10}, "secp256k1"},
	{asn1.ObjectIdentifier{1, 3, 36, 3, 3, 2, 8, 1, 1, 7}, "brainpoolP256r1"},
	{asn1.ObjectIdentifier{1, 3, 36, 3, 3, 2, 8, 1, 1, 11}, "brainpoolP384r1"},
	{asn1.ObjectIdentifier{1, 3, 36, 3, 3, 2, 8, 1, 1, 13}, "brainpoolP512r1"},
}

// subjectPublicKeyInfo is the outer structure of a DER public key
// (RFC 5280, section 4.1).
type subjectPublicKeyInfo struct {
	Algorithm pkix.AlgorithmIdentifier
	PublicKey asn1.BitString
}

// pkcs8 is the outer structure of a DER private key (RFC 5208); optional
// trailing attributes are ignored.
type pkcs8 struct {
	Version    int
	Algorithm  pkix.AlgorithmIdentifier
	PrivateKey []byte
}

// checkSPKI checks that der is exactly one SubjectPublicKeyInfo of an
// accepted algorithm. crypto/x509 reports unknown algorithms and curves with
// the same kind of error as broken encodings; this check runs first so that
// the two are told apart as ErrUnsupportedKey and ErrMalformedKey.
func checkSPKI(der []byte) error {
	var spki subjectPublicKeyInfo
	rest, err := asn1.Unmarshal(der, &spki)
	if err != nil {
		return fmt.Errorf("%w: invalid DER SubjectPublicKeyInfo: %s", ErrMalformedKey, describeASN1Error(err))
	}
	if len(rest) != 0 {
		return fmt.Errorf("%w: %s of trailing data after the DER SubjectPublicKeyInfo",
			ErrMalformedKey, byteCount(len(rest)))
	}
	return checkAlgorithm(spki.Algorithm, true)
}

// checkPKCS8 is checkSPKI for a DER PKCS#8 private key.
func checkPKCS8(der []byte) error {
	var key pkcs8
	rest, err := asn1.Unmarshal(der, &key)
	if err != nil {
		return fmt.Errorf("%w: invalid DER PKCS#8 private key: %s", ErrMalformedKey, describeASN1Error(err))
	}
	if len(rest) != 0 {
		return fmt.Errorf("%w: %s of trailing data after the DER PKCS#8 private key",
			ErrMalformedKey, byteCount(len(rest)))
	}
	// PKCS#8 may leave the curve to the inner ECPrivateKey; the curve of
	// the parsed key is checked afterwards in any case.
	return checkAlgorithm(key.Algorithm, false)
}

// checkAlgorithm accepts RSA, Ed25519 and ECDSA on P-256 or P-384. With
// needCurve, an ECDSA key must name its curve in the parameters.
func checkAlgorithm(alg pkix.AlgorithmIdentifier, needCurve bool) error {
	switch {
	case alg.Algorithm.Equal(oidRSA), alg.Algorithm.Equal(oidEd25519):
		return nil
	case alg.Algorithm.Equal(oidECDSA):
		return checkCurve(alg.Parameters, needCurve)
	}
	name := alg.Algorithm.String()
	for _, a := range refusedAlgorithms {
		if alg.Algorithm.Equal(a.oid) {
			name = a.name + " (" + name + ")"
			break
		}
	}
	return fmt.Errorf("%w: key algorithm %s; want RSA, ECDSA P-256 or P-384, or Ed25519",
		ErrUnsupportedKey, name)
}

func checkCurve(params asn1.RawValue, needCurve bool) error {
	if len(params.FullBytes) == 0 {
		if needCurve {
			return fmt.Errorf("%w: ECDSA key without curve parameters", ErrMalformedKey)
		}
		return nil
	}
	var curve asn1.ObjectIdentifier
	rest, err := asn1.Unmarshal(params.FullBytes, &curve)
	if err != nil || len(rest) != 0 {
		return fmt.Errorf("%w: ECDSA key without a named curve; want P-256 or P-384", ErrUnsupportedKey)
	}
	if curve.Equal(oidP256) || curve.Equal(oidP384) {
		return nil
	}
	name := curve.String()
	for _, c := range refusedCurves {
		if curve.Equal(c.oid) {
			name = c.name + " (" + name + ")"
			break
		}
	}
	return fmt.Errorf("%w: ECDSA curve %s; want P-256 or P-384", ErrUnsupportedKey, name)
}

// describeASN1Error shortens an encoding/asn1 error for a user: structural
// errors embed a dump of Go struct tags that only helps a Go programmer.
func describeASN1Error(err error) string {
	var syntax asn1.SyntaxError
	if errors.As(err, &syntax) {
		return syntax.Msg
	}
	var structural asn1.StructuralError
	if errors.As(err, &structural) {
		return "unexpected ASN.1 structure"
	}
	return err.Error()
}

// describeX509Error drops the "x509: " prefix, which names a Go package
// rather than anything the sender of a key would recognise.
func describeX509Error(err error) string {
	return strings.TrimPrefix(err.Error(), "x509: ")
}

func byteCount(n int) string {
	if n == 1 {
		return "1 byte"
	}
	return strconv.Itoa(n) + " bytes"
}
