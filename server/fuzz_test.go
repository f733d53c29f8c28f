package server_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"smartmeters/db/dbtest"
	"smartmeters/store"
)

// The fuzz targets send arbitrary bodies through the real handlers of a
// server on a fresh SQLite store, with the keys of the test vectors
// registered so that the seeds reach every stage. Whatever the body: no
// panic, never a 5xx, and every error is a well-formed problem+json whose
// status matches the answer's.

type vectorReport struct {
	Base64PublicKey string          `json:"base64PublicKey"`
	Base64Signature string          `json:"base64Signature"`
	Reading         json.RawMessage `json:"reading"`
}

// loadVectorReports returns the reports of crypto/testdata/vectors.json.
func loadVectorReports(f *testing.F) []vectorReport {
	f.Helper()
	raw, err := os.ReadFile("../crypto/testdata/vectors.json")
	if err != nil {
		f.Fatal(err)
	}
	var vs []vectorReport
	if err := json.Unmarshal(raw, &vs); err != nil {
		f.Fatal(err)
	}
	return vs
}

// newFuzzServer returns a server's handlers on SQLite with the vector keys
// registered.
func newFuzzServer(f *testing.F, vs []vectorReport) (public, admin http.Handler) {
	f.Helper()
	return newFuzzServerOn(f, dbtest.SQLite(f), vs)
}

// newFuzzServerOn is newFuzzServer on backend b, with the first vector's
// reading stored.
func newFuzzServerOn(f *testing.F, b dbtest.Backend, vs []vectorReport) (public, admin http.Handler) {
	f.Helper()
	st := store.New(b.OpenMigrated(f))
	srv := newServer(f, testConfig(nil), st)
	seen := map[string]bool{}
	for i, v := range vs {
		if seen[v.Base64PublicKey] {
			continue
		}
		seen[v.Base64PublicKey] = true
		body, _ := json.Marshal(map[string]string{"username": "vector-" + string(rune('a'+i)), "base64PublicKey": v.Base64PublicKey})
		if rec := serveBody(srv.AdminHandler(), "/register", body); rec.Code != http.StatusCreated {
			f.Fatalf("register vector key: %d %s", rec.Code, rec.Body)
		}
	}
	if len(vs) > 0 {
		body, _ := json.Marshal(vs[0])
		if rec := serveBody(srv.PublicHandler(), "/reportReading", body); rec.Code != http.StatusCreated {
			f.Fatalf("store a vector reading: %d %s", rec.Code, rec.Body)
		}
	}
	return srv.PublicHandler(), srv.AdminHandler()
}

