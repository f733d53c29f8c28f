package simulator

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"smartmeters/server/api"
)

// maxReplyBytes bounds how much of an answer is read.
const maxReplyBytes = 64 << 10

// errInterrupted ends a delivery cut short because the run was stopped.
var errInterrupted = errors.New("interrupted")

// newTransport returns a transport that keeps one idle keep-alive
// connection per allowed request in flight, so that a steady run opens
// its connections once.
func newTransport(concurrency int, rootCAs *x509.CertPool) *http.Transport {
	return &http.Transport{
		TLSClientConfig:       &tls.Config{RootCAs: rootCAs},
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          concurrency + 16,
		MaxIdleConnsPerHost:   concurrency,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		ForceAttemptHTTP2:     true,
	}
}

// isCertificateError reports whether err, from an HTTPS request, is the
// client's refusal of the server's certificate, which no retry mends.
func isCertificateError(err error) bool {
	var verify *tls.CertificateVerificationError
	var unknown x509.UnknownAuthorityError
	var host x509.HostnameError
	var invalid x509.CertificateInvalidError
	return errors.As(err, &verify) || errors.As(err, &unknown) || errors.As(err, &host) || errors.As(err, &invalid)
}

// reply is a server's answer to one request.
type reply struct {
	status     int
	slug       string        // problem type slug, for a problem answer
	detail     string        // problem detail
	retryAfter time.Duration // from Retry-After; 0 if absent
	body       []byte
}

// retryable reports whether the request may succeed if sent again.
func (r reply) retryable() bool {
	return r.status == http.StatusTooManyRequests || r.status >= 500
}

// reason names a final answer that is not a success: its problem type
// slug, or "http-STATUS" for an answer that is not a problem.
func (r reply) reason() string {
	if r.slug != "" {
		return r.slug
	}
	return "http-" + strconv.Itoa(r.status)
}

func (r reply) String() string {
	if r.detail != "" {
		return fmt.Sprintf("%d %s: %s", r.status, r.reason(), r.detail)
	}
	return fmt.Sprintf("%d %s", r.status, r.reason())
}

// client posts JSON to the server and retries what may succeed later.
type client struct {
	http *http.Client
	cfg  Config
	st   *stats
}

// send posts body to url until an answer is final: anything but a network
// error, a 5xx or a 429. Each retry resends the same bytes after a backoff,
// capped exponential with full jitter, or after the Retry-After the server
// asked for. No retry starts once soft is done; hard, done a little later,
// cuts requests in flight. The error wraps errInterrupted when the run was
// stopped, and otherwise tells why the last attempt failed.
func (c *client) send(soft, hard context.Context, url string, body []byte) (reply, int, error) {
	return c.retry(soft, hard, func(ctx context.Context) (reply, error) { return c.exchange(ctx, url, body) })
}

// sendMQTT publishes body, the report of the reading named by key,
// through link and waits for its result, retrying as send does: a result
// that does not come within RequestTimeout is sent again, and the server
// answers a resent reading it stored as a duplicate.
func (c *client) sendMQTT(soft, hard context.Context, link *mqttLink, body []byte, key resultKey) (reply, int, error) {
	return c.retry(soft, hard, func(ctx context.Context) (reply, error) {
		ctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
		defer cancel()
		c.st.inflight.Add(1)
		defer c.st.inflight.Add(-1)
		start := c.cfg.Now()
		reps, err := link.exchange(ctx, body, []resultKey{key})
		if err != nil {
			return reply{}, err
		}
		c.st.latency.record(c.cfg.Now().Sub(start))
		return reps[0], nil
	})
}

// retry makes exchanges until an answer is final, as send describes.
func (c *client) retry(soft, hard context.Context, exchange func(context.Context) (reply, error)) (reply, int, error) {
	for attempt := 1; ; attempt++ {
		rep, err := exchange(hard)
		if err == nil && !rep.retryable() {
			return rep, attempt - 1, nil
		}
		if isCertificateError(err) {
			return rep, attempt - 1, fmt.Errorf("%w (to trust a private CA, give its certificate with --ca-cert)", err)
		}
		if hard.Err() != nil {
			return rep, attempt - 1, fmt.Errorf("%w: %v", errInterrupted, context.Cause(hard))
		}
		if err == nil {
			err = errors.New(rep.String())
		}
		if attempt >= c.cfg.MaxAttempts {
			return rep, attempt - 1, fmt.Errorf("gave up after %d attempts: %w", attempt, err)
		}
		t := time.NewTimer(c.backoff(attempt, rep.retryAfter))
		select {
		case <-soft.Done():
			t.Stop()
			return rep, attempt - 1, fmt.Errorf("%w after %d attempts: %v", errInterrupted, attempt, err)
		case <-t.C:
		}
	}
}

// backoff returns the wait before attempt+1: the server's Retry-After, if
// any, spread by up to one base step; otherwise a uniform draw below
// RetryBase·2^(attempt-1), capped at RetryMax.
func (c *client) backoff(attempt int, retryAfter time.Duration) time.Duration {
	if retryAfter > 0 {
		return min(retryAfter, c.cfg.RetryAfterMax) + rand.N(c.cfg.RetryBase)
	}
	ceiling := c.cfg.RetryMax
	if attempt <= 30 {
		ceiling = min(c.cfg.RetryBase<<(attempt-1), c.cfg.RetryMax)
	}
	return rand.N(ceiling) + 1
}

// exchange makes one request and reads the answer.
func (c *client) exchange(ctx context.Context, url string, body []byte) (reply, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return reply{}, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	c.st.inflight.Add(1)
	defer c.st.inflight.Add(-1)
	start := c.cfg.Now()
	res, err := c.http.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(res.Body, maxReplyBytes))
	if err != nil {
		return reply{}, fmt.Errorf("read answer: %w", err)
	}
	c.st.latency.record(c.cfg.Now().Sub(start))
	rep := reply{status: res.StatusCode, body: raw, retryAfter: parseRetryAfter(res.Header.Get("Retry-After"), c.cfg.Now())}
	if res.StatusCode >= 300 {
		var p struct{ Type, Detail string }
		if json.Unmarshal(raw, &p) == nil {
			rep.slug, rep.detail = api.Slug(p.Type), p.Detail
		}
	}
	return rep, nil
}

// parseRetryAfter reads a Retry-After header: seconds, or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
		return time.Duration(max(s, 0)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0)
	}
	return 0
}
