package server

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"smartmeters/server/api"
	"smartmeters/server/ingest"
)

// handleReportReading stores one signed reading: POST /reportReading.
func (s *Server) handleReportReading(c echo.Context) error {
	body, release, err := s.readBody(c, s.cfg.MaxBodyBytes)
	defer release()
	if err != nil {
		return s.ingest.Refuse(err)
	}
	done, err := s.acquireSlot()
	if err != nil {
		return s.ingest.Refuse(err)
	}
	defer done()
	res := s.ingest.Report(c.Request().Context(), ingest.HTTP, body)
	if res.Problem != nil {
		return res.Problem
	}
	return c.JSON(res.Code, res.Response)
}

// handleReportReadings stores a batch of signed readings, from one meter's
// offline buffer or a concentrator relaying many meters: POST
// /reportReadings with a JSON array. It answers 200 with one result per
// reading, in order, and with Retry-After when a result asks for a retry;
// a malformed body as a whole is a problem.
func (s *Server) handleReportReadings(c echo.Context) error {
	body, release, err := s.readBody(c, s.batchBodyLimit())
	defer release()
	if err != nil {
		return s.ingest.Refuse(err)
	}
	done, err := s.acquireSlot()
	if err != nil {
		return s.ingest.Refuse(err)
	}
	defer done()
	results, err := s.ingest.ReportBatch(c.Request().Context(), ingest.HTTP, body)
	if err != nil {
		return err
	}
	out := api.BatchResponse{Results: make([]api.BatchResult, len(results))}
	for i, r := range results {
		if r.Problem != nil {
			setRetryAfter(c, r.Problem)
		}
		out.Results[i] = r.Answer()
	}
	return c.JSON(http.StatusOK, out)
}

// batchBodyLimit bounds a batch body: room for MaxBatch readings with
// RSA-4096 keys and signatures.
func (s *Server) batchBodyLimit() int64 {
	return s.cfg.MaxBodyBytes + int64(s.cfg.Ingest.MaxBatch)*3<<10
}
