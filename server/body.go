package server

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"smartmeters/server/api"
	"smartmeters/server/ingest"
)

// readBody reads a JSON request body of at most limit bytes, holding room
// for it in the memory budget until release is called, once the body and
// what was decoded from it are no longer needed. The room is taken before
// the body is read, from its declared length (or limit, for a body of
// unknown length), so that a client announcing large bodies and sending
// them slowly holds no more than its share. Every failure is a Problem a
// client can act on: a Content-Type that is not JSON, a body over the
// limit, no room left, a connection that broke.
func (s *Server) readBody(c echo.Context, limit int64) (body []byte, release func(), err error) {
	release = func() {}
	req := c.Request()
	if err := checkJSONContentType(req.Header.Get(echo.HeaderContentType)); err != nil {
		return nil, release, err
	}
	size := req.ContentLength
	if size > limit {
		c.Response().Header().Set("Connection", "close") // do not read what was refused
		return nil, release, api.Errorf(api.BodyTooLarge, "the body exceeds %d bytes", limit)
	}
	if size < 0 {
		size = limit
	}
	client := netip.IPv4Unspecified()
	if ap, err := netip.ParseAddrPort(req.RemoteAddr); err == nil {
		client = clientOf(ap.Addr())
	}
	cost := 2 * size // the body, and what is decoded from it
	if !s.budget.take(client, cost) {
		c.Response().Header().Set("Connection", "close")
		p := api.Errorf(api.Overloaded, "the server has no room for another %d-byte body; retry", size)
		p.RetryAfter = time.Second
		return nil, release, p
	}
	release = func() { s.budget.give(client, cost) }
	if req.ContentLength >= 0 {
		body = make([]byte, req.ContentLength)
		_, err = io.ReadFull(req.Body, body)
	} else {
		body, err = io.ReadAll(http.MaxBytesReader(c.Response(), req.Body, limit))
	}
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, release, api.Errorf(api.BodyTooLarge, "the body exceeds %d bytes", limit)
		}
		return nil, release, api.Errorf(api.MalformedRequest, "reading the body: %v", err)
	}
	return body, release, nil
}

// decodeBody reads a JSON request body of at most limit bytes into v,
// strictly (ingest.UnmarshalStrict).
func (s *Server) decodeBody(c echo.Context, limit int64, v any) error {
	body, release, err := s.readBody(c, limit)
	defer release()
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
