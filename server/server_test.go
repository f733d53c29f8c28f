package server_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"smartmeters/crypto"
	"smartmeters/db/dbtest"
	"smartmeters/server"
	"smartmeters/store"
)

// now is the pinned server clock of every test.
var now = time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC)

type testServer struct {
	public, admin string
	store         *store.Store
	db            *sqlx.DB // the store's database, for counting rows
}

// newTestServer serves a fresh migrated database of backend b on two
// httptest listeners, with the default configuration changed by set (if
// not nil) and the clock pinned to now.
func newTestServer(t *testing.T, b dbtest.Backend, set func(*server.Config)) testServer {
	t.Helper()
	conn := b.OpenMigrated(t)
	st := store.New(conn)
	srv := newServer(t, testConfig(set), st)
	pub := httptest.NewServer(checkedPublic(t, srv.PublicHandler()))
	t.Cleanup(pub.Close)
	adm := httptest.NewServer(checkedAdmin(t, srv.AdminHandler()))
	t.Cleanup(adm.Close)
	return testServer{public: pub.URL, admin: adm.URL, store: st, db: conn}
}

// testConfig returns the default configuration for b's store, with the
// clock pinned to now, changed by set if it is not nil.
func testConfig(set func(*server.Config)) server.Config {
	cfg := server.DefaultConfig()
	cfg.Now = func() time.Time { return now }
	if set != nil {
		set(&cfg)
	}
	return cfg
}

// newServer returns a server of cfg over st, closed when the test ends
// (after the listeners a test starts later have closed).
func newServer(t testing.TB, cfg server.Config, st *store.Store) *server.Server {
	t.Helper()
	return newServerOver(t, cfg, server.StoresOf(st))
}

