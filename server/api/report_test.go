package api_test

import (
	"bytes"
	"encoding/json"
	"testing"

	"smartmeters/crypto"
	"smartmeters/server/api"
)

// TestAppendReportIsReportRequest checks that the hand-built body and the
// struct agree on every field name: the strict decoder refuses unknown
// fields, and each value must come back.
func TestAppendReportIsReportRequest(t *testing.T) {
	r := crypto.Reading{WhIn: 1234567, WhOut: 8910, Timestamp: 1764141243123}
	body := api.AppendReport(nil, "cHVi", []byte{1, 2, 3}, r)
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var req api.ReportRequest
	if err := dec.Decode(&req); err != nil {
		t.Fatalf("%s: %v", body, err)
	}
	if req.Base64PublicKey != "cHVi" || req.Base64Signature != "AQID" || req.Reading == nil ||
		*req.Reading.WhIn != r.WhIn || *req.Reading.WhOut != r.WhOut || *req.Reading.Timestamp != r.Timestamp {
		t.Fatalf("%s decodes to %+v", body, req)
	}
}

func TestSlug(t *testing.T) {
	for typ, want := range map[string]string{
		api.UnknownKey.Type():                "unknown-key",
		"urn:smartmeters:problem:overloaded": "overloaded",
		"about:blank":                        "",
		"urn:other:problem:unknown-key":      "",
		api.Errorf(api.RateLimited, "").Type: "rate-limited",
	} {
		if got := api.Slug(typ); got != want {
			t.Errorf("Slug(%q) = %q, want %q", typ, got, want)
		}
	}
}
