package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"smartmeters/crypto"
	"smartmeters/server/api"
	"smartmeters/server/ratelimit"
	"smartmeters/store"
)

// Config is the configuration of the ingest path. A zero field means zero,
// not its default: start from DefaultConfig. Now may be nil for time.Now.
type Config struct {
	MinRSABits   int           // smallest RSA modulus accepted
	MaxClockSkew time.Duration // how far ahead of the clock a reading may be
	MaxBatch     int           // most readings in one batch report

	// Group commit: readings verified by concurrent reports are written
	// together, at most BatchMax in one statement, waiting at most BatchWait
	// (0: not at all) for a batch to fill; Committers batches may be in
	// flight at once, each bounded by CommitTimeout.
	BatchMax      int
	BatchWait     time.Duration
	Committers    int
	CommitTimeout time.Duration

	KeyCacheSize     int           // registered keys kept parsed in memory
	UnknownKeyTTL    time.Duration // how long an unknown or revoked key is remembered
	KeyLookupTimeout time.Duration // bound on a key lookup that goes to the store

	// RatePerKey limits the readings a second each meter may have stored,
	// with bursts of RateBurstPerKey (0: ten seconds' worth); 0 means no
	// limit.
	RatePerKey      float64
	RateBurstPerKey int

	Now func() time.Time
}

// DefaultConfig returns the ingest path's defaults.
func DefaultConfig() Config {
	return Config{
		MinRSABits:       2048,
		MaxClockSkew:     5 * time.Minute,
		MaxBatch:         1000,
		BatchMax:         1000,
		BatchWait:        2 * time.Millisecond,
		Committers:       2,
		CommitTimeout:    5 * time.Second,
		KeyCacheSize:     100_000,
		UnknownKeyTTL:    2 * time.Second,
		KeyLookupTimeout: 2 * time.Second,
	}
}

// Service runs the ingest path. It is safe for concurrent use.
type Service struct {
	cfg      Config
	keys     *KeyCache
	commits  *committer
	perKey   *ratelimit.Buckets[int64]
	observer Observer
	metrics  *metrics
	logger   *slog.Logger
}