// newServerOver is newServer over stores, some of which a test may fake.
func newServerOver(t testing.TB, cfg server.Config, stores server.Stores) *server.Server {
	t.Helper()
	srv, err := server.New(cfg, stores, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return srv
}

// countReadings returns how many readings db holds.
func countReadings(t *testing.T, db *sqlx.DB) int64 {
	t.Helper()
	var n int64
	if err := db.GetContext(t.Context(), &n, `SELECT count(*) FROM readings`); err != nil {
		t.Fatal(err)
	}
	return n
}

var (
	keysOnce sync.Once
	keys     map[crypto.KeyType]*crypto.PrivateKey
)

// testKeys returns one key per supported type, generated once per run.
func testKeys(t *testing.T) map[crypto.KeyType]*crypto.PrivateKey {
	t.Helper()
	keysOnce.Do(func() {
		keys = map[crypto.KeyType]*crypto.PrivateKey{}
		for _, kt := range crypto.KeyTypes {
			k, err := crypto.GenerateKey(kt, rand.Reader)
			if err != nil {
				panic(err)
			}
			keys[kt] = k
		}
	})
	return keys
}

func newKey(t *testing.T, kt crypto.KeyType) *crypto.PrivateKey {
	t.Helper()
	k, err := crypto.GenerateKey(kt, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

type response struct {
	status  int
	ctype   string
	header  http.Header
	body    map[string]any
	rawBody string
}

func post(t *testing.T, url, contentType, body string) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return do(t, req)
}

func do(t *testing.T, req *http.Request) response {
	t.Helper()
	r, err := tryDo(req)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// tryDo is do for goroutines other than the test's, which must not call
// t.Fatal: it returns what went wrong instead.
func tryDo(req *http.Request) (response, error) {
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return response{}, err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		return response{}, err
	}
	r := response{status: res.StatusCode, ctype: res.Header.Get("Content-Type"), header: res.Header, rawBody: string(raw)}
	_ = json.Unmarshal(raw, &r.body)
	return r, nil
}

func postJSON(t *testing.T, url string, v any) response {
	t.Helper()
	r, err := tryPostJSON(url, v)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// tryPostJSON is postJSON for goroutines other than the test's.
func tryPostJSON(url string, v any) (response, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return response{}, err
	}
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		return response{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	return tryDo(req)
}

// wantProblem fails unless r is a problem+json response with the status and
// the problem type slug.
func wantProblem(t *testing.T, r response, status int, slug string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %s", r.status, status, r.rawBody)
	}
	if r.ctype != "application/problem+json" {
		t.Fatalf("Content-Type %q, want application/problem+json; body %s", r.ctype, r.rawBody)
	}
	if got := r.body["type"]; got != "urn:smartmeters:problem:"+slug {
		t.Fatalf("problem type %v, want %s; body %s", got, slug, r.rawBody)
	}
	if r.body["title"] == "" || r.body["status"] != float64(status) || r.body["detail"] == "" {
		t.Fatalf("problem lacks title, status or detail: %s", r.rawBody)
	}
}

func register(t *testing.T, ts testServer, username string, k *crypto.PrivateKey) response {
	t.Helper()
	return postJSON(t, ts.admin+"/register", map[string]string{
		"username":        username,
		"base64PublicKey": k.Public().Base64(),
	})
}

type reportBody struct {
	Base64PublicKey string         `json:"base64PublicKey"`
	Base64Signature string         `json:"base64Signature"`
	Reading         crypto.Reading `json:"reading"`
}

func signed(t *testing.T, k *crypto.PrivateKey, r crypto.Reading) reportBody {
	t.Helper()
	b, err := trySigned(k, r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// trySigned is signed for goroutines other than the test's.
func trySigned(k *crypto.PrivateKey, r crypto.Reading) (reportBody, error) {
	sig, err := k.Sign(r)
	if err != nil {
		return reportBody{}, err
	}
	return reportBody{k.Public().Base64(), base64.StdEncoding.EncodeToString(sig), r}, nil
}

func TestRegister(t *testing.T) {
	for _, b := range dbtest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			ts := newTestServer(t, b, nil)
			for kt, k := range testKeys(t) {
				t.Run(string(kt), func(t *testing.T) {
					r := register(t, ts, "meter-"+string(kt), k)
					if r.status != http.StatusCreated {
						t.Fatalf("status %d: %s", r.status, r.rawBody)
					}
					if r.body["id"] == nil || r.body["username"] != "meter-"+string(kt) ||
						r.body["algorithm"] != k.Public().Algorithm() || r.body["fingerprint"] != k.Public().Fingerprint().String() {
						t.Fatalf("body %s", r.rawBody)
					}
				})
			}
			t.Run("PEMAndUnpadded", func(t *testing.T) {
				k := newKey(t, "ecdsa-p256")
				pemKey := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: k.Public().DER()}))
				r := postJSON(t, ts.admin+"/register", map[string]string{"username": "pem", "base64PublicKey": pemKey})
				if r.status != http.StatusCreated {
					t.Fatalf("PEM key: status %d: %s", r.status, r.rawBody)
				}
				// The same key unpadded is the same identity.
				unpadded := base64.RawStdEncoding.EncodeToString(k.Public().DER())
				r = postJSON(t, ts.admin+"/register", map[string]string{"username": "unpadded", "base64PublicKey": unpadded})
				wantProblem(t, r, http.StatusConflict, "key-taken")
			})
			t.Run("ErrUsernameTaken", func(t *testing.T) {
				r := register(t, ts, "meter-ed25519", newKey(t, "ed25519"))
				wantProblem(t, r, http.StatusConflict, "username-taken")
			})
			t.Run("ErrKeyTaken", func(t *testing.T) {
				r := register(t, ts, "someone-else", testKeys(t)["ed25519"])
				wantProblem(t, r, http.StatusConflict, "key-taken")
			})
			t.Run("NotOnPublicListener", func(t *testing.T) {
				r := postJSON(t, ts.public+"/register", map[string]string{"username": "x", "base64PublicKey": "x"})
				wantProblem(t, r, http.StatusNotFound, "not-found")
				if want := "POST /register is on the admin listener, not this one"; r.body["detail"] != want {
					t.Errorf("detail %q, want %q", r.body["detail"], want)
				}
			})
		})
	}
}

