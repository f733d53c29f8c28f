package simulator

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"smartmeters/crypto"
	"smartmeters/server/api"
)

// BenchConfig configures Bench.
type BenchConfig struct {
	PublicURL   string
	AdminURL    string
	Meters      int            // meters registered for the run
	KeyType     crypto.KeyType // default ed25519
	Batch       int            // readings per request; 1 uses /reportReading, more /reportReadings
	Duration    time.Duration  // how long to drive the server; bounded by Total
	Total       int            // readings pre-signed; 0 sizes them from Duration
	Concurrency int            // requests in flight; default 64
	Progress    io.Writer      // one line per phase; nil for none
	RootCAs     *x509.CertPool // CAs trusted for https URLs; nil means the system's
	// MQTT, when its Broker is set, carries the readings through an MQTT
	// broker: each body is published with QoS 1 and is done once the
	// results of all its readings have come. Meters are still registered
	// on AdminURL.
	MQTT MQTTConfig
}

// BenchResult is what one Bench run measured.
type BenchResult struct {
	Readings       int64         // readings sent
	Stored         int64         // answered 201
	Duplicates     int64         // answered 200 (a duplicate)
	Errors         int64         // any other answer, or no answer
	Requests       int64         // HTTP requests (MQTT messages) completed
	Elapsed        time.Duration // time spent driving the server
	P50, P99       time.Duration // request latency
	VerifyOneCore  float64       // signatures this machine verifies per second on one core
	VerifyAllCores float64       // the same on all cores
	ServerCPU      float64       // seconds of CPU the server process used while driven
	// LastError tells why the last request that counted errors did: a
	// network error, or the answer it got. Empty when Errors is 0.
	LastError string
}

// ReadingsPerSecond is the rate of readings stored.
func (r BenchResult) ReadingsPerSecond() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Stored) / r.Elapsed.Seconds()
}

// Ratio is the stored rate over the machine's all-core verify ceiling.
func (r BenchResult) Ratio() float64 {
	if r.VerifyAllCores <= 0 {
		return 0
	}
	return r.ReadingsPerSecond() / r.VerifyAllCores
}

// ServerCPUPerReading is the server's CPU time per stored reading, in
// microseconds.
func (r BenchResult) ServerCPUPerReading() float64 {
	if r.Stored <= 0 {
		return 0
	}
	return r.ServerCPU * 1e6 / float64(r.Stored)
}

// Efficiency is the cost of verifying one reading's signature on one core
// over the server's CPU per stored reading: 1 would be a server that does
// nothing but verify. Unlike the ratio, it does not depend on how the
// machine's cores were shared between the server and the load.
func (r BenchResult) Efficiency() float64 {
	perReading := r.ServerCPUPerReading()
	if r.VerifyOneCore <= 0 || perReading <= 0 {
		return 0
	}
	return 1e6 / r.VerifyOneCore / perReading
}

