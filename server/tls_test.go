package server_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"smartmeters/db/dbtest"
	"smartmeters/server"
	"smartmeters/store"
)

// testCA is a throwaway certificate authority.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T, name string) testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return testCA{cert, key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns a leaf certificate and its key, PEM-encoded, for a server
// at 127.0.0.1 or for a client.
func (ca testCA) issue(t *testing.T, name string, client bool) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
	}
	if client {
		tmpl.ExtKeyUsage, tmpl.IPAddresses = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, nil
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
}

func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestTLS serves both listeners over TLS, the admin one demanding a client
// certificate from the admin CA, and makes real handshakes against them.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	serverCA, adminCA, otherCA := newTestCA(t, "server CA"), newTestCA(t, "admin CA"), newTestCA(t, "other CA")
	certPEM, keyPEM := serverCA.issue(t, "smartmeters", false)
	st := store.New(dbtest.SQLite(t).OpenMigrated(t))
	srv := newServer(t, testConfig(func(c *server.Config) {
		c.TLSCert = writeFile(t, dir, "cert.pem", certPEM)
		c.TLSKey = writeFile(t, dir, "key.pem", keyPEM)
		c.AdminClientCA = writeFile(t, dir, "admin-ca.pem", adminCA.pem)
	}), st)
	public, admin := serveForTest(t, srv)

	roots := x509.NewCertPool()
	roots.AddCert(serverCA.cert)
	clientWith := func(ca *testCA) *http.Client {
		cfg := &tls.Config{RootCAs: roots}
		if ca != nil {
			c, k := ca.issue(t, "operator", true)
			pair, err := tls.X509KeyPair(c, k)
			if err != nil {
				t.Fatal(err)
			}
			cfg.Certificates = []tls.Certificate{pair}
		}
		return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 5 * time.Second}
	}
	get := func(c *http.Client, url string) (int, error) {
		res, err := c.Get(url)
		if err != nil {
			return 0, err
		}
		defer res.Body.Close()
		io.Copy(io.Discard, res.Body)
		if res.TLS == nil && strings.HasPrefix(url, "https") {
			t.Errorf("%s: answered without TLS", url)
		}
		return res.StatusCode, nil
	}

	t.Run("PublicOverTLS", func(t *testing.T) {
		if code, err := get(clientWith(nil), "https://"+public+"/healthz"); err != nil || code != http.StatusOK {
			t.Fatalf("GET /healthz: %d %v", code, err)
		}
	})
	t.Run("PlainHTTPRefused", func(t *testing.T) {
		for _, addr := range []string{public, admin} {
			code, err := get(http.DefaultClient, "http://"+addr+"/healthz")
			if err == nil && code == http.StatusOK {
				t.Errorf("plain HTTP to %s was served", addr)
			}
		}
	})
	t.Run("UntrustedServerRefusedByClient", func(t *testing.T) {
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{}}, Timeout: 5 * time.Second}
		if _, err := get(c, "https://"+public+"/healthz"); err == nil {
			t.Fatal("a client without the server's CA accepted its certificate")
		}
	})
	t.Run("AdminWithoutClientCert", func(t *testing.T) {
		if code, err := get(clientWith(nil), "https://"+admin+"/healthz"); err == nil {
			t.Fatalf("admin without a client certificate: %d, want a failed handshake", code)
		}
	})
	t.Run("AdminWithCertOfOtherCA", func(t *testing.T) {
		if code, err := get(clientWith(&otherCA), "https://"+admin+"/healthz"); err == nil {
			t.Fatalf("admin with a certificate of another CA: %d, want a failed handshake", code)
		}
	})
	t.Run("AdminWithClientCert", func(t *testing.T) {
		c := clientWith(&adminCA)
		if code, err := get(c, "https://"+admin+"/healthz"); err != nil || code != http.StatusOK {
			t.Fatalf("GET /healthz: %d %v", code, err)
		}
		k := newKey(t, "ed25519")
		res, err := c.Post("https://"+admin+"/register", "application/json",
			jsonReader(t, map[string]string{"username": "tls", "base64PublicKey": k.Public().Base64()}))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusCreated {
			t.Fatalf("register over mutual TLS: %d", res.StatusCode)
		}
	})
}

// TestAdminAllowlistFromOutside dials the admin listener from a second
// loopback address that a narrowed allowlist leaves out: refused with 403
// and nothing registered, while the allowed address is served.
func TestAdminAllowlistFromOutside(t *testing.T) {
	ts := newTestServer(t, dbtest.SQLite(t), func(c *server.Config) {
		c.AdminAllow = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	})
	from := func(ip string) *http.Client {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
		return &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
	}
	k := newKey(t, "ed25519")
	body := map[string]string{"username": "outsider", "base64PublicKey": k.Public().Base64()}
	res, err := from("127.0.0.2").Post(ts.admin+"/register", "application/json", jsonReader(t, body))
	if err != nil {
		t.Skipf("cannot dial from 127.0.0.2 here: %v", err)
	}
	raw, _ := io.ReadAll(res.Body)
	res.Body.Close()
	r := response{status: res.StatusCode, ctype: res.Header.Get("Content-Type"), rawBody: string(raw)}
	_ = json.Unmarshal(raw, &r.body)
	wantProblem(t, r, http.StatusForbidden, "admin-forbidden")
	if !strings.Contains(r.rawBody, "127.0.0.2") {
		t.Errorf("detail does not name the peer: %s", r.rawBody)
	}
	for _, path := range []string{"/metrics", "/meters", "/debug/pprof/"} {
		res, err := from("127.0.0.2").Get(ts.admin + path)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusForbidden {
			t.Errorf("GET %s from 127.0.0.2: %d, want 403", path, res.StatusCode)
		}
	}
	if n := rowCounts(t, ts.db); n[0] != 0 {
		t.Fatalf("%d meters registered from outside the allowlist", n[0])
	}
	res, err = from("127.0.0.1").Post(ts.admin+"/register", "application/json", jsonReader(t, body))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("register from 127.0.0.1: %d", res.StatusCode)
	}
}
