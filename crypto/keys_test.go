package crypto_test

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"sync"
	"testing"

	"smartmeters/crypto"
)

// vectorReading is the reading signed in testdata/vectors.json.
var vectorReading = crypto.Reading{WhIn: 1234567, WhOut: 8910, Timestamp: 1764141243123}

type keyID struct {
	typ crypto.KeyType
	n   int
}

var (
	keysMu sync.Mutex
	keys   = map[keyID]*crypto.PrivateKey{}
)

// testKey returns the n-th test key of type typ, generated once per test
// binary because RSA key generation is slow.
func testKey(tb testing.TB, typ crypto.KeyType, n int) *crypto.PrivateKey {
	tb.Helper()
	keysMu.Lock()
	defer keysMu.Unlock()
	id := keyID{typ, n}
	if k, ok := keys[id]; ok {
		return k
	}
	k, err := crypto.GenerateKey(typ, nil)
	if err != nil {
		tb.Fatalf("GenerateKey(%s): %v", typ, err)
	}
	keys[id] = k
	return k
}

// sign signs r with key, failing the test on error.
func sign(tb testing.TB, key *crypto.PrivateKey, r crypto.Reading) []byte {
	tb.Helper()
	sig, err := key.Sign(r)
	if err != nil {
		tb.Fatalf("Sign(%+v) with %s: %v", r, key.Type(), err)
	}
	return sig
}

// rawECDSA converts an ASN.1 DER ECDSA signature into raw r||s with each
// integer padded to size bytes.
func rawECDSA(tb testing.TB, der []byte, size int) []byte {
	tb.Helper()
	var rs struct{ R, S *big.Int }
	if rest, err := asn1.Unmarshal(der, &rs); err != nil || len(rest) != 0 {
		tb.Fatalf("parsing DER ECDSA signature: %v (%d trailing bytes)", err, len(rest))
	}
	raw := make([]byte, 2*size)
	rs.R.FillBytes(raw[:size])
	rs.S.FillBytes(raw[size:])
	return raw
}

// ecdsaSize returns the byte size of one integer of a raw ECDSA signature
// for typ.
func ecdsaSize(typ crypto.KeyType) int {
	if typ == crypto.ECDSAP384 {
		return 48
	}
	return 32
}

// rsaPublicDER returns the DER SubjectPublicKeyInfo of an RSA public key
// with a random odd modulus of exactly bits bits and exponent e. It is not
// a usable key, but it parses, which is all the policy checks need.
func rsaPublicDER(tb testing.TB, bits, e int) []byte {
	tb.Helper()
	b := make([]byte, (bits+7)/8)
	rand.Read(b)
	n := new(big.Int).SetBytes(b)
	for i := bits; i < n.BitLen(); i++ {
		n.SetBit(n, i, 0)
	}
	n.SetBit(n, bits-1, 1)
	n.SetBit(n, 0, 1)
	der, err := x509.MarshalPKIXPublicKey(&rsa.PublicKey{N: n, E: e})
	if err != nil {
		tb.Fatalf("marshaling %d-bit RSA key with e=%d: %v", bits, e, err)
	}
	return der
}

// spkiDER builds a SubjectPublicKeyInfo by hand, for algorithms and curves
// crypto/x509 cannot marshal.
func spkiDER(tb testing.TB, alg asn1.ObjectIdentifier, params any, key []byte) []byte {
	tb.Helper()
	id := pkix.AlgorithmIdentifier{Algorithm: alg}
	if params != nil {
		p, err := asn1.Marshal(params)
		if err != nil {
			tb.Fatalf("marshaling parameters: %v", err)
		}
		id.Parameters = asn1.RawValue{FullBytes: p}
	}
	der, err := asn1.Marshal(struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}{id, asn1.BitString{Bytes: key, BitLength: 8 * len(key)}})
	if err != nil {
		tb.Fatalf("marshaling SubjectPublicKeyInfo: %v", err)
	}
	return der
}

// marshalPKIX returns the DER SubjectPublicKeyInfo of pub.
func marshalPKIX(tb testing.TB, pub any) []byte {
	tb.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		tb.Fatalf("MarshalPKIXPublicKey(%T): %v", pub, err)
	}
	return der
}

// marshalPKCS8PEM returns key as a PEM "PRIVATE KEY" block.
func marshalPKCS8PEM(tb testing.TB, key any) []byte {
	tb.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		tb.Fatalf("MarshalPKCS8PrivateKey(%T): %v", key, err)
	}
	return pemBlock("PRIVATE KEY", der)
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func b64(der []byte) string {
	return base64.StdEncoding.EncodeToString(der)
}
