package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"strconv"
	"strings"

	"smartmeters/crypto"
	"smartmeters/server/api"
)

// UnmarshalStrict is json.Unmarshal without leniency: unknown fields,
// anything after the value, a key repeated in one object and a body of
// null are errors. Every failure is a malformed-request problem a client
// can act on, naming what the body must be (v's kind: an object or an
// array).
func UnmarshalStrict(body []byte, v any) error {
	want := bodyKind(v)
	switch trimmed := bytes.TrimSpace(body); {
	case len(trimmed) == 0:
		return api.Errorf(api.MalformedRequest, "the body is empty; send %s", want)
	case string(trimmed) == "null":
		return api.Errorf(api.MalformedRequest, "the body must be %s, not null", want)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return api.Errorf(api.MalformedRequest, "%s", describeJSONError(err, want))
	}
	if _, err := dec.Token(); err != io.EOF {
		return api.Errorf(api.MalformedRequest, "unexpected data after the JSON value")
	}
	if key, dup := duplicateKey(body); dup {
		return api.Errorf(api.MalformedRequest, "key %q appears twice in one object", key)
	}
	return nil
}

// bodyKind names the JSON value that decodes into v, a pointer to a slice
// or to a struct: "a JSON array" or "a JSON object".
func bodyKind(v any) string {
	if t := reflect.TypeOf(v); t != nil && t.Kind() == reflect.Pointer && t.Elem().Kind() == reflect.Slice {
		return "a JSON array"
	}
	return "a JSON object"
}

// describeJSONError says what is wrong with a body that encoding/json
// refused; want names the value the body must be.
func describeJSONError(err error, want string) string {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return "invalid JSON at byte " + strconv.FormatInt(syntax.Offset, 10) + ": " + syntax.Error()
	case errors.As(err, &typ):
		if typ.Field != "" {
			return "field " + typ.Field + " must be " + jsonTypeName(typ.Type.String()) + ", not a JSON " + typ.Value
		}
		if typ.Type.Kind() == reflect.Struct && want == "a JSON array" {
			return "each element of the array must be a JSON object, not a JSON " + typ.Value
		}
		return "the body must be " + want + ", not a JSON " + typ.Value
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "the JSON value is truncated"
	}
	// Unknown fields and the like: encoding/json's own words are clear.
	return strings.TrimPrefix(err.Error(), "json: ")
}

func jsonTypeName(goType string) string {
	switch goType {
	case "int64", "*int64":
		return "an integer between -9223372036854775808 and 9223372036854775807"
	case "string":
		return "a string"
	}
	return "a JSON " + strings.TrimPrefix(goType, "*")
}

// decodeRequest decodes the body of POST /reportReading: the plain shape
// every client sends without reflection (api.ParseReport), anything else
// with encoding/json, which gives the precise error. FuzzParseReport holds
// the two to the same answers.
func decodeRequest(body []byte) (api.ReportRequest, error) {
	if req, ok := api.ParseReport(body); ok {
		return req, nil
	}
	var req api.ReportRequest
	err := UnmarshalStrict(body, &req)
	return req, err
}

// decodeRequests decodes the body of POST /reportReadings, as
// decodeRequest does.
func decodeRequests(body []byte) ([]api.ReportRequest, error) {
	if reqs, ok := api.ParseReports(body); ok {
		return reqs, nil
	}
	var reqs []api.ReportRequest
	err := UnmarshalStrict(body, &reqs)
	return reqs, err
}

// arrayLen counts the elements of body's top-level JSON array, stopping
// once there are more than limit, without decoding or allocating any: it
// reads only the array's structure (strings, nesting, the commas between
// elements). It is exact for a valid array, and for an invalid one it
// counts the elements of the valid part, which is all a decoder would
// take. A body that is not an array counts 0.
func arrayLen(body []byte, limit int) int {
	depth, n, counted := 0, 0, false
	for i := 0; i < len(body); i++ {
		switch c := body[i]; c {
		case ' ', '\t', '\n', '\r':
			continue
		case ',':
			if depth == 1 {
				counted = false
			}
			continue
		case ']', '}':
			depth--
			if depth <= 0 {
				return n
			}
			continue
		default:
			if depth == 0 && c != '[' {
				return 0
			}
		}
		if depth == 1 && !counted {
			counted = true
			if n++; n > limit {
				return n
			}
		}
		switch body[i] {
		case '"':
			// Jump to the closing quote: the first one not escaped, that
			// is, not after an odd run of backslashes.
			for {
				q := bytes.IndexByte(body[i+1:], '"')
				if q < 0 {
					return n
				}
				i += 1 + q
				backslashes := 0
				for k := i - 1; body[k] == '\\'; k-- {
					backslashes++
				}
				if backslashes%2 == 0 {
					break
				}
			}
		case '[', '{':
			depth++
		}
	}
	return n
}

// signedReading is a report that passed decoding: what verification needs.
type signedReading struct {
	fp        crypto.Fingerprint
	reading   crypto.Reading
	signature []byte
}

// decodeReport checks the shape of a report and decodes its key and
// signature.
func decodeReport(r *api.ReportRequest) (signedReading, error) {
	var sr signedReading
	if r.Base64PublicKey == "" {
		return sr, api.Errorf(api.InvalidField, "base64PublicKey is required")
	}
	if r.Base64Signature == "" {
		return sr, api.Errorf(api.InvalidField, "base64Signature is required")
	}
	if r.Reading == nil {
		return sr, api.Errorf(api.InvalidField, "reading is required")
	}
	for _, f := range [...]struct {
		name string
		v    *int64
	}{{"reading.whIn", r.Reading.WhIn}, {"reading.whOut", r.Reading.WhOut}, {"reading.timestamp", r.Reading.Timestamp}} {
		if f.v == nil {
			return sr, api.Errorf(api.InvalidField, "%s is required", f.name)
		}
		if *f.v < 0 {
			return sr, api.Errorf(api.InvalidField, "%s is %d; it must be 0 or more", f.name, *f.v)
		}
	}
	sr.reading = crypto.Reading{WhIn: *r.Reading.WhIn, WhOut: *r.Reading.WhOut, Timestamp: *r.Reading.Timestamp}
	der, err := crypto.DecodePublicKey(r.Base64PublicKey)
	if err != nil {
		return sr, api.Errorf(api.InvalidKey, "base64PublicKey: %v", err)
	}
	sr.fp = crypto.FingerprintOf(der)
	if sr.signature, err = crypto.DecodeSignature(r.Base64Signature); err != nil {
		return sr, api.Errorf(api.InvalidSignature, "base64Signature: %v", err)
	}
	return sr, nil
}
