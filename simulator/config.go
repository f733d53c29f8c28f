package simulator

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"smartmeters/crypto"
)

// Defaults of the optional Config fields.
const (
	DefaultConcurrency    = 64
	DefaultRequestTimeout = 10 * time.Second
	DefaultRetryBase      = 100 * time.Millisecond
	DefaultRetryMax       = 5 * time.Second
	DefaultMaxAttempts    = 10
	DefaultRetryAfterMax  = 30 * time.Second
	DefaultDrain          = 5 * time.Second
)

// Config configures a Simulator. A zero optional field means its default.
type Config struct {
	PublicURL string         // base URL of the public listener, such as http://localhost:8080
	AdminURL  string         // base URL of the admin listener, such as http://127.0.0.1:8081
	Meters    int            // number of meters; at least 1
	Interval  time.Duration  // time between two readings of a meter; positive
	Readings  int            // readings per meter; 0 means until the context is done
	KeyType   crypto.KeyType // key type of generated meters; unused when KeysFile exists
	// KeysFile, when set, names a keys file (see SaveKeyFile). If it exists
	// its first Meters meters are used and nothing is registered; if it
	// does not, the new fleet is saved there after registration, and Run
	// fails before registering anything when it cannot be written.
	KeysFile string
	// Seed seeds usernames, start offsets, load profiles and tamper
	// choices; 0 picks one at random, which the Summary reports. Keys are
	// always random.
	Seed   int64
	Tamper float64 // share of readings forged on purpose, 0 to 1

	Concurrency    int           // largest number of requests in flight; default 64
	RequestTimeout time.Duration // bound of one HTTP request; default 10s
	RetryBase      time.Duration // first retry backoff; default 100ms
	RetryMax       time.Duration // largest retry backoff; default 5s
	MaxAttempts    int           // attempts per reading or registration, first included; default 10
	RetryAfterMax  time.Duration // largest Retry-After honoured; default 30s
	// Drain bounds how long requests in flight may still run once the
	// context is done; default 5s.
	Drain time.Duration

	// Status receives the live status line; nil means none. With StatusTTY
	// the line is redrawn in place every StatusEvery (default 1s);
	// otherwise a plain line is written every StatusEvery (default 5s).
	Status      io.Writer
	StatusTTY   bool
	StatusEvery time.Duration

	// RootCAs are the CAs trusted for https URLs; nil means the system's.
	// Unused with a Transport.
	RootCAs *x509.CertPool
	// Transport carries every request; nil means a transport tuned for
	// Concurrency keep-alive connections.
	Transport http.RoundTripper
	// Now is the clock. It stamps readings and measures latency and lag,
	// and must advance at the pace of real time (it may be offset from
	// it); default time.Now.
	Now func() time.Time
	// Location is the local time of the load and solar profiles; default
	// time.Local.
	Location *time.Location
	// MQTT, when its Broker is set, carries the reports through an MQTT
	// broker instead of POST /reportReading; meters are still registered
	// on AdminURL.
	MQTT MQTTConfig

	// AcceptedLog, when not nil, receives one line per genuine reading the
	// server accepted (see acceptedlog.go), so that a test can compare
	// what was acknowledged with what is stored.
	AcceptedLog io.Writer
}

func (c Config) withDefaults() Config {
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.RetryBase == 0 {
		c.RetryBase = DefaultRetryBase
	}
	if c.RetryMax == 0 {
		c.RetryMax = DefaultRetryMax
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	if c.RetryAfterMax == 0 {
		c.RetryAfterMax = DefaultRetryAfterMax
	}
	if c.Drain == 0 {
		c.Drain = DefaultDrain
	}
	if c.StatusEvery == 0 {
		c.StatusEvery = 5 * time.Second
		if c.StatusTTY {
			c.StatusEvery = time.Second
		}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	c.MQTT = c.MQTT.withDefaults()
	if c.Location == nil {
		c.Location = time.Local
	}
	return c
}

// validate reports the first field of c that is out of range.
func (c Config) validate() error {
	var errs []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	for _, u := range []struct{ name, url string }{{"PublicURL", c.PublicURL}, {"AdminURL", c.AdminURL}} {
		check(ValidBaseURL(u.url) == nil, "%s %q: %v", u.name, u.url, ValidBaseURL(u.url))
	}
	if c.MQTT.Broker != "" {
		check(ValidMQTTBroker(c.MQTT.Broker) == nil, "MQTT broker %q: %v", c.MQTT.Broker, ValidMQTTBroker(c.MQTT.Broker))
	}
	check(c.Meters >= 1, "Meters is %d; want at least 1", c.Meters)
	check(c.Interval > 0, "Interval is %s; want a positive duration", c.Interval)
	check(c.Readings >= 0, "Readings is %d; want 0 or more", c.Readings)
	if c.KeyType != "" || c.KeysFile == "" { // an existing keys file needs none
		_, err := crypto.ParseKeyType(string(c.KeyType))
		check(err == nil, "KeyType: %v", err)
	}
	check(c.Tamper >= 0 && c.Tamper <= 1, "Tamper is %g; want a fraction from 0 to 1", c.Tamper)
	check(c.Concurrency >= 1, "Concurrency is %d; want at least 1", c.Concurrency)
	check(c.MaxAttempts >= 1, "MaxAttempts is %d; want at least 1", c.MaxAttempts)
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"RequestTimeout", c.RequestTimeout}, {"RetryBase", c.RetryBase}, {"RetryMax", c.RetryMax},
		{"RetryAfterMax", c.RetryAfterMax}, {"Drain", c.Drain}, {"StatusEvery", c.StatusEvery}} {
		check(d.v > 0, "%s is %s; want a positive duration", d.name, d.v)
	}
	if len(errs) > 0 {
		return fmt.Errorf("simulator config: %w", errs[0])
	}
	return nil
}

// ValidBaseURL reports why s cannot serve as the base URL of a listener,
// or nil if it can: it must be an absolute http or https URL without query
// or fragment.
func ValidBaseURL(s string) error {
	if !strings.Contains(s, "://") {
		return fmt.Errorf("no scheme: add http:// (http://%s) or https://", s)
	}
	u, err := url.Parse(s)
	if err != nil {
		return errors.Unwrap(err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return errors.New("want an http:// or https:// URL")
	}
	if u.Host == "" {
		return errors.New("the URL has no host")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return errors.New("a base URL has no query or fragment")
	}
	return nil
}
