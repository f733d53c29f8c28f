package reporting

import (
	"encoding/base64"
	"encoding/csv"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"smartmeters/server/api"
	"smartmeters/store"
)

// exportFlushRows is how many rows are written between flushes.
const exportFlushRows = 500

// handleExport streams every reading of a meter as CSV, row by row as the
// store returns them: GET /meters/{id}/export.csv.
func (a *API) handleExport(c echo.Context) error {
	id, err := api.ParseMeterID(c.Param("id"))
	if err != nil {
		return err
	}
	ms, err := a.meterSummary(c, id)
	if err != nil {
		return err
	}
	keys, err := a.meterKeyTimeline(c.Request().Context(), ms)
	if err != nil {
		return err
	}
	h := c.Response().Header()
	h.Set(echo.HeaderContentType, "text/csv; charset=utf-8")
	h.Set(echo.HeaderContentDisposition, fmt.Sprintf(`attachment; filename="meter-%d.csv"`, id))
	c.Response().WriteHeader(http.StatusOK)

	rc := http.NewResponseController(c.Response())
	w := csv.NewWriter(c.Response())
	if err := w.Write(api.ExportColumns); err != nil {
		return err
	}
	meter := []string{strconv.FormatInt(id, 10), ms.Username}
	row := make([]string, 0, len(api.ExportColumns))
	n := 0
	err = a.store.EachReading(c.Request().Context(), id, func(r store.Reading) error {
		k := keys.keyFor(r)
		row = append(row[:0], meter...)
		row = append(row, k.algorithm, k.base64,
			strconv.FormatInt(r.Timestamp, 10),
			strconv.FormatInt(r.WhIn, 10),
			strconv.FormatInt(r.WhOut, 10),
			base64.StdEncoding.EncodeToString(r.Signature),
			r.ReceivedAt.Format(time.RFC3339Nano),
		)
		if err := w.Write(row); err != nil {
			return err
		}
		if n++; n%exportFlushRows == 0 {
			w.Flush()
			// A large export outlives the server's write timeout.
			_ = rc.SetWriteDeadline(time.Now().Add(30 * time.Second))
			return w.Error()
		}
		return nil
	})
	w.Flush()
	if err == nil {
		err = w.Error()
	}
	if err != nil {
		// The status is sent; all that is left is to cut the body short so
		// the client sees an incomplete file rather than a shorter one.
		a.logger.WarnContext(c.Request().Context(), "export aborted", "meter", id, "rows", n, "err", err)
		panic(http.ErrAbortHandler)
	}
	return nil
}
