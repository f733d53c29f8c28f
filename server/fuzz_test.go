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

// newFuzzServer returns a server's handlers with the vector keys registered.
func newFuzzServer(f *testing.F, vs []vectorReport) (public, admin http.Handler) {
	f.Helper()
	st := store.New(dbtest.SQLite(f).OpenMigrated(f))
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
