package server

import (
	"net/http"
	"net/http/pprof"
	rpprof "runtime/pprof"

	"github.com/labstack/echo/v4"

	"smartmeters/server/api"
)

// routePprof serves Go's profiles under /debug/pprof/ on e: the index,
// the named profiles of runtime/pprof, and the CPU profile and trace. An
// unknown profile is a not-found problem, like any unknown route.
func routePprof(e *echo.Echo) {
	wrap := func(f http.HandlerFunc) echo.HandlerFunc { return echo.WrapHandler(f) }
	e.GET("/debug/pprof/", wrap(pprof.Index))
	e.GET("/debug/pprof/cmdline", wrap(pprof.Cmdline))
	e.GET("/debug/pprof/profile", wrap(pprof.Profile))
	e.GET("/debug/pprof/symbol", wrap(pprof.Symbol))
	e.POST("/debug/pprof/symbol", wrap(pprof.Symbol))
	e.GET("/debug/pprof/trace", wrap(pprof.Trace))
	e.GET("/debug/pprof/:name", func(c echo.Context) error {
		name := c.Param("name")
		if rpprof.Lookup(name) == nil {
			return api.Errorf(api.NotFound, "no profile %q; /debug/pprof/ lists them", name)
		}
		pprof.Handler(name).ServeHTTP(c.Response(), c.Request())
		return nil
	})
}
