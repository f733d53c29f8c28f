package ingest

import (
	"encoding/json"
	"errors"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"smartmeters/crypto"
	"smartmeters/db/dbtest"
	"smartmeters/server/api"
	"smartmeters/store"
)

// parseSeeds are bodies for FuzzParseReport: what clients send, and the
// edges where the reflection-free parser must give way to encoding/json.
var parseSeeds = []string{
	string(api.AppendReport(nil, "MCowBQYDK2VwAyEA", make([]byte, 64), crypto.Reading{WhIn: 1, WhOut: 2, Timestamp: 1764141243123})),
	`{"reading":{"timestamp":3,"whOut":2,"whIn":1},"base64Signature":"c2ln","base64PublicKey":"a2V5"}`,
	" {\n \"base64PublicKey\" : \"a2V5\",\t\"base64Signature\":\"c2ln\",\r\n\"reading\":{ \"whIn\" : 0 , \"whOut\":0,\"timestamp\":9223372036854775807 } } \n",
	`{}`,
	`{"reading":{}}`,
	`{"reading":null}`,
	`{"base64PublicKey":null}`,
	`{"BASE64PUBLICKEY":"a2V5"}`,
	`{"base64PublicKey":"a2V5","base64PublicKey":"a2V5"}`,
	`{"reading":{"whIn":1,"whIn":1}}`,
	`{"reading":{"whIn":-1}}`,
	`{"reading":{"whIn":01}}`,
	`{"reading":{"whIn":1.0}}`,
	`{"reading":{"whIn":1e3}}`,
	`{"reading":{"whIn":9223372036854775808}}`,
	`{"reading":{"whIn":"1"}}`,
	`{"base64PublicKey":"a\u00e9"}`,
	`{"base64PublicKey":"a\"b"}`,
	"{\"base64PublicKey\":\"\xff\"}",
	`{"extra":1}`,
	`{"base64PublicKey":"a2V5"} x`,
	`{"base64PublicKey":"a2V5",}`,
	`[]`,
	`[{}]`,
	`[{"base64PublicKey":"a2V5"},{"reading":{"whIn":1,"whOut":2,"timestamp":3}}]`,
	`[{"base64PublicKey":"a2V5"},]`,
	``,
}

// FuzzParseReport holds api.ParseReport and api.ParseReports to
// encoding/json's strict decoding: whenever the parser takes a body, the
// decoder takes it too and gives the same request.
func FuzzParseReport(f *testing.F) {
	for _, s := range parseSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if got, ok := api.ParseReport(body); ok {
			var want api.ReportRequest
			if err := UnmarshalStrict(body, &want); err != nil {
				t.Fatalf("ParseReport took %q, encoding/json refuses it: %v", body, err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("ParseReport(%q) = %s, encoding/json gives %s", body, show(got), show(want))
			}
		}
		if got, ok := api.ParseReports(body); ok {
			var want []api.ReportRequest
			if err := UnmarshalStrict(body, &want); err != nil {
				t.Fatalf("ParseReports took %q, encoding/json refuses it: %v", body, err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("ParseReports(%q) = %s, encoding/json gives %s", body, show(got), show(want))
			}
		}
	})
}