// New returns a Service that looks keys up in keys and stores readings in
// readings, registering its metrics on reg and telling observer (which may
// be nil) of every outcome. Call Close when no report can arrive any more.
func New(cfg Config, keys KeyStore, readings ReadingStore, observer Observer, reg prometheus.Registerer, logger *slog.Logger) (*Service, error) {
	for _, f := range []struct {
		name string
		v    int
	}{{"MinRSABits", cfg.MinRSABits}, {"MaxBatch", cfg.MaxBatch}, {"BatchMax", cfg.BatchMax}, {"Committers", cfg.Committers}, {"KeyCacheSize", cfg.KeyCacheSize}} {
		if f.v < 1 {
			return nil, fmt.Errorf("ingest: %s %d: must be at least 1", f.name, f.v)
		}
	}
	for _, f := range []struct {
		name string
		v    time.Duration
	}{{"MaxClockSkew", cfg.MaxClockSkew}, {"CommitTimeout", cfg.CommitTimeout}, {"UnknownKeyTTL", cfg.UnknownKeyTTL}, {"KeyLookupTimeout", cfg.KeyLookupTimeout}} {
		if f.v <= 0 {
			return nil, fmt.Errorf("ingest: %s %s: must be positive", f.name, f.v)
		}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if observer == nil {
		observer = nopObserver{}
	}
	m := newMetrics(reg)
	return &Service{
		cfg:      cfg,
		keys:     newKeyCache(cfg, keys, m),
		commits:  newCommitter(readings, cfg.Committers, cfg.BatchMax, cfg.BatchWait, cfg.CommitTimeout, m, logger),
		perKey:   ratelimit.New[int64](cfg.RatePerKey, cfg.RateBurstPerKey),
		observer: observer,
		metrics:  m,
		logger:   logger,
	}, nil
}

// Keys returns the key cache, for whoever changes keys or follows the
// changes made elsewhere.
func (s *Service) Keys() *KeyCache { return s.keys }

// Close stops the group commit after committing what is queued.
func (s *Service) Close() { s.commits.close() }

// Transport is the way a report came in, by which received readings are
// counted.
type Transport string

// The transports readings come in by.
const (
	HTTP Transport = "http" // POST /reportReading and /reportReadings
	MQTT Transport = "mqtt" // the MQTT intake
)

// Result is the outcome of one reading: its HTTP status and answer, or the
// problem that refused it.
type Result struct {
	Code     int // http.StatusCreated, http.StatusOK, or Problem.Status
	Response api.ReportResponse
	Problem  *api.Problem

	// Fingerprint is that of the reading's public key, and Timestamp the
	// reading's, as far as the report could be read (zero otherwise),
	// refused or not: what a client needs to tell which reading the
	// result is about.
	Fingerprint crypto.Fingerprint
	Timestamp   int64
}

// Answer is r as one result of a batch: the status and fields that POST
// /reportReading would have answered, flattened into one object.
func (r Result) Answer() api.BatchResult {
	if p := r.Problem; p != nil {
		return api.BatchResult{Status: p.Status, Type: p.Type, Title: p.Title, Detail: p.Detail}
	}
	return api.BatchResult{Status: r.Code, Result: r.Response.Status, MeterID: r.Response.MeterID, Timestamp: r.Response.Timestamp}
}

// Report stores the reading of body, the JSON of one api.ReportRequest
// that came in by via, and returns its outcome. Every refusal is a Result
// with a Problem, and is counted.
func (s *Service) Report(ctx context.Context, via Transport, body []byte) Result {
	req, err := decodeRequest(body)
	if err != nil {
		return s.refused(err, 0)
	}
	s.metrics.received(via).Inc()
	sr, err := decodeReport(&req)
	res := s.report(ctx, sr, err)
	res.Fingerprint, res.Timestamp = sr.fp, sr.reading.Timestamp
	return res
}

// report runs the checks of a decoded report, whose decoding failed with
// err if not nil, and stores it.
func (s *Service) report(ctx context.Context, sr signedReading, err error) Result {
	if err != nil {
		return s.refused(err, 0)
	}
	c, meterID, err := s.check(ctx, sr)
	if err != nil {
		return s.refused(err, meterID)
	}
	results, err := s.commits.submit(ctx, []store.Reading{c.row})
	if err != nil {
		c.token.Return(s.cfg.Now())
		return s.refused(s.storeFailure(err), 0)
	}
	return s.outcome(c, results[0])
}

// ReportBatch stores the readings of body, a JSON array of
// api.ReportRequest that came in by via, and returns one Result per reading, in order. A body
// that is not such an array, or holds none or more than MaxBatch, is
// refused as a whole with a *api.Problem. Verification is spread over the
// cores and the valid readings go to the group commit together.
func (s *Service) ReportBatch(ctx context.Context, via Transport, body []byte) ([]Result, error) {
	// Count before decoding: a body within the size limit can hold a
	// million tiny elements, and decoding them all would cost many times
	// the memory budget's charge for the body.
	if n := arrayLen(body, s.cfg.MaxBatch); n > s.cfg.MaxBatch {
		return nil, s.Refuse(api.Errorf(api.BatchTooLarge, "more than %d readings in one request; at most %d are allowed", s.cfg.MaxBatch, s.cfg.MaxBatch))
	}
	reqs, err := decodeRequests(body)
	if err != nil {
		return nil, s.Refuse(err)
	}
	if len(reqs) == 0 {
		return nil, s.Refuse(api.Errorf(api.InvalidField, "the array is empty; send 1 to %d readings", s.cfg.MaxBatch))
	}
	if len(reqs) > s.cfg.MaxBatch {
		return nil, s.Refuse(api.Errorf(api.BatchTooLarge, "%d readings in one request; at most %d are allowed", len(reqs), s.cfg.MaxBatch))
	}
	s.metrics.received(via).Add(float64(len(reqs)))

	cs := make([]checked, len(reqs))
	meters := make([]int64, len(reqs))
	errs := make([]error, len(reqs))
	results := make([]Result, len(reqs))
	s.checkAll(ctx, reqs, cs, meters, errs, results)

	var valid []store.Reading
	var validIdx []int
	for i, err := range errs {
		if err == nil {
			valid = append(valid, cs[i].row)
			validIdx = append(validIdx, i)
		} else {
			results[i] = identified(s.refused(err, meters[i]), results[i])
		}
	}
	if len(valid) > 0 {
		commits, err := s.commits.submit(ctx, valid)
		for j, i := range validIdx {
			if err != nil {
				cs[i].token.Return(s.cfg.Now())
				results[i] = identified(s.refused(s.storeFailure(err), 0), results[i])
				continue
			}
			results[i] = identified(s.outcome(cs[i], commits[j]), results[i])
		}
	}
	return results, nil
}

// Refuse counts a report refused before it could be decoded (a body too
// large, of the wrong type) and returns err.
func (s *Service) Refuse(err error) error {
	var p *api.Problem
	if errors.As(err, &p) {
		s.count(p, 0)
	}
	return err
}

// refused counts a refused reading and returns its Result. err is a
// *api.Problem or, for a bug, anything else, which is logged and answered
// as internal. meterID is the meter the refusal is attributed to: 0 unless
// the reading's signature verified.
func (s *Service) refused(err error, meterID int64) Result {
	var p *api.Problem
	if !errors.As(err, &p) {
		s.logger.Error("reading failed", "err", err)
		p = api.Errorf(api.Internal, "internal error")
	}
	s.count(p, meterID)
	return Result{Code: p.Status, Problem: p}
}

func (s *Service) count(p *api.Problem, meterID int64) {
	slug := p.Slug()
	s.metrics.rejected.WithLabelValues(slug).Inc()
	s.observer.Rejected(slug, meterID, s.cfg.Now())
}

// checked is a reading that passed every check: the row to store, and the
// token of its meter's allowance, given back unless the row is stored.
type checked struct {
	row   store.Reading
	fp    crypto.Fingerprint // of the key that signed it
	token ratelimit.Token
}

// identified is res with the fingerprint and timestamp of id.
func identified(res, id Result) Result {
	res.Fingerprint, res.Timestamp = id.Fingerprint, id.Timestamp
	return res
}

// check runs every test a decoded report must pass before it is stored,
// cheapest first so that an unknown key costs no signature verification:
// look the key up, verify, check the clock and the allowance. It returns
// the reading to store, or a problem and the meter it is attributed to.
func (s *Service) check(ctx context.Context, sr signedReading) (checked, int64, error) {
	mk, err := s.lookupKey(ctx, sr.fp)
	if err != nil {
		return checked{}, 0, err
	}
	return s.verify(sr, mk)
}

// checkAll runs check on every request, leaving the outcome at the same
// index, and the fingerprint and timestamp read in ids. Decoding and key
// lookups (memory, mostly) run in order; signature verification, the
// costly part, runs on all cores.
func (s *Service) checkAll(ctx context.Context, reqs []api.ReportRequest, cs []checked, meters []int64, errs []error, ids []Result) {
	type job struct {
		sr signedReading
		mk meterKey
	}
	jobs := make([]job, len(reqs))
	for i := range reqs {
		sr, err := decodeReport(&reqs[i])
		ids[i].Fingerprint, ids[i].Timestamp = sr.fp, sr.reading.Timestamp
		if err == nil {
			jobs[i].mk, err = s.lookupKey(ctx, sr.fp)
		}
		jobs[i].sr, errs[i] = sr, err
	}
	workers := min(runtime.GOMAXPROCS(0), (len(reqs)+7)/8)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(reqs) {
					return
				}
				if errs[i] == nil {
					cs[i], meters[i], errs[i] = s.verify(jobs[i].sr, jobs[i].mk)
				}
			}
		})
	}
	wg.Wait()
}