func TestRegisterBadInput(t *testing.T) {
	ts := newTestServer(t, dbtest.SQLite(t), nil)
	key := newKey(t, "ed25519").Public().Base64()
	rsa1024 := rsaKeyBase64(t, 1024)
	bk := badKeys(t)
	reg := func(k string) string { return `{"username":"a","base64PublicKey":"` + k + `"}` }
	tests := []struct {
		name, contentType, body string
		status                  int
		slug                    string
	}{
		{"EmptyUsername", "application/json", `{"username":"","base64PublicKey":"` + key + `"}`, 400, "invalid-field"},
		{"LongUsername", "application/json", `{"username":"` + strings.Repeat("a", 65) + `","base64PublicKey":"` + key + `"}`, 400, "invalid-field"},
		{"UsernameSpace", "application/json", `{"username":"a b","base64PublicKey":"` + key + `"}`, 400, "invalid-field"},
		{"UsernameUnicode", "application/json", `{"username":"zoë","base64PublicKey":"` + key + `"}`, 400, "invalid-field"},
		{"MissingKey", "application/json", `{"username":"a"}`, 400, "invalid-field"},
		{"BadBase64", "application/json", `{"username":"a","base64PublicKey":"not base64!"}`, 400, "invalid-key"},
		{"NotAKey", "application/json", `{"username":"a","base64PublicKey":"aGVsbG8="}`, 400, "invalid-key"},
		{"WeakRSA", "application/json", `{"username":"a","base64PublicKey":"` + rsa1024 + `"}`, 400, "invalid-key"},
		{"UnknownField", "application/json", `{"username":"a","base64PublicKey":"` + key + `","extra":1}`, 400, "malformed-request"},
		{"NotJSON", "application/json", `{"username":`, 400, "malformed-request"},
		{"Array", "application/json", `[]`, 400, "malformed-request"},
		{"Empty", "application/json", ``, 400, "malformed-request"},
		{"TrailingData", "application/json", `{"username":"a","base64PublicKey":"` + key + `"} {}`, 400, "malformed-request"},
		{"WrongContentType", "text/plain", `{"username":"a","base64PublicKey":"` + key + `"}`, 415, "unsupported-media-type"},
		{"NoContentType", "", `{"username":"a","base64PublicKey":"` + key + `"}`, 415, "unsupported-media-type"},
		{"HugeBody", "application/json", `{"username":"` + strings.Repeat("a", 100<<10) + `"}`, 413, "body-too-large"},
		{"NullUsername", "application/json", `{"username":null,"base64PublicKey":"` + key + `"}`, 400, "invalid-field"},
		{"NullKey", "application/json", `{"username":"a","base64PublicKey":null}`, 400, "invalid-field"},
		{"UsernameNumber", "application/json", `{"username":5,"base64PublicKey":"` + key + `"}`, 400, "malformed-request"},
		{"KeyObject", "application/json", `{"username":"a","base64PublicKey":{}}`, 400, "malformed-request"},
		{"DuplicateUsername", "application/json", `{"username":"a","base64PublicKey":"` + key + `","username":"b"}`, 400, "malformed-request"},
		{"DuplicateKeyOtherCase", "application/json", `{"username":"a","base64PublicKey":"` + key + `","BASE64PUBLICKEY":"` + key + `"}`, 400, "malformed-request"},
		{"TruncatedDER", "application/json", reg(bk.truncated), 400, "invalid-key"},
		{"TrailingGarbageDER", "application/json", reg(bk.trailing), 400, "invalid-key"},
		{"ECDSAOffCurve", "application/json", reg(bk.offCurve), 400, "invalid-key"},
		{"ECDSAUnsupportedCurve", "application/json", reg(bk.p521), 400, "invalid-key"},
		{"RSATinyExponent", "application/json", reg(bk.rsaE3), 400, "invalid-key"},
		{"RSAEvenExponent", "application/json", reg(bk.rsaEven), 400, "invalid-key"},
		{"Ed25519ShortKey", "application/json", reg(bk.ed25519Short), 400, "invalid-key"},
		{"UnsupportedAlgorithm", "application/json", reg(bk.x25519), 400, "invalid-key"},
		{"KeyWithWhitespace", "application/json", reg("MCowBQYDK2Vw AyEArVYZ1T/lVNOuvB2gTOjg/mWJhZxZzIEDK2/jTPInjVM="), 400, "invalid-key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := rowCounts(t, ts.db)
			wantProblem(t, post(t, ts.admin+"/register", tt.contentType, tt.body), tt.status, tt.slug)
			if after := rowCounts(t, ts.db); after != before {
				t.Fatalf("rows (meters, readings) went from %v to %v", before, after)
			}
		})
	}
}

