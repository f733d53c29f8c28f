package reporting

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"smartmeters/crypto"
	"smartmeters/server/api"
	"smartmeters/store/energy"
)

// energyBucketJSON is the energy of one bucket [start, end). WhIn and WhOut
// are null, and Complete false, when a register cannot be interpolated at
// one of the bucket's edges: no reading at or before it, or none at or
// after it.
type energyBucketJSON struct {
	Start    time.Time `json:"start"`
	End      time.Time `json:"end"`
	WhIn     *int64    `json:"whIn"`
	WhOut    *int64    `json:"whOut"`
	Complete bool      `json:"complete"`
}

type consumptionJSON struct {
	MeterID int64              `json:"meterId"`
	Bucket  string             `json:"bucket"`
	From    time.Time          `json:"from"`
	To      time.Time          `json:"to"`
	Buckets []energyBucketJSON `json:"buckets"`
	// Total sums the complete buckets.
	Total struct {
		WhIn  int64 `json:"whIn"`
		WhOut int64 `json:"whOut"`
	} `json:"total"`
}

// handleConsumption reports a meter's energy per bucket:
// GET /meters/{id}/consumption?from=&to=&bucket=15m|1h|1d|1mo&tz= (also
// 1m, 5m). The window is widened to whole buckets and defaults to the last
// 24 hours in 1h buckets; days and months are those of tz, UTC by default.
func (a *API) handleConsumption(c echo.Context) error {
	id, err := api.ParseMeterID(c.Param("id"))
	if err != nil {
		return err
	}
	q := queryParams{c: c}
	b, edges, err := q.window("1h", 24*time.Hour, a.now())
	if err != nil {
		return err
	}
	from, to := edges[0], edges[len(edges)-1]
	if _, err := a.meterSummary(c, id); err != nil {
		return err
	}
	// Days and months: the readings around each edge, two index probes a
	// bucket, whatever the readings in the window; finer buckets: every
	// reading in the window, which a bucket of a few minutes holds few of.
	var rs []crypto.Reading
	if b.width == 0 || b.width >= 24*time.Hour {
		ms := make([]int64, len(edges))
		for i, e := range edges {
			ms[i] = e.UnixMilli()
		}
		rs, err = a.store.RegistersAround(c.Request().Context(), id, ms)
	} else {
		rs, err = a.store.RegisterSeries(c.Request().Context(), id, from.UnixMilli(), to.UnixMilli())
	}
	if err != nil {
		return err
	}
	out := consumptionJSON{MeterID: id, Bucket: b.name, From: from, To: to}
	buckets := energy.ApportionEdges(rs, edges)
	out.Buckets = make([]energyBucketJSON, len(buckets))
	for i, eb := range buckets {
		out.Buckets[i] = energyBucketJSON{Start: eb.Start, End: eb.End}
		if eb.Complete {
			out.Buckets[i].WhIn, out.Buckets[i].WhOut, out.Buckets[i].Complete = &eb.WhIn, &eb.WhOut, true
			out.Total.WhIn += eb.WhIn
			out.Total.WhOut += eb.WhOut
		}
	}
	return c.JSON(http.StatusOK, out)
}
