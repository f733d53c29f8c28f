package server

import (
	"context"
	"errors"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/labstack/echo/v4"

	"smartmeters/store"
)

// batchResult is the outcome of one reading of POST /reportReadings: the
// same status and body the single endpoint would have answered, flattened
// into one object with its HTTP status in "status".
type batchResult struct {
	Status int `json:"status"`
	// On success:
	Result    string `json:"result,omitempty"` // "stored" or "duplicate"
	MeterID   int64  `json:"meterId,omitempty"`
	Timestamp int64  `json:"timestamp,omitempty"`
	// On failure, the problem's fields:
	Type   string `json:"type,omitempty"`
	Title  string `json:"title,omitempty"`
	Detail string `json:"detail,omitempty"`
}

type batchResponse struct {
	Results []batchResult `json:"results"`
}

// handleReportReadings stores a batch of signed readings, from one meter's
// offline buffer or a concentrator relaying many meters: POST
// /reportReadings with a JSON array. It answers 200 with one result per
// reading, in order; a malformed body as a whole is a 4xx problem.
// Verification is spread over the cores and the valid readings go to the
// group commit together.
func (s *Server) handleReportReadings(c echo.Context) error {
	var reqs []reportRequest
	if err := decodeJSON(c, s.batchBodyLimit(), &reqs); err != nil {
		return s.reject(err)
	}
	if len(reqs) == 0 {
		return s.reject(problem(kindInvalidField, "the array is empty; send 1 to %d readings", s.cfg.MaxBatch))
	}
	if len(reqs) > s.cfg.MaxBatch {
		return s.reject(problem(kindBatchTooLarge, "%d readings in one request; at most %d are allowed", len(reqs), s.cfg.MaxBatch))
	}
	s.metrics.received.Add(float64(len(reqs)))
	ctx := c.Request().Context()

	rows := make([]store.Reading, len(reqs))
	errs := make([]error, len(reqs))
	s.checkAll(ctx, reqs, rows, errs)

	results := make([]batchResult, len(reqs))
	var valid []store.Reading
	var validIdx []int
	for i, err := range errs {
		if err == nil {
			valid = append(valid, rows[i])
			validIdx = append(validIdx, i)
		}
	}
	if len(valid) > 0 {
		commits, err := s.commits.submit(ctx, valid)
		for j, i := range validIdx {
			switch {
			case err != nil:
				errs[i] = s.storeFailure(err)
			case commits[j].err != nil:
				errs[i] = s.storeFailure(commits[j].err)
			default:
				code, body, err := s.outcome(valid[j], commits[j].outcome)
				if err != nil {
					errs[i] = err
					continue
				}
				results[i] = batchResult{Status: code, Result: body.Status, MeterID: body.MeterID, Timestamp: body.Timestamp}
			}
		}
	}
	for i, err := range errs {
		if err != nil {
			results[i] = s.problemResult(c, s.reject(err))
		}
	}
	return c.JSON(http.StatusOK, batchResponse{Results: results})
}

// checkAll runs check on every request, leaving the row or the error at the
// same index. Decoding and key lookups (memory, mostly) run in order;
// signature verification, the costly part, runs on all cores.
func (s *Server) checkAll(ctx context.Context, reqs []reportRequest, rows []store.Reading, errs []error) {
	type job struct {
		sr signedReading
		mk meterKey
	}
	jobs := make([]job, len(reqs))
	for i := range reqs {
		sr, err := reqs[i].decode()
		if err == nil {
			jobs[i].mk, err = s.lookupKey(ctx, sr.fp)
		}
		jobs[i].sr, errs[i] = sr, err
	}
	workers := min(runtime.GOMAXPROCS(0), (len(reqs)+7)/8)
	var next atomic.Int64
	var wg sync.WaitGroup
	wg.Add(workers)
	for range workers {
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(reqs) {
					return
				}
				if errs[i] == nil {
					rows[i], errs[i] = s.verify(jobs[i].sr, jobs[i].mk)
				}
			}
		}()
	}
	wg.Wait()
}

// problemResult renders err as a batch result. Errors that are not problems
// are logged and reported as internal, as the error handler does.
func (s *Server) problemResult(c echo.Context, err error) batchResult {
	var p *Problem
	if !errors.As(err, &p) {
		s.logger.ErrorContext(c.Request().Context(), "batch reading failed", "err", err)
		p = problem(kindInternal, "internal error")
	}
	return batchResult{Status: p.Status, Type: p.Type, Title: p.Title, Detail: p.Detail}
}

// batchBodyLimit bounds a batch body: room for MaxBatch readings with
// RSA-4096 keys and signatures.
func (s *Server) batchBodyLimit() int64 {
	return s.cfg.MaxBodyBytes + int64(s.cfg.MaxBatch)*3<<10
}
