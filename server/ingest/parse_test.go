package ingest

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"smartmeters/crypto"
	"smartmeters/server/api"
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
