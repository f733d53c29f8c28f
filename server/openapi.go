package server

import (
	_ "embed"
	"net/http"

	"github.com/labstack/echo/v4"
)

// The OpenAPI 3.1 descriptions of the two listeners, each served at its
// listener's /openapi.json. The server's tests validate every answer of
// the handler tests against them, so that they cannot drift from the code.
var (
	//go:embed openapi/public.json
	publicOpenAPI []byte
	//go:embed openapi/admin.json
	adminOpenAPI []byte
)

// serveOpenAPI returns the handler of GET /openapi.json with doc.
func serveOpenAPI(doc []byte) echo.HandlerFunc {
	return func(c echo.Context) error {
		return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, doc)
	}
}
