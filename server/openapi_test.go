package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"smartmeters/db/dbtest"
)

// The answers of the handler tests are checked against the listeners'
// OpenAPI descriptions (openapi/public.json, openapi/admin.json): the test
// servers' handlers are wrapped by checkedPublic and checkedAdmin, which
// fail the test on any answer that its listener's description does not
// allow, so that the descriptions cannot drift from the code.

// apiSpec is one listener's description, ready to check answers with.
type apiSpec struct {
	name    string
	doc     *openapi3.T
	router  routers.Router
	problem *openapi3.Schema
}

var (
	specsOnce             sync.Once
	publicSpec, adminSpec *apiSpec
	specsErr              error
)

// specs loads and validates both descriptions, once.
func specs(t testing.TB) (public, admin *apiSpec) {
	t.Helper()
	specsOnce.Do(func() {
		if publicSpec, specsErr = loadSpec("public"); specsErr == nil {
			adminSpec, specsErr = loadSpec("admin")
		}
	})
	if specsErr != nil {
		t.Fatal(specsErr)
	}
	return publicSpec, adminSpec
}

func loadSpec(name string) (*apiSpec, error) {
	path := "openapi/" + name + ".json"
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if !doc.IsOpenAPI31OrLater() {
		return nil, fmt.Errorf("%s: OpenAPI %s, want 3.1", path, doc.OpenAPI)
	}
	if err := doc.Validate(loader.Context); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	problem := doc.Components.Schemas["Problem"]
	if problem == nil || problem.Value == nil {
		return nil, fmt.Errorf("%s: no Problem schema", path)
	}
	return &apiSpec{name: path, doc: doc, router: router, problem: problem.Value}, nil
}

// checkedPublic wraps the public listener's handler h: see checked.
func checkedPublic(t testing.TB, h http.Handler) http.Handler {
	pub, _ := specs(t)
	return checked(t, pub, h)
}

// checkedAdmin wraps the admin listener's handler h: see checked.
func checkedAdmin(t testing.TB, h http.Handler) http.Handler {
	_, adm := specs(t)
	return checked(t, adm, h)
}

// checked returns h with every answer checked against spec: a route the
// description has must answer as it says (status, content type and JSON
// body); any other request must be refused with a problem.
func checked(t testing.TB, spec *apiSpec, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &answerRecorder{ResponseWriter: w}
		h.ServeHTTP(rec, r)
		if err := spec.check(r, rec); err != nil {
			t.Errorf("%s %s answered %d, which %s does not allow: %v", r.Method, r.URL, rec.statusCode(), spec.name, err)
		}
	})
}

// check checks the answer rec to r.
func (s *apiSpec) check(r *http.Request, rec *answerRecorder) error {
	route, params, err := s.router.FindRoute(r)
	if err != nil {
		if !errors.Is(err, routers.ErrPathNotFound) && !errors.Is(err, routers.ErrMethodNotAllowed) {
			return err
		}
		return s.checkRefusal(rec)
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: r, PathParams: params, Route: route},
		Status:                 rec.statusCode(),
		Header:                 rec.header,
		Body:                   io.NopCloser(bytes.NewReader(rec.body.Bytes())),
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, ExcludeResponseBody: rec.truncated},
	}
	return openapi3filter.ValidateResponse(context.Background(), in)
}

// checkRefusal checks the answer to a request the description does not
// have: a problem, 4xx or 5xx.
func (s *apiSpec) checkRefusal(rec *answerRecorder) error {
	if rec.statusCode() < 400 {
		return errors.New("the description has no such route")
	}
	if ct := rec.header.Get("Content-Type"); ct != "application/problem+json" {
		return fmt.Errorf("a refusal of type %q, want application/problem+json", ct)
	}
	if rec.truncated {
		return errors.New("a refusal too large to check")
	}
	var v any
	if err := json.Unmarshal(rec.body.Bytes(), &v); err != nil {
		return err
	}
	return s.problem.VisitJSON(v, openapi3.EnableJSONSchema2020())
}

// maxChecked bounds the body an answerRecorder keeps.
const maxChecked = 4 << 20

// answerRecorder passes an answer through and keeps its status, headers
// and (up to maxChecked bytes) body. Streams flush through it.
type answerRecorder struct {
	http.ResponseWriter
	status    int
	header    http.Header
	body      bytes.Buffer
	truncated bool
}

func (a *answerRecorder) WriteHeader(code int) {
	if a.status == 0 {
		a.status = code
		a.header = a.ResponseWriter.Header().Clone()
	}
	a.ResponseWriter.WriteHeader(code)
}

func (a *answerRecorder) Write(p []byte) (int, error) {
	if a.status == 0 {
		a.WriteHeader(http.StatusOK)
	}
	if a.body.Len()+len(p) <= maxChecked {
		a.body.Write(p)
	} else {
		a.truncated = true
	}
	return a.ResponseWriter.Write(p)
}

func (a *answerRecorder) statusCode() int {
	if a.status == 0 {
		return http.StatusOK
	}
	return a.status
}

// Unwrap lets http.ResponseController reach the connection (to flush a
// stream, to extend a deadline).
func (a *answerRecorder) Unwrap() http.ResponseWriter { return a.ResponseWriter }

func (a *answerRecorder) Flush() {
	if f, ok := a.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// TestOpenAPIServed checks that each listener serves its description at
// /openapi.json, and that both are valid OpenAPI 3.1.
func TestOpenAPIServed(t *testing.T) {
	specs(t)
	ts := newTestServer(t, dbtest.SQLite(t), nil)
	for _, tt := range []struct{ url, file string }{
		{ts.public + "/openapi.json", "openapi/public.json"},
		{ts.admin + "/openapi.json", "openapi/admin.json"},
	} {
		r := do(t, mustRequest(t, http.MethodGet, tt.url))
		want, err := os.ReadFile(tt.file)
		if err != nil {
			t.Fatal(err)
		}
		if r.status != http.StatusOK || r.ctype != "application/json" || r.rawBody != string(want) {
			t.Errorf("GET %s: %d %s, want %s", tt.url, r.status, r.ctype, tt.file)
		}
	}
}

// TestOpenAPIChecksAnswers checks the checker: an answer that its route's
// description does not allow fails.
func TestOpenAPIChecksAnswers(t *testing.T) {
	_, adm := specs(t)
	for _, tt := range []struct {
		name, method, path string
		status             int
		ctype, body        string
	}{
		{"MissingField", http.MethodGet, "/signing-key", 200, "application/json", `{"algorithm":"ed25519","fingerprint":"ab"}`},
		{"WrongType", http.MethodGet, "/meters/1", 200, "application/json", `{"id":"1"}`},
		{"UndescribedRoute", http.MethodGet, "/nope", 200, "text/plain", "hello"},
		{"RefusalNotAProblem", http.MethodGet, "/nope", 404, "text/plain", "not found"},
		{"ProblemWithoutType", http.MethodGet, "/meters/1", 404, "application/problem+json", `{"title":"x","status":404}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, "http://admin"+tt.path, nil)
			rec := &answerRecorder{status: tt.status, header: http.Header{"Content-Type": {tt.ctype}}}
			rec.body.WriteString(tt.body)
			if err := adm.check(req, rec); err == nil {
				t.Errorf("%s %s answered %d %s: no error", tt.method, tt.path, tt.status, tt.body)
			}
		})
	}
}
