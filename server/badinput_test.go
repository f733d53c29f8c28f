package server_test

import (
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"smartmeters/crypto"
	"smartmeters/db/dbtest"
	"smartmeters/server"
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

// shiftedDER returns another encoding of the same public key: the
// subjectPublicKey BIT STRING shifted left by n bits, with n unused bits,
// which encoding/asn1 right-aligns back into the key. der's first key byte
// must have n leading zero bits (P-256: 0x04, so n ≤ 5).
func shiftedDER(t *testing.T, der []byte, n int) string {
	t.Helper()
	var s struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(der, &s); err != nil {
		t.Fatal(err)
	}
	b := s.PublicKey.Bytes
	shifted := new(big.Int).Lsh(new(big.Int).SetBytes(b), uint(n)).FillBytes(make([]byte, len(b)))
	s.PublicKey = asn1.BitString{Bytes: shifted, BitLength: 8*len(b) - n}
	alt, err := asn1.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(alt)
}

// TestKeyHasOneEncoding checks that another DER of a registered key, the
// same key under another fingerprint, cannot enrol it again: not as a new
// meter after it was revoked, not as another meter's new key, and not as a
// second meter while it reports.
func TestKeyHasOneEncoding(t *testing.T) {
	for _, b := range dbtest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			ts := newTestServer(t, b, nil)
			stolen, other := newKey(t, "ecdsa-p256"), newKey(t, "ed25519")
			for name, k := range map[string]*crypto.PrivateKey{"stolen": stolen, "other": other} {
				if r := register(t, ts, name, k); r.status != http.StatusCreated {
					t.Fatalf("register %s: %d %s", name, r.status, r.rawBody)
				}
			}
			alt := shiftedDER(t, stolen.Public().DER(), 3)
			wantProblem(t, postJSON(t, ts.admin+"/register", map[string]string{"username": "twin", "base64PublicKey": alt}), http.StatusBadRequest, "invalid-key")

			m, err := ts.store.MeterByFingerprint(t.Context(), stolen.Public().Fingerprint())
			if err != nil {
				t.Fatal(err)
			}
			if r := postJSON(t, fmt.Sprintf("%s/meters/%d/revoke", ts.admin, m.ID), map[string]string{"reason": "stolen"}); r.status != http.StatusOK {
				t.Fatalf("revoke: %d %s", r.status, r.rawBody)
			}
			before := rowCounts(t, ts.db)
			wantProblem(t, postJSON(t, ts.admin+"/register", map[string]string{"username": "reenrolled", "base64PublicKey": alt}), http.StatusBadRequest, "invalid-key")
			o, err := ts.store.MeterByFingerprint(t.Context(), other.Public().Fingerprint())
			if err != nil {
				t.Fatal(err)
			}
			wantProblem(t, postJSON(t, fmt.Sprintf("%s/meters/%d/key", ts.admin, o.ID), map[string]string{"reason": "swap", "base64PublicKey": alt}), http.StatusBadRequest, "invalid-key")

			// A reading signed by the revoked key and sent under the other
			// encoding is no meter's.
			body := signed(t, stolen, crypto.Reading{WhIn: 1, WhOut: 1, Timestamp: now.Add(-time.Minute).UnixMilli()})
			body.Base64PublicKey = alt
			wantProblem(t, postJSON(t, ts.public+"/reportReading", body), http.StatusForbidden, "unknown-key")
			if after := rowCounts(t, ts.db); after != before {
				t.Fatalf("rows (meters, readings) went from %v to %v", before, after)
			}
		})
	}
}

// TestReportKeyBelowPolicy checks that a meter whose key was registered
// under a laxer policy than the server's (a larger --min-rsa-bits since) is
// told so when it reports: 400 invalid-key naming the reason, not the
// false "no meter is registered with this public key".
func TestReportKeyBelowPolicy(t *testing.T) {
	ts := newTestServer(t, dbtest.SQLite(t), nil)
	k := newKey(t, "rsa2048")
	if r := register(t, ts, "old-rsa", k); r.status != http.StatusCreated {
		t.Fatalf("register: %d %s", r.status, r.rawBody)
	}
	strict := newServer(t, testConfig(func(c *server.Config) { c.Ingest.MinRSABits = 3072 }), ts.store)
	pub := httptest.NewServer(checkedPublic(t, strict.PublicHandler()))
	t.Cleanup(pub.Close)
	body := signed(t, k, crypto.Reading{WhIn: 1, WhOut: 1, Timestamp: now.Add(-time.Minute).UnixMilli()})
	for range 2 { // the second answer comes from the key cache
		r := postJSON(t, pub.URL+"/reportReading", body)
		wantProblem(t, r, http.StatusBadRequest, "invalid-key")
		if detail, _ := r.body["detail"].(string); !strings.Contains(detail, "2048 bits, want at least 3072") {
			t.Fatalf("detail %q does not say why the key is refused", detail)
		}
	}
}