// serveBody posts body as JSON to h from a loopback peer.
func serveBody(h http.Handler, path string, body []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.RemoteAddr = "127.0.0.1:40000"
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// checkAnswer fails on a 5xx and on an error that is not a valid problem.
func checkAnswer(t *testing.T, rec *httptest.ResponseRecorder) {
	t.Helper()
	if rec.Code >= 500 {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	if rec.Code < 300 {
		if strings.HasPrefix(rec.Header().Get("Content-Type"), "text/csv") {
			return
		}
		if !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("status %d with a body that is not JSON: %q", rec.Code, rec.Body)
		}
		return
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("status %d with Content-Type %q", rec.Code, ct)
	}
	var p struct {
		Type, Title, Detail string
		Status              int
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
		t.Fatalf("status %d: problem is not JSON: %v: %q", rec.Code, err, rec.Body)
	}
	if !strings.HasPrefix(p.Type, "urn:smartmeters:problem:") || p.Title == "" || p.Status != rec.Code {
		t.Fatalf("status %d: malformed problem %s", rec.Code, rec.Body)
	}
}

func FuzzReportReading(f *testing.F) {
	vs := loadVectorReports(f)
	for _, v := range vs {
		b, _ := json.Marshal(v)
		f.Add(b)
	}
	f.Add([]byte(`{"base64PublicKey":"AAAA","base64Signature":"AAAA","reading":{"whIn":1,"whOut":2,"timestamp":3}}`))
	public, _ := newFuzzServer(f, vs)
	f.Fuzz(func(t *testing.T, body []byte) {
		checkAnswer(t, serveBody(public, "/reportReading", body))
	})
}

func FuzzReportReadings(f *testing.F) {
	vs := loadVectorReports(f)
	all, _ := json.Marshal(vs)
	f.Add(all)
	for _, v := range vs {
		b, _ := json.Marshal([]vectorReport{v, v})
		f.Add(b)
	}
	f.Add([]byte(`[]`))
	f.Add([]byte(`[{}]`))
	public, _ := newFuzzServer(f, vs)
	f.Fuzz(func(t *testing.T, body []byte) {
		rec := serveBody(public, "/reportReadings", body)
		checkAnswer(t, rec)
		if rec.Code != http.StatusOK {
			return
		}
		var out struct {
			Results []struct {
				Status int
				Type   string
			}
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || len(out.Results) == 0 {
			t.Fatalf("200 without results: %s", rec.Body)
		}
		for i, r := range out.Results {
			if r.Status < 200 || r.Status >= 500 || (r.Status >= 300 && !strings.HasPrefix(r.Type, "urn:smartmeters:problem:")) {
				t.Fatalf("result %d: %+v", i, r)
			}
		}
	})
}

func FuzzRegister(f *testing.F) {
	vs := loadVectorReports(f)
	for i, v := range vs {
		b, _ := json.Marshal(map[string]string{"username": "seed" + string(rune('a'+i)), "base64PublicKey": v.Base64PublicKey})
		f.Add(b)
	}
	f.Add([]byte(`{"username":"a","base64PublicKey":"-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEArVYZ1T/lVNOuvB2gTOjg/mWJhZxZzIEDK2/jTPInjVM=\n-----END PUBLIC KEY-----\n"}`))
	_, admin := newFuzzServer(f, nil)
	f.Fuzz(func(t *testing.T, body []byte) {
		rec := serveBody(admin, "/register", body)
		checkAnswer(t, rec)
		if rec.Code == http.StatusCreated {
			var m struct{ Fingerprint, Algorithm string }
			if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil || len(m.Fingerprint) != 64 || m.Algorithm == "" {
				t.Fatalf("201 with body %s", rec.Body)
			}
		}
	})
}

// adminRoutes are the admin API's routes the admin fuzz target reaches:
// every GET with query parameters, and every POST with a body. The event
// stream is left out: it answers for as long as the client listens.
var adminRoutes = []struct{ method, path string }{
	{http.MethodGet, "/meters"},
	{http.MethodGet, "/meters/1"},
	{http.MethodGet, "/meters/1/readings"},
	{http.MethodGet, "/meters/1/consumption"},
	{http.MethodGet, "/meters/1/export.csv"},
	{http.MethodGet, "/meters/1/keys"},
	{http.MethodGet, "/fleet"},
	{http.MethodPost, "/meters/1/revoke"},
	{http.MethodPost, "/meters/1/key"},
	{http.MethodPost, "/meters/2/revoke"},
	{http.MethodPost, "/register"},
}

// FuzzAdmin sends arbitrary query strings and bodies to every route of
// the admin API, on PostgreSQL when SMARTMETERS_TEST_DATABASE_URL is set
// (stricter about text than SQLite), with the test vectors' keys
// registered and a reading stored: never a 5xx, every error a problem.
func FuzzAdmin(f *testing.F) {
	vs := loadVectorReports(f)
	for i := range adminRoutes {
		for _, q := range []string{"", "from=0&to=86400000&bucket=1h", "after=1&limit=10&username=vector", "from=253402300800000",
			"to=-62135596800001", "window=60s", "bucket=1d&from=2026-01-01T00:00:00Z"} {
			f.Add(uint8(i), q, []byte(`{"reason":"meter swap"}`))
		}
		f.Add(uint8(i), "", []byte(`{"reason":"stolen\u0000"}`))
		f.Add(uint8(i), "", []byte(`{"reason":"swap","base64PublicKey":"MCowBQYDK2VwAyEArVYZ1T/lVNOuvB2gTOjg/mWJhZxZzIEDK2/jTPInjVM="}`))
	}
	b := dbtest.SQLite(f)
	if pg, ok := dbtest.Postgres(f); ok {
		b = pg
	}
	_, admin := newFuzzServerOn(f, b, vs)
	f.Fuzz(func(t *testing.T, route uint8, query string, body []byte) {
		r := adminRoutes[int(route)%len(adminRoutes)]
		target := r.path
		if query != "" {
			target += "?" + query
		}
		req, err := http.NewRequest(r.method, "http://admin"+target, bytes.NewReader(body))
		if err != nil {
			return // not a request a client could send
		}
		req.Header.Set("Content-Type", "application/json")
		req.RemoteAddr = "127.0.0.1:40000"
		rec := httptest.NewRecorder()
		admin.ServeHTTP(rec, req)
		checkAnswer(t, rec)
	})
}
