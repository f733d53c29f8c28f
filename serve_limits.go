package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"smartmeters/server"
)

// hardeningFlags are serve's flags for abuse limits, timeouts and TLS.
func hardeningFlags() []cli.Flag {
	return []cli.Flag{
		&cli.DurationFlag{Name: "read-header-timeout", Value: server.DefaultReadHeaderTimeout, Usage: "longest time a client may take to send a request's headers", EnvVars: envVar("READ_HEADER_TIMEOUT")},
		&cli.DurationFlag{Name: "read-timeout", Value: server.DefaultReadTimeout, Usage: "longest time a client may take to send a whole request", EnvVars: envVar("READ_TIMEOUT")},
		&cli.DurationFlag{Name: "write-timeout", Value: server.DefaultWriteTimeout, Usage: "longest time from the end of a request's headers to the end of its answer", EnvVars: envVar("WRITE_TIMEOUT")},
		&cli.DurationFlag{Name: "idle-timeout", Value: server.DefaultIdleTimeout, Usage: "longest time a keep-alive connection may wait for its next request", EnvVars: envVar("IDLE_TIMEOUT")},
		&cli.Float64Flag{Name: "rate-per-key", Usage: "readings a second each meter may have stored, counted after the signature verifies (429 beyond); 0 means no limit", EnvVars: envVar("RATE_PER_KEY")},
		&cli.IntFlag{Name: "rate-per-key-burst", Usage: "readings a meter may send at once above --rate-per-key", DefaultText: "10 s worth", EnvVars: envVar("RATE_PER_KEY_BURST")},
		&cli.Float64Flag{Name: "rate-per-address", Usage: "public requests a second each client address may send (429 beyond); 0 means no limit", EnvVars: envVar("RATE_PER_ADDRESS")},
		&cli.IntFlag{Name: "rate-per-address-burst", Usage: "requests an address may send at once above --rate-per-address", DefaultText: "10 s worth", EnvVars: envVar("RATE_PER_ADDRESS_BURST")},
		&cli.IntFlag{Name: "max-concurrent-requests", Value: server.DefaultMaxConcurrentRequests, Usage: "public requests in progress at once; beyond it 503 at once; 0 means no cap", EnvVars: envVar("MAX_CONCURRENT_REQUESTS")},
		&cli.StringFlag{Name: "tls-cert", TakesFile: true, Usage: "PEM certificate (chain) file: serve both listeners over TLS (with --tls-key)", EnvVars: envVar("TLS_CERT")},
		&cli.StringFlag{Name: "tls-key", TakesFile: true, Usage: "PEM private key file of --tls-cert", EnvVars: envVar("TLS_KEY")},
		&cli.StringFlag{Name: "admin-client-ca", TakesFile: true, Usage: "PEM CA file: the admin listener demands a client certificate it signed (mutual TLS; needs --tls-cert)", EnvVars: envVar("ADMIN_CLIENT_CA")},
	}
}

// applyHardeningFlags copies the flags of hardeningFlags into cfg,
// refusing values out of range.
func applyHardeningFlags(c *cli.Context, cfg *server.Config) error {
	for _, name := range []string{"read-header-timeout", "read-timeout", "write-timeout", "idle-timeout"} {
		if c.Duration(name) <= 0 {
			return fmt.Errorf("--%s %s: must be positive", name, c.Duration(name))
		}
	}
	for _, name := range []string{"rate-per-key", "rate-per-address"} {
		if v := c.Float64(name); !(v >= 0) {
			return fmt.Errorf("--%s %g: must be 0 (no limit) or more", name, v)
		}
	}
	for _, name := range []string{"rate-per-key-burst", "rate-per-address-burst", "max-concurrent-requests"} {
		if c.Int(name) < 0 {
			return fmt.Errorf("--%s %d: must not be negative", name, c.Int(name))
		}
	}
	if (c.String("tls-cert") == "") != (c.String("tls-key") == "") {
		return fmt.Errorf("--tls-cert and --tls-key go together")
	}
	if c.String("admin-client-ca") != "" && c.String("tls-cert") == "" {
		return fmt.Errorf("--admin-client-ca needs --tls-cert and --tls-key")
	}
	maxConc := c.Int("max-concurrent-requests")
	if maxConc == 0 {
		maxConc = -1 // server.Config: negative means no cap
	}
	cfg.ReadHeaderTimeout = c.Duration("read-header-timeout")
	cfg.ReadTimeout = c.Duration("read-timeout")
	cfg.WriteTimeout = c.Duration("write-timeout")
	cfg.IdleTimeout = c.Duration("idle-timeout")
	cfg.RatePerKey, cfg.RateBurstPerKey = c.Float64("rate-per-key"), c.Int("rate-per-key-burst")
	cfg.RatePerAddress, cfg.RateBurstPerAddress = c.Float64("rate-per-address"), c.Int("rate-per-address-burst")
	cfg.MaxConcurrentRequests = maxConc
	cfg.TLSCert, cfg.TLSKey, cfg.AdminClientCA = c.String("tls-cert"), c.String("tls-key"), c.String("admin-client-ca")
	return cfg.CheckTLS()
}