// Line is the result as one machine-readable line.
func (r BenchResult) Line() string {
	return fmt.Sprintf("readings_per_s=%.0f p50_ms=%.2f p99_ms=%.2f errors=%d verify_ceiling_per_s=%.0f ratio=%.2f server_cpu_us_per_reading=%.0f efficiency=%.2f",
		r.ReadingsPerSecond(), ms(r.P50), ms(r.P99), r.Errors, r.VerifyAllCores, r.Ratio(), r.ServerCPUPerReading(), r.Efficiency())
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// presignRate sizes a duration-bound run: more readings a second than the
// server could store on this class of machine, so that the run ends by the
// clock, not by running out.
const presignRate = 40_000

// Bench registers Meters fresh meters, signs their readings before the
// clock starts (so that client signing is not what is measured), drives
// the server as fast as Concurrency requests in flight allow until
// Duration passes or the readings run out, reading the server's CPU time
// from the admin listener's /metrics before and after, then measures this
// machine's signature verification ceiling for the key type.
func Bench(ctx context.Context, cfg BenchConfig) (BenchResult, error) {
	if cfg.KeyType == "" {
		cfg.KeyType = crypto.Ed25519
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 64
	}
	if cfg.Batch <= 0 || cfg.Meters <= 0 || (cfg.Duration <= 0 && cfg.Total <= 0) {
		return BenchResult{}, errors.New("bench needs meters, a batch size and a duration or a total")
	}
	progress := cfg.Progress
	if progress == nil {
		progress = io.Discard
	}
	sim, err := New(Config{
		PublicURL: cfg.PublicURL, AdminURL: cfg.AdminURL, Meters: cfg.Meters, Interval: time.Second,
		KeyType: cfg.KeyType, Concurrency: cfg.Concurrency, RootCAs: cfg.RootCAs,
	})
	if err != nil {
		return BenchResult{}, err
	}
	start := time.Now()
	ids, err := sim.generateAndRegister(ctx)
	if err != nil {
		return BenchResult{}, err
	}
	fmt.Fprintf(progress, "registered %d %s meters in %s\n", len(ids), cfg.KeyType, time.Since(start).Round(time.Millisecond))

	total := cfg.Total
	if total <= 0 {
		total = int(cfg.Duration.Seconds() * presignRate)
	}
	start = time.Now()
	bodies, keys, err := presign(ctx, ids, total, cfg.Batch, time.Now())
	if err != nil {
		return BenchResult{}, err
	}
	var link *mqttLink
	if cfg.MQTT.Broker != "" {
		if link, err = dialMQTT(ctx, cfg.MQTT.withDefaults()); err != nil {
			return BenchResult{}, err
		}
		defer link.close()
	}
	fmt.Fprintf(progress, "signed %d readings in %d requests in %s\n", total, len(bodies), time.Since(start).Round(time.Millisecond))

	cpu0, err := serverCPU(ctx, sim.client.http, cfg.AdminURL)
	if err != nil {
		return BenchResult{}, err
	}
	res := drive(ctx, sim.client.http, link, cfg, bodies, keys, total)
	lastErr := ""
	if res.LastError != "" {
		lastErr = " (last error: " + oneLine(res.LastError) + ")"
	}
	fmt.Fprintf(progress, "sent %d readings in %s: %d stored, %d duplicates, %d errors%s\n",
		res.Readings, res.Elapsed.Round(time.Millisecond), res.Stored, res.Duplicates, res.Errors, lastErr)
	cpu1, err := serverCPU(ctx, sim.client.http, cfg.AdminURL)
	if err != nil {
		return BenchResult{}, err
	}
	res.ServerCPU = cpu1 - cpu0

	res.VerifyOneCore, res.VerifyAllCores, err = VerifyCeiling(ids[0].Key, time.Second)
	if err != nil {
		return BenchResult{}, err
	}
	return res, nil
}

// presign builds the request bodies: total readings, round robin over the
// meters, each meter's registers rising a second apart and ending before
// now, grouped batch to a body; and the names of each body's readings.
func presign(ctx context.Context, ids []MeterKey, total, batch int, now time.Time) ([][]byte, [][]resultKey, error) {
	pubs := make([]string, len(ids))
	fps := make([]crypto.Fingerprint, len(ids))
	for i, id := range ids {
		pubs[i], fps[i] = id.Key.Public().Base64(), id.Key.Public().Fingerprint()
	}
	perMeter := (total + len(ids) - 1) / len(ids)
	first := now.Add(-time.Duration(perMeter+1) * time.Second).UnixMilli()
	bodies := make([][]byte, (total+batch-1)/batch)
	keys := make([][]resultKey, len(bodies))
	workers := runtime.GOMAXPROCS(0)
	var next atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				b := int(next.Add(1)) - 1
				if b >= len(bodies) || ctx.Err() != nil {
					return
				}
				lo, hi := b*batch, min((b+1)*batch, total)
				buf := make([]byte, 0, (hi-lo)*256)
				keys[b] = make([]resultKey, 0, hi-lo)
				if batch > 1 {
					buf = append(buf, '[')
				}
				for i := lo; i < hi; i++ {
					m, seq := i%len(ids), int64(i/len(ids))
					r := crypto.Reading{WhIn: 1000 + seq*7, WhOut: seq * 3, Timestamp: first + seq*1000}
					sig, err := ids[m].Key.Sign(r)
					if err != nil {
						once.Do(func() { firstErr = err })
						return
					}
					if i > lo {
						buf = append(buf, ',')
					}
					buf = api.AppendReport(buf, pubs[m], sig, r)
					keys[b] = append(keys[b], resultKey{fps[m], r.Timestamp})
				}
				if batch > 1 {
					buf = append(buf, ']')
				}
				bodies[b] = buf
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return nil, nil, fmt.Errorf("sign readings: %w", firstErr)
	}
	return bodies, keys, ctx.Err()
}

// drive sends bodies with cfg.Concurrency requests in flight until they
// run out or cfg.Duration passes: over HTTP, or through link when it is
// not nil.
func drive(ctx context.Context, hc *http.Client, link *mqttLink, cfg BenchConfig, bodies [][]byte, keys [][]resultKey, total int) BenchResult {
	url := strings.TrimRight(cfg.PublicURL, "/") + api.PathReportReading
	if cfg.Batch > 1 {
		url = strings.TrimRight(cfg.PublicURL, "/") + api.PathReportReadings
	}
	if cfg.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.Duration)
		defer cancel()
	}
	var (
		res  BenchResult
		lat  histogram
		next atomic.Int64
		wg   sync.WaitGroup
	)
	var sent, stored, dups, errs, reqs atomic.Int64
	var lastErr atomic.Pointer[string]
	start := time.Now()
	for range cfg.Concurrency {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= len(bodies) {
					return
				}
				n := int64(min(cfg.Batch, total-i*cfg.Batch))
				t0 := time.Now()
				var s, d, e int64
				var cause error
				if link != nil {
					s, d, e, cause = publish(ctx, link, bodies[i], keys[i])
				} else {
					s, d, e, cause = post(ctx, hc, url, bodies[i], cfg.Batch > 1, n)
				}
				if ctx.Err() != nil && e > 0 {
					return // cut off by the clock: not an error of the server's
				}
				if cause != nil {
					msg := cause.Error()
					lastErr.Store(&msg)
				}
				lat.record(time.Since(t0))
				sent.Add(n)
				stored.Add(s)
				dups.Add(d)
				errs.Add(e)
				reqs.Add(1)
			}
		})
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	res.Readings, res.Stored, res.Duplicates, res.Errors, res.Requests = sent.Load(), stored.Load(), dups.Load(), errs.Load(), reqs.Load()
	if msg := lastErr.Load(); msg != nil {
		res.LastError = *msg
	}
	p := lat.percentiles()
	res.P50 = time.Duration(p.P50 * float64(time.Millisecond))
	res.P99 = time.Duration(p.P99 * float64(time.Millisecond))
	return res
}