// lookupKey returns the meter key registered under fp, or the unknown-key
// or key-revoked problem.
func (s *Service) lookupKey(ctx context.Context, fp crypto.Fingerprint) (meterKey, error) {
	mk, err := s.keys.lookup(ctx, fp)
	if errors.Is(err, errUnknownKey) {
		return meterKey{}, api.Errorf(api.UnknownKey, "no meter is registered with this public key (fingerprint %s)", fp)
	}
	if errors.Is(err, errRevokedKey) {
		return meterKey{}, api.Errorf(api.KeyRevoked, "this public key (fingerprint %s) has been revoked", fp)
	}
	if errors.Is(err, errPolicyKey) {
		return meterKey{}, api.Errorf(api.InvalidKey, "%v", err)
	}
	if err != nil {
		return meterKey{}, s.storeFailure(err)
	}
	return mk, nil
}

// verify checks the signature of a reading whose key is known, then the
// clock and the meter's allowance. A signature that does not verify says
// nothing about the meter (anyone who knows its public key can send one):
// it is counted as a forgery against the meter and attributed to no one.
// A reading that verified is the meter's own, refused or not.
func (s *Service) verify(sr signedReading, mk meterKey) (checked, int64, error) {
	start := time.Now()
	err := mk.key.Verify(sr.reading, sr.signature)
	mk.observeVerify.Observe(time.Since(start).Seconds())
	now := s.cfg.Now()
	if err != nil {
		s.observer.Forged(mk.meterID, now)
		return checked{}, 0, api.Errorf(api.InvalidSignature, "%v", err)
	}
	if ahead := time.UnixMilli(sr.reading.Timestamp).Sub(now); ahead > s.cfg.MaxClockSkew {
		return checked{}, mk.meterID, api.Errorf(api.TimestampFuture, "timestamp %d is %s ahead of the server clock; at most %s is allowed",
			sr.reading.Timestamp, ahead.Round(time.Millisecond), s.cfg.MaxClockSkew)
	}
	tok, err := s.allowReading(mk.meterID, now)
	if err != nil {
		return checked{}, mk.meterID, err
	}
	row := store.Reading{MeterID: mk.meterID, KeySeq: mk.seq, Reading: sr.reading, Signature: sr.signature, ReceivedAt: now.UTC()}
	return checked{row: row, fp: sr.fp, token: tok}, mk.meterID, nil
}