func TestAdminAllowlist(t *testing.T) {
	ts := newTestServer(t, dbtest.SQLite(t), func(c *server.Config) {
		c.AdminAllow = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	})
	req, err := http.NewRequest(http.MethodPost, ts.admin+"/register", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	// A forwarded-for header naming an allowed address changes nothing.
	req.Header.Set("X-Forwarded-For", "10.1.2.3")
	req.Header.Set("X-Real-Ip", "10.1.2.3")
	wantProblem(t, do(t, req), http.StatusForbidden, "admin-forbidden")
}

func TestReportReading(t *testing.T) {
	for _, b := range dbtest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			ts := newTestServer(t, b, nil)
			for kt, k := range testKeys(t) {
				if r := register(t, ts, "m-"+string(kt), k); r.status != http.StatusCreated {
					t.Fatalf("register %s: %s", kt, r.rawBody)
				}
			}
			ts0 := now.Add(-time.Minute).UnixMilli()
			for kt, k := range testKeys(t) {
				t.Run(string(kt), func(t *testing.T) {
					body := signed(t, k, crypto.Reading{WhIn: 1234567, WhOut: 8910, Timestamp: ts0})
					r := postJSON(t, ts.public+"/reportReading", body)
					if r.status != http.StatusCreated || r.body["status"] != "stored" {
						t.Fatalf("first report: %d %s", r.status, r.rawBody)
					}
					// A resend is harmless, even re-signed (ECDSA signatures differ each time).
					r = postJSON(t, ts.public+"/reportReading", signed(t, k, body.Reading))
					if r.status != http.StatusOK || r.body["status"] != "duplicate" {
						t.Fatalf("resend: %d %s", r.status, r.rawBody)
					}
					changed := signed(t, k, crypto.Reading{WhIn: 1234568, WhOut: 8910, Timestamp: ts0})
					wantProblem(t, postJSON(t, ts.public+"/reportReading", changed), http.StatusConflict, "reading-conflict")
				})
			}
			t.Run("ErrUnknownKey", func(t *testing.T) {
				body := signed(t, newKey(t, "ed25519"), crypto.Reading{WhIn: 1, WhOut: 1, Timestamp: ts0})
				wantProblem(t, postJSON(t, ts.public+"/reportReading", body), http.StatusForbidden, "unknown-key")
			})
			t.Run("ErrBadSignature", func(t *testing.T) {
				body := signed(t, testKeys(t)["ed25519"], crypto.Reading{WhIn: 1, WhOut: 1, Timestamp: ts0 + 1})
				body.Reading.WhIn++ // the signature no longer matches
				wantProblem(t, postJSON(t, ts.public+"/reportReading", body), http.StatusBadRequest, "invalid-signature")
			})
			t.Run("ErrSignatureOfOtherKey", func(t *testing.T) {
				r := crypto.Reading{WhIn: 1, WhOut: 1, Timestamp: ts0 + 2}
				body := signed(t, testKeys(t)["ecdsa-p256"], r)
				other := signed(t, testKeys(t)["ed25519"], r)
				body.Base64Signature = other.Base64Signature
				wantProblem(t, postJSON(t, ts.public+"/reportReading", body), http.StatusBadRequest, "invalid-signature")
			})
			t.Run("ErrTimestampInFuture", func(t *testing.T) {
				body := signed(t, testKeys(t)["ed25519"], crypto.Reading{WhIn: 1, WhOut: 1, Timestamp: now.Add(6 * time.Minute).UnixMilli()})
				wantProblem(t, postJSON(t, ts.public+"/reportReading", body), http.StatusUnprocessableEntity, "timestamp-in-future")
			})
			t.Run("WithinClockSkew", func(t *testing.T) {
				body := signed(t, testKeys(t)["ed25519"], crypto.Reading{WhIn: 2_000_000, WhOut: 9000, Timestamp: now.Add(4 * time.Minute).UnixMilli()})
				if r := postJSON(t, ts.public+"/reportReading", body); r.status != http.StatusCreated {
					t.Fatalf("4 minutes ahead: %d %s", r.status, r.rawBody)
				}
			})
			t.Run("Stored", func(t *testing.T) {
				m, err := ts.store.MeterByFingerprint(t.Context(), testKeys(t)["rsa2048"].Public().Fingerprint())
				if err != nil {
					t.Fatal(err)
				}
				rs, err := ts.store.ReadingsBetween(t.Context(), m.ID, 0, math.MaxInt64, 10)
				if err != nil {
					t.Fatal(err)
				}
				if len(rs) != 1 || rs[0].Reading != (crypto.Reading{WhIn: 1234567, WhOut: 8910, Timestamp: ts0}) || !rs[0].ReceivedAt.Equal(now) {
					t.Fatalf("stored %+v", rs)
				}
				if err := testKeys(t)["rsa2048"].Public().Verify(rs[0].Reading, rs[0].Signature); err != nil {
					t.Fatalf("stored signature does not verify: %v", err)
				}
			})
		})
	}
}