// post sends one body of n readings and counts what the server said. When
// it counts errors, cause says why the last of them was one.
func post(ctx context.Context, hc *http.Client, url string, body []byte, batch bool, n int64) (stored, dups, errs int64, cause error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, 0, n, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return 0, 0, n, err
	}
	defer resp.Body.Close()
	if !batch {
		switch resp.StatusCode {
		case http.StatusCreated:
			_, _ = io.Copy(io.Discard, resp.Body)
			return 1, 0, 0, nil
		case http.StatusOK:
			_, _ = io.Copy(io.Discard, resp.Body)
			return 0, 1, 0, nil
		}
		return 0, 0, 1, answerError(resp)
	}
	if resp.StatusCode != http.StatusOK {
		return 0, 0, n, answerError(resp)
	}
	var out struct {
		Results []struct {
			Status int    `json:"status"`
			Type   string `json:"type"`
			Detail string `json:"detail"`
		} `json:"results"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return 0, 0, n, fmt.Errorf("answer is not a batch result: %w", err)
	}
	if int64(len(out.Results)) != n {
		return 0, 0, n, fmt.Errorf("answer holds %d results for %d readings", len(out.Results), n)
	}
	for _, r := range out.Results {
		switch r.Status {
		case http.StatusCreated:
			stored++
		case http.StatusOK:
			dups++
		default:
			errs++
			cause = errors.New(reply{status: r.Status, slug: api.Slug(r.Type), detail: r.Detail}.String())
		}
	}
	return stored, dups, errs, cause
}

// answerError describes an answer that is not a success: its status, and
// the problem's type and detail when it is one.
func answerError(resp *http.Response) error {
	rep := reply{status: resp.StatusCode}
	var p struct{ Type, Detail string }
	if raw, err := io.ReadAll(io.LimitReader(resp.Body, maxReplyBytes)); err == nil && json.Unmarshal(raw, &p) == nil {
		rep.slug, rep.detail = api.Slug(p.Type), p.Detail
	}
	return errors.New(rep.String())
}

// publish publishes one body through link and counts the results of its
// readings. When it counts errors, cause says why the last of them was one.
func publish(ctx context.Context, link *mqttLink, body []byte, keys []resultKey) (stored, dups, errs int64, cause error) {
	ctx, cancel := context.WithTimeout(ctx, DefaultRequestTimeout)
	defer cancel()
	reps, err := link.exchange(ctx, body, keys)
	if err != nil {
		return 0, 0, int64(len(keys)), err
	}
	for _, r := range reps {
		switch r.status {
		case http.StatusCreated:
			stored++
		case http.StatusOK:
			dups++
		default:
			errs++
			cause = errors.New(r.String())
		}
	}
	return stored, dups, errs, cause
}

// VerifyCeiling measures how many signatures of k's type this machine
// verifies per second, on one core and on all of them, each for about d.
// The one-core figure is per second of this process's CPU where the
// system reports it, so that it does not fall when another process shares
// the core; the all-core figure is per second of wall time.
func VerifyCeiling(k *crypto.PrivateKey, d time.Duration) (oneCore, allCores float64, err error) {
	r := crypto.Reading{WhIn: 1, WhOut: 2, Timestamp: 3}
	sig, err := k.Sign(r)
	if err != nil {
		return 0, 0, err
	}
	pub := k.Public()
	run := func(workers int) (n int64, wall, cpu float64) {
		var verified atomic.Int64
		deadline := time.Now().Add(d)
		start, cpu0 := time.Now(), processCPU()
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				for i := 0; ; i++ {
					if i%16 == 0 && time.Now().After(deadline) {
						return
					}
					if pub.Verify(r, sig) == nil {
						verified.Add(1)
					}
				}
			})
		}
		wg.Wait()
		return verified.Load(), time.Since(start).Seconds(), processCPU() - cpu0
	}
	n, wall, cpu := run(1)
	if cpu <= 0 {
		cpu = wall
	}
	oneCore = float64(n) / cpu
	n, wall, _ = run(runtime.GOMAXPROCS(0))
	return oneCore, float64(n) / wall, nil
}
