package reporting

import (
	"embed"
	"io/fs"
	"net/http"

	"github.com/labstack/echo/v4"

	"smartmeters/server/api"
)

// dashboardFiles is the dashboard: one HTML page, its script and style, and
// the vendored uPlot chart library (version in dashboard/vendor/uplot/VERSION).
// Nothing is built; the files are served as they are.
//
//go:embed dashboard
var dashboardFiles embed.FS

// routeDashboard serves the dashboard at / and its assets under /ui/.
func (a *API) routeDashboard(e *echo.Echo) {
	sub, err := fs.Sub(dashboardFiles, "dashboard")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	index, err := fs.ReadFile(sub, "index.html")
	if err != nil {
		panic(err)
	}
	e.GET("/", func(c echo.Context) error {
		c.Response().Header().Set("Cache-Control", "no-cache")
		return c.HTMLBlob(http.StatusOK, index)
	})
	e.GET("/ui/*", func(c echo.Context) error {
		name := c.Param("*")
		if st, err := fs.Stat(sub, name); err != nil || st.IsDir() {
			return api.Errorf(api.NotFound, "the dashboard has no file %q", name)
		}
		return echo.StaticFileHandler(name, sub)(c)
	})
}