func TestReportReadingBadInput(t *testing.T) {
	ts := newTestServer(t, dbtest.SQLite(t), nil)
	k := newKey(t, "ed25519")
	if r := register(t, ts, "m", k); r.status != http.StatusCreated {
		t.Fatal(r.rawBody)
	}
	good := signed(t, k, crypto.Reading{WhIn: 5, WhOut: 6, Timestamp: now.UnixMilli()})
	pk, sig := good.Base64PublicKey, good.Base64Signature
	ts0 := strconv.FormatInt(now.UnixMilli(), 10)
	otherSig := signed(t, testKeys(t)["ecdsa-p256"], good.Reading).Base64Signature
	bk := badKeys(t)
	obj := func(reading string) string {
		return `{"base64PublicKey":"` + pk + `","base64Signature":"` + sig + `","reading":` + reading + `}`
	}
	tests := []struct {
		name, contentType, body string
		status                  int
		slug                    string
	}{
		{"MissingReading", "application/json", `{"base64PublicKey":"` + pk + `","base64Signature":"` + sig + `"}`, 400, "invalid-field"},
		{"NullReading", "application/json", obj(`null`), 400, "invalid-field"},
		{"MissingWhIn", "application/json", obj(`{"whOut":6,"timestamp":1}`), 400, "invalid-field"},
		{"NullWhOut", "application/json", obj(`{"whIn":5,"whOut":null,"timestamp":1}`), 400, "invalid-field"},
		{"MissingTimestamp", "application/json", obj(`{"whIn":5,"whOut":6}`), 400, "invalid-field"},
		{"NegativeWhIn", "application/json", obj(`{"whIn":-5,"whOut":6,"timestamp":1}`), 400, "invalid-field"},
		{"NegativeTimestamp", "application/json", obj(`{"whIn":5,"whOut":6,"timestamp":-1}`), 400, "invalid-field"},
		{"Fraction", "application/json", obj(`{"whIn":5.5,"whOut":6,"timestamp":1}`), 400, "malformed-request"},
		{"Overflow", "application/json", obj(`{"whIn":9223372036854775808,"whOut":6,"timestamp":1}`), 400, "malformed-request"},
		{"NumberAsString", "application/json", obj(`{"whIn":"5","whOut":6,"timestamp":1}`), 400, "malformed-request"},
		{"UnknownField", "application/json", obj(`{"whIn":5,"whOut":6,"timestamp":1,"extra":0}`), 400, "malformed-request"},
		{"MissingKey", "application/json", `{"base64Signature":"` + sig + `","reading":{"whIn":5,"whOut":6,"timestamp":1}}`, 400, "invalid-field"},
		{"MissingSignature", "application/json", `{"base64PublicKey":"` + pk + `","reading":{"whIn":5,"whOut":6,"timestamp":1}}`, 400, "invalid-field"},
		{"BadKeyBase64", "application/json", `{"base64PublicKey":"%%%","base64Signature":"` + sig + `","reading":{"whIn":5,"whOut":6,"timestamp":1}}`, 400, "invalid-key"},
		{"BadSignatureBase64", "application/json", `{"base64PublicKey":"` + pk + `","base64Signature":"%%%","reading":{"whIn":5,"whOut":6,"timestamp":1}}`, 400, "invalid-signature"},
		{"TrailingData", "application/json", obj(`{"whIn":5,"whOut":6,"timestamp":1}`) + `x`, 400, "malformed-request"},
		{"Empty", "application/json", "", 400, "malformed-request"},
		{"WrongContentType", "application/x-www-form-urlencoded", obj(`{"whIn":5,"whOut":6,"timestamp":1}`), 415, "unsupported-media-type"},
		{"HugeBody", "application/json", obj(`{"whIn":5,"whOut":6,"timestamp":1}`) + strings.Repeat(" ", 100<<10), 413, "body-too-large"},
		// Fields of the wrong type, in every place.
		{"WhInBool", "application/json", obj(`{"whIn":true,"whOut":6,"timestamp":1}`), 400, "malformed-request"},
		{"WhInExponent", "application/json", obj(`{"whIn":5e3,"whOut":6,"timestamp":1}`), 400, "malformed-request"},
		{"TimestampOverflow", "application/json", obj(`{"whIn":5,"whOut":6,"timestamp":99999999999999999999}`), 400, "malformed-request"},
		{"NegativeOverflow", "application/json", obj(`{"whIn":-9223372036854775809,"whOut":6,"timestamp":1}`), 400, "malformed-request"},
		{"NegativeWhOut", "application/json", obj(`{"whIn":5,"whOut":-1,"timestamp":1}`), 400, "invalid-field"},
		{"ReadingArray", "application/json", obj(`[5,6,1]`), 400, "malformed-request"},
		{"ReadingString", "application/json", obj(`"5,6,1"`), 400, "malformed-request"},
		{"KeyNumber", "application/json", `{"base64PublicKey":5,"base64Signature":"` + sig + `","reading":{"whIn":5,"whOut":6,"timestamp":1}}`, 400, "malformed-request"},
		{"NullKey", "application/json", `{"base64PublicKey":null,"base64Signature":"` + sig + `","reading":{"whIn":5,"whOut":6,"timestamp":1}}`, 400, "invalid-field"},
		{"NullSignature", "application/json", `{"base64PublicKey":"` + pk + `","base64Signature":null,"reading":{"whIn":5,"whOut":6,"timestamp":1}}`, 400, "invalid-field"},
		{"BodyArray", "application/json", `[` + obj(`{"whIn":5,"whOut":6,"timestamp":1}`) + `]`, 400, "malformed-request"},
		{"BodyNull", "application/json", `null`, 400, "malformed-request"},
		// encoding/json keeps the last of two values; a report must not
		// have two readings of one field, so any repeat is refused.
		{"DuplicateWhIn", "application/json", obj(`{"whIn":5,"whOut":6,"timestamp":1,"whIn":7}`), 400, "malformed-request"},
		{"DuplicateWhInOtherCase", "application/json", obj(`{"whIn":5,"whOut":6,"timestamp":1,"WHIN":5}`), 400, "malformed-request"},
		{"DuplicateReading", "application/json", obj(`{"whIn":5,"whOut":6,"timestamp":1}`)[:len(obj(`{"whIn":5,"whOut":6,"timestamp":1}`))-1] + `,"reading":{"whIn":5,"whOut":6,"timestamp":1}}`, 400, "malformed-request"},
		{"DuplicateSignatureEscaped", "application/json", `{"base64PublicKey":"` + pk + `","base64Signature":"` + sig + `","base64\u0053ignature":"` + sig + `","reading":{"whIn":5,"whOut":6,"timestamp":1}}`, 400, "malformed-request"},
		{"TrailingObject", "application/json", obj(`{"whIn":5,"whOut":6,"timestamp":1}`) + `{}`, 400, "malformed-request"},
		{"Whitespace", "application/json", " \n\t ", 400, "malformed-request"},
		{"TruncatedJSON", "application/json", obj(`{"whIn":5,"whOut":6,"timestamp":1}`)[:40], 400, "malformed-request"},
		{"ContentTypeText", "text/plain", obj(`{"whIn":5,"whOut":6,"timestamp":1}`), 415, "unsupported-media-type"},
		// Keys and signatures that decode but do not belong together. The
		// report path knows keys only by fingerprint, so a key that is not
		// exactly a registered one is unknown, whatever is wrong with it.
		{"TruncatedDERKey", "application/json", `{"base64PublicKey":"` + bk.truncated + `","base64Signature":"` + sig + `","reading":{"whIn":5,"whOut":6,"timestamp":1}}`, 403, "unknown-key"},
		{"TrailingGarbageDERKey", "application/json", `{"base64PublicKey":"` + trailingGarbage(t, pk) + `","base64Signature":"` + sig + `","reading":{"whIn":5,"whOut":6,"timestamp":1}}`, 403, "unknown-key"},
		{"SignatureTooShort", "application/json", `{"base64PublicKey":"` + pk + `","base64Signature":"` + resized(t, sig, 63) + `","reading":{"whIn":5,"whOut":6,"timestamp":` + ts0 + `}}`, 400, "invalid-signature"},
		{"SignatureTooLong", "application/json", `{"base64PublicKey":"` + pk + `","base64Signature":"` + resized(t, sig, 65) + `","reading":{"whIn":5,"whOut":6,"timestamp":` + ts0 + `}}`, 400, "invalid-signature"},
		{"SignatureEmptyDecoded", "application/json", `{"base64PublicKey":"` + pk + `","base64Signature":"=","reading":{"whIn":5,"whOut":6,"timestamp":1}}`, 400, "invalid-signature"},
		{"SignatureOfOtherAlgorithm", "application/json", `{"base64PublicKey":"` + pk + `","base64Signature":"` + otherSig + `","reading":{"whIn":5,"whOut":6,"timestamp":` + ts0 + `}}`, 400, "invalid-signature"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := rowCounts(t, ts.db)
			wantProblem(t, post(t, ts.public+"/reportReading", tt.contentType, tt.body), tt.status, tt.slug)
			if after := rowCounts(t, ts.db); after != before {
				t.Fatalf("rows (meters, readings) went from %v to %v", before, after)
			}
		})
	}
	if n := countReadings(t, ts.db); n != 0 {
		t.Fatalf("after bad input the store holds %d readings, want 0", n)
	}
	t.Run("MethodNotAllowed", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, ts.public+"/reportReading", nil)
		wantProblem(t, do(t, req), http.StatusMethodNotAllowed, "method-not-allowed")
	})
}