func show(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestParseReportTakes checks that the parser takes what clients send, so
// that the fast path is the one they get, and leaves the rest to
// encoding/json.
func TestParseReportTakes(t *testing.T) {
	for i, s := range parseSeeds[:5] {
		if _, ok := api.ParseReport([]byte(s)); !ok {
			t.Errorf("seed %d %q: not taken", i, s)
		}
	}
	for i, s := range parseSeeds[5:22] {
		if _, ok := api.ParseReport([]byte(s)); ok {
			t.Errorf("seed %d %q: taken; encoding/json should decide", i+5, s)
		}
	}
	for _, s := range parseSeeds[23:25] {
		if _, ok := api.ParseReports([]byte(s)); !ok {
			t.Errorf("%q: not taken as a batch", s)
		}
	}
	// What json.Marshal of a request gives, as the simulator once sent.
	in, wh := int64(5), int64(6)
	b, err := json.Marshal(api.ReportRequest{Base64PublicKey: "a2V5", Base64Signature: "c2ln", Reading: &api.ReadingJSON{WhIn: &in, WhOut: &wh, Timestamp: &wh}})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := api.ParseReport(b); !ok {
		t.Errorf("%s: not taken", b)
	}
}

// TestStrictErrorsNameTheBody checks that a body of the wrong kind is
// answered with what the endpoint wants: an object for /reportReading, an
// array of objects for /reportReadings.
func TestStrictErrorsNameTheBody(t *testing.T) {
	tests := []struct {
		name, body, want string
		batch            bool
	}{
		{"ObjectWantedGotArray", `[]`, "the body must be a JSON object, not a JSON array", false},
		{"ObjectWantedGotNumber", `5`, "the body must be a JSON object, not a JSON number", false},
		{"ObjectWantedGotNull", `null`, "the body must be a JSON object, not null", false},
		{"ObjectWantedGotNothing", " \n", "the body is empty; send a JSON object", false},
		{"ArrayWantedGotObject", `{"a":1}`, "the body must be a JSON array, not a JSON object", true},
		{"ArrayWantedGotNumber", `5`, "the body must be a JSON array, not a JSON number", true},
		{"ArrayWantedGotNull", ` null `, "the body must be a JSON array, not null", true},
		{"ArrayWantedGotNothing", ``, "the body is empty; send a JSON array", true},
		{"ElementNotObject", `[{"base64PublicKey":"a2V5"},5]`, "each element of the array must be a JSON object, not a JSON number", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			if tt.batch {
				_, err = decodeRequests([]byte(tt.body))
			} else {
				_, err = decodeRequest([]byte(tt.body))
			}
			var p *api.Problem
			if !errors.As(err, &p) || p.Slug() != "malformed-request" {
				t.Fatalf("error %v, want a malformed-request problem", err)
			}
			if p.Detail != tt.want {
				t.Errorf("detail %q, want %q", p.Detail, tt.want)
			}
		})
	}
}

// TestArrayLen checks the element count taken before a batch is decoded.
func TestArrayLen(t *testing.T) {
	tests := []struct {
		body  string
		limit int
		want  int
	}{
		{`[]`, 10, 0},
		{` [ ] `, 10, 0},
		{`[{}]`, 10, 1},
		{`[{},{}]`, 10, 2},
		{`[1, 22, 333,"a,b]",null,true,[1,2,[3]],{"k":[1,2],"l":"}"}]`, 10, 8},
		{`["\"],[", "\\", "\\\"]"]`, 10, 3},
		{`[{},{},{},{}]`, 2, 3}, // stops once over the limit
		{`{"a":[1,2,3]}`, 10, 0},
		{`5`, 10, 0},
		{`null`, 10, 0},
		{``, 10, 0},
		{`[{},{},{} garbage`, 10, 3},
		{`[{},{}] [{},{},{}]`, 10, 2},
	}
	for _, tt := range tests {
		if got := arrayLen([]byte(tt.body), tt.limit); got != tt.want {
			t.Errorf("arrayLen(%q, %d) = %d, want %d", tt.body, tt.limit, got, tt.want)
		}
	}
}

// FuzzArrayLen holds arrayLen to encoding/json: for a body that decodes as
// an array, the count is its length (or limit+1 when longer).
func FuzzArrayLen(f *testing.F) {
	for _, s := range parseSeeds {
		f.Add(s)
	}
	f.Add(`[1,"x",{"a":[1,{}]},[[]],null]`)
	f.Fuzz(func(t *testing.T, s string) {
		var v []json.RawMessage
		if json.Unmarshal([]byte(s), &v) != nil {
			return
		}
		for _, limit := range []int{0, 1, 3, 1000} {
			want := min(len(v), limit+1)
			if got := arrayLen([]byte(s), limit); got != want {
				t.Fatalf("arrayLen(%q, %d) = %d, want %d", s, limit, got, want)
			}
		}
	})
}

// TestBatchCountedBeforeDecoding checks that a batch of more than
// MaxBatch elements is refused before it is decoded: a body of a million
// empty objects, within the size limit, once cost 150 MB to decode.
func TestBatchCountedBeforeDecoding(t *testing.T) {
	s := newTestService(t, store.New(dbtest.SQLite(t).OpenMigrated(t)))
	const n = 1 << 20
	for _, elem := range []string{"{}", "null", "1"} {
		t.Run(elem, func(t *testing.T) {
			body := []byte("[" + strings.Repeat(elem+",", n-1) + elem + "]")
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			_, err := s.ReportBatch(t.Context(), HTTP, body)
			runtime.ReadMemStats(&after)
			var p *api.Problem
			if !errors.As(err, &p) || p.Slug() != "batch-too-large" {
				t.Fatalf("error %v, want batch-too-large", err)
			}
			// Decoding allocated over 100 bytes an element; counting
			// allocates nothing that grows with the body.
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > uint64(len(body)) {
				t.Errorf("refusing a %d-byte batch of %d elements allocated %d bytes", len(body), n, alloc)
			}
		})
	}
}