// allowReading takes one token of meter id's bucket, or returns the
// rate-limited problem. It is called only once a reading's signature has
// verified, so that a forger, who knows a meter's public key, cannot spend
// that meter's allowance; and the token is given back unless the reading
// is stored (see outcome), so that a replayed reading, a duplicate, costs
// nothing either: the limit counts the readings a meter has stored.
func (s *Service) allowReading(id int64, now time.Time) (ratelimit.Token, error) {
	tok, ok, wait := s.perKey.Reserve(id, now)
	if ok {
		return tok, nil
	}
	p := api.Errorf(api.RateLimited, "meter %d reports more than %g readings a second; retry in %s",
		id, s.perKey.Rate(), wait.Round(time.Millisecond))
	p.RetryAfter = wait
	return tok, p
}

// outcome turns what the store did with a reading into its Result, gives
// back the meter's token unless the reading was stored, and counts it.
func (s *Service) outcome(c checked, res commitResult) Result {
	row := c.row
	if res.err != nil || res.outcome != store.Stored {
		c.token.Return(s.cfg.Now())
	}
	if res.err != nil {
		// A store failure says nothing about the meter.
		return s.refused(s.storeFailure(res.err), 0)
	}
	switch res.outcome {
	case store.Stored:
		s.metrics.stored.Inc()
		s.observer.Stored(row.MeterID, row.Reading, row.ReceivedAt)
		return Result{Code: http.StatusCreated, Response: api.ReportResponse{Status: api.StatusStored, MeterID: row.MeterID, Timestamp: row.Timestamp}}
	case store.Duplicate:
		s.metrics.duplicate.Inc()
		return Result{Code: http.StatusOK, Response: api.ReportResponse{Status: api.StatusDuplicate, MeterID: row.MeterID, Timestamp: row.Timestamp}}
	case store.Conflict:
		return s.refused(api.Errorf(api.ReadingConflict, "meter %d already has a different reading at timestamp %d", row.MeterID, row.Timestamp), row.MeterID)
	case store.Decreased:
		return s.refused(api.Errorf(api.RegisterDecreased, "whIn %d or whOut %d at timestamp %d is below meter %d's reading before it in time or above its reading after it; registers are cumulative",
			row.WhIn, row.WhOut, row.Timestamp, row.MeterID), row.MeterID)
	case store.KeyReplaced:
		// The key was replaced after this server looked it up: what it
		// remembers of it is stale.
		s.keys.Forget(c.fp)
		return s.refused(api.Errorf(api.UnknownKey, "this public key (fingerprint %s) is no longer meter %d's key", c.fp, row.MeterID), 0)
	case store.KeyRevoked:
		s.keys.Forget(c.fp)
		return s.refused(api.Errorf(api.KeyRevoked, "this public key (fingerprint %s) has been revoked", c.fp), 0)
	}
	return s.refused(fmt.Errorf("unexpected store outcome %s", res.outcome), row.MeterID)
}

// storeFailure turns an error of the store into a 503 the client may
// retry: nothing was acknowledged, so a retry loses nothing and duplicates
// nothing. The error itself goes to the log.
func (s *Service) storeFailure(err error) error {
	var p *api.Problem
	if errors.As(err, &p) {
		return err
	}
	if errors.Is(err, context.Canceled) {
		// The client went away before its reading was queued: nothing
		// failed, and nothing was stored.
		s.logger.Debug("client gone before commit", "err", err)
	} else {
		s.logger.Error("store failure", "err", err)
	}
	if errors.Is(err, errClosed) {
		return api.Errorf(api.Unavailable, "the server is shutting down; retry")
	}
	return api.Errorf(api.Unavailable, "the store did not take the reading; retry")
}