func TestHealth(t *testing.T) {
	ts := newTestServer(t, dbtest.SQLite(t), nil)
	for _, url := range []string{ts.public + "/healthz", ts.public + "/readyz", ts.admin + "/healthz"} {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		if r := do(t, req); r.status != http.StatusOK {
			t.Errorf("GET %s: %d %s", url, r.status, r.rawBody)
		}
	}
}

// rsaKeyBase64 returns a fresh RSA public key of the given size, encoded for
// the wire.
func rsaKeyBase64(t *testing.T, bits int) string {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(der)
}

// serveForTest runs srv.Serve on two fresh loopback listeners until the
// test ends, and returns their addresses (host:port). The cleanup fails the
// test if Serve errs or takes more than 10 s to return once stopped.
func serveForTest(t *testing.T, srv *server.Server) (public, admin string) {
	t.Helper()
	pub, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	adm, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		pub.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, pub, adm) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-served:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return within 10s of being stopped")
		}
	})
	return pub.Addr().String(), adm.Addr().String()
}

// TestEveryAnswerIsAProblem asks both listeners for what they do not have:
// every refusal of ours is problem+json, the dashboard's files and the
// profiles that exist are served.
func TestEveryAnswerIsAProblem(t *testing.T) {
	ts := newTestServer(t, dbtest.SQLite(t), nil)
	for _, tt := range []struct {
		name, method, url string
		status            int
		slug              string // "" for a success
	}{
		{"UnknownDashboardFile", http.MethodGet, ts.admin + "/ui/nope.js", http.StatusNotFound, "not-found"},
		{"DashboardDirectory", http.MethodGet, ts.admin + "/ui/vendor/", http.StatusNotFound, "not-found"},
		{"DashboardFile", http.MethodGet, ts.admin + "/ui/app.js", http.StatusOK, ""},
		{"UnknownProfile", http.MethodGet, ts.admin + "/debug/pprof/nope", http.StatusNotFound, "not-found"},
		{"Profile", http.MethodGet, ts.admin + "/debug/pprof/heap", http.StatusOK, ""},
		{"ProfileIndex", http.MethodGet, ts.admin + "/debug/pprof/", http.StatusOK, ""},
		{"UnknownAdminRoute", http.MethodGet, ts.admin + "/nope", http.StatusNotFound, "not-found"},
		{"UnknownPublicRoute", http.MethodGet, ts.public + "/nope", http.StatusNotFound, "not-found"},
		{"PublicWrongMethod", http.MethodGet, ts.public + "/reportReading", http.StatusMethodNotAllowed, "method-not-allowed"},
		{"AdminWrongMethod", http.MethodDelete, ts.admin + "/meters", http.StatusMethodNotAllowed, "method-not-allowed"},
		{"MeterNotANumber", http.MethodGet, ts.admin + "/meters/x", http.StatusNotFound, "not-found"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := do(t, mustRequest(t, tt.method, tt.url))
			if r.status == http.StatusNotFound && strings.Contains(fmt.Sprint(r.body["detail"]), "listener") {
				t.Errorf("detail %q sends the client to the other listener, which does not have it either", r.body["detail"])
			}
			if tt.slug == "" {
				if r.status != tt.status {
					t.Fatalf("status %d, want %d", r.status, tt.status)
				}
				return
			}
			wantProblem(t, r, tt.status, tt.slug)
		})
	}
}

// TestWrongListener asks each listener for what the other serves: the 404
// says where to go.
func TestWrongListener(t *testing.T) {
	ts := newTestServer(t, dbtest.SQLite(t), nil)
	for _, tt := range []struct {
		name, method, url, want string
	}{
		{"RegisterOnPublic", http.MethodPost, ts.public + "/register", "POST /register is on the admin listener, not this one"},
		{"MeterOnPublic", http.MethodGet, ts.public + "/meters/7/readings", "GET /meters/7/readings is on the admin listener, not this one"},
		{"DashboardOnPublic", http.MethodGet, ts.public + "/", "GET / is on the admin listener, not this one"},
		{"ReportOnAdmin", http.MethodPost, ts.admin + "/reportReading", "POST /reportReading is on the public listener, not this one"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := do(t, mustRequest(t, tt.method, tt.url))
			wantProblem(t, r, http.StatusNotFound, "not-found")
			if r.body["detail"] != tt.want {
				t.Errorf("detail %q, want %q", r.body["detail"], tt.want)
			}
		})
	}
}
