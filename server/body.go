package server

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"smartmeters/server/api"
	"smartmeters/server/ingest"
)

// readBody reads a JSON request body of at most limit bytes. Every failure
// is a Problem a client can act on: a Content-Type that is not JSON, a
// body over the limit, a connection that broke.
func readBody(c echo.Context, limit int64) ([]byte, error) {
	if err := checkJSONContentType(c.Request().Header.Get(echo.HeaderContentType)); err != nil {
		return nil, err
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Response(), c.Request().Body, limit))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, api.Errorf(api.BodyTooLarge, "the body exceeds %d bytes", limit)
		}
		return nil, api.Errorf(api.MalformedRequest, "reading the body: %v", err)
	}
	return body, nil
}

// decodeBody reads a JSON request body of at most limit bytes into v,
// strictly (ingest.UnmarshalStrict).
func decodeBody(c echo.Context, limit int64, v any) error {
	body, err := readBody(c, limit)
	if err != nil {
		return err
	}
	return ingest.UnmarshalStrict(body, v)
}

func checkJSONContentType(ct string) error {
	if ct == "" {
		return api.Errorf(api.UnsupportedMedia, "missing Content-Type; send application/json")
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
		return api.Errorf(api.UnsupportedMedia, "Content-Type %q is not JSON; send application/json", ct)
	}
	return nil
}

// encodeJSON writes v as one line of JSON.
func encodeJSON(w io.Writer, v any) error {
	return json.NewEncoder(w).Encode(v)
}
