package server_test

import (
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"sync"
	"testing"

	"github.com/jmoiron/sqlx"
)

// badKeySet holds public keys, base64 of DER, that must all be refused.
type badKeySet struct {
	truncated, trailing  string // an Ed25519 key cut short, or followed by garbage
	offCurve, p521       string // ECDSA: a point not on P-256, a curve not accepted
	rsaE3, rsaEven       string // RSA-2048 with exponent 3, or an even one
	ed25519Short, x25519 string // an Ed25519 key of 31 bytes; an X25519 key
}

var (
	badKeysOnce sync.Once
	badKeysVal  badKeySet
)

// badKeys returns the bad keys, made once per run.
func badKeys(t *testing.T) badKeySet {
	t.Helper()
	badKeysOnce.Do(func() {
		b64 := base64.StdEncoding.EncodeToString
		der := func(pub any) []byte {
			d, err := x509.MarshalPKIXPublicKey(pub)
			if err != nil {
				panic(err)
			}
			return d
		}
		ed := newKey(t, "ed25519").Public().DER()
		badKeysVal.truncated = b64(ed[:len(ed)-5])
		badKeysVal.trailing = b64(append(append([]byte{}, ed...), 0, 1))

		p256, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			panic(err)
		}
		off := der(&p256.PublicKey)
		off[len(off)-1] ^= 0x01 // y no longer matches x
		badKeysVal.offCurve = b64(off)
		p521, err := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
		if err != nil {
			panic(err)
		}
		badKeysVal.p521 = b64(der(&p521.PublicKey))

		rk, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		badKeysVal.rsaE3 = b64(der(&rsa.PublicKey{N: rk.N, E: 3}))
		badKeysVal.rsaEven = b64(der(&rsa.PublicKey{N: rk.N, E: 65538}))

		// SubjectPublicKeyInfo{id-Ed25519, BIT STRING of 31 bytes}.
		short := append([]byte{0x30, 0x29, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x20, 0x00}, make([]byte, 31)...)
		badKeysVal.ed25519Short = b64(short)
		xk, err := ecdh.X25519().GenerateKey(rand.Reader)
		if err != nil {
			panic(err)
		}
		badKeysVal.x25519 = b64(der(xk.PublicKey()))
	})
	return badKeysVal
}

// rowCounts returns how many meters and readings db holds.
func rowCounts(t *testing.T, db *sqlx.DB) [2]int64 {
	t.Helper()
	var m int64
	if err := db.GetContext(t.Context(), &m, `SELECT count(*) FROM meters`); err != nil {
		t.Fatal(err)
	}
	return [2]int64{m, countReadings(t, db)}
}

// trailingGarbage returns base64 b64 with a zero byte appended to what it
// encodes.
func trailingGarbage(t *testing.T, b64 string) string {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(append(raw, 0))
}

// resized returns base64 b64 with what it encodes cut or zero-padded to n
// bytes.
func resized(t *testing.T, b64 string, n int) string {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]byte, n)
	copy(out, raw)
	return base64.StdEncoding.EncodeToString(out)
}
