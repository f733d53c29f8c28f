package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"
)

// decodeJSON reads one JSON value from the request body into v, strictly:
// the content type must be JSON, the body at most limit bytes, unknown
// fields, wrong types and trailing data are errors. Every failure is a
// Problem a client can act on.
func decodeJSON(c echo.Context, limit int64, v any) error {
	if err := checkJSONContentType(c.Request().Header.Get(echo.HeaderContentType)); err != nil {
		return err
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Response(), c.Request().Body, limit))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return problem(kindBodyTooLarge, "the body exceeds %d bytes", limit)
		}
		return problem(kindMalformedRequest, "reading the body: %v", err)
	}
	return unmarshalStrict(body, v)
}

// unmarshalStrict is json.Unmarshal without leniency: unknown fields,
// anything after the value and a key repeated in one object are errors.
func unmarshalStrict(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return problem(kindMalformedRequest, "the body is empty; send a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return problem(kindMalformedRequest, "%s", describeJSONError(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return problem(kindMalformedRequest, "unexpected data after the JSON value")
	}
	if key, dup := duplicateKey(body); dup {
		return problem(kindMalformedRequest, "key %q appears twice in one object", key)
	}
	return nil
}

func describeJSONError(err error) string {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return "invalid JSON at byte " + strconv.FormatInt(syntax.Offset, 10) + ": " + syntax.Error()
	case errors.As(err, &typ):
		if typ.Field != "" {
			return "field " + typ.Field + " must be " + jsonTypeName(typ.Type.String()) + ", not a JSON " + typ.Value
		}
		return "the body must be a JSON object, not a JSON " + typ.Value
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

func checkJSONContentType(ct string) error {
	if ct == "" {
		return problem(kindUnsupportedMedia, "missing Content-Type; send application/json")
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
		return problem(kindUnsupportedMedia, "Content-Type %q is not JSON; send application/json", ct)
	}
	return nil
}

// encodeJSON writes v as one line of JSON.
func encodeJSON(w io.Writer, v any) error {
	return json.NewEncoder(w).Encode(v)
}
