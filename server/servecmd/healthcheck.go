package servecmd

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"smartmeters/server"
)

// Healthcheck returns `smartmeters healthcheck`, which probes a server's
// /readyz (or any URL), for container healthchecks in images that have no
// curl.
func Healthcheck() *cli.Command {
	return &cli.Command{
		Name:  "healthcheck",
		Usage: "exit 0 if a URL answers 200 (for container healthchecks), 1 if it does not, 2 for a malformed command line",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "url", Value: "http://127.0.0.1:8080/readyz", Usage: "URL to GET", EnvVars: env("HEALTHCHECK_URL")},
			&cli.DurationFlag{Name: "timeout", Value: 3 * time.Second, Usage: "give up after this long", EnvVars: env("HEALTHCHECK_TIMEOUT")},
			CACertFlag(),
		},
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return cli.Exit(fmt.Sprintf("unexpected argument %q (see --help)", c.Args().First()), 2)
			}
			if u := c.String("url"); !strings.Contains(u, "://") {
				return cli.Exit(fmt.Sprintf("--url %q: no scheme: add http:// (http://%s) or https:// (see --help)", u, u), 2)
			}
			roots, err := RootCAs(c)
			if err != nil {
				return err
			}
			client := &http.Client{
				Timeout:   c.Duration("timeout"),
				Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}},
			}
			res, err := client.Get(c.String("url"))
			if cv := (*tls.CertificateVerificationError)(nil); errors.As(err, &cv) {
				return fmt.Errorf("%w (to trust a private CA, give its certificate with --ca-cert)", err)
			}
			if err != nil {
				return err
			}
			res.Body.Close()
			if res.StatusCode != http.StatusOK {
				return fmt.Errorf("%s: %s", c.String("url"), res.Status)
			}
			return nil
		},
	}
}

// CACertFlag is --ca-cert of the commands that talk to a server: healthcheck,
// simulate and bench.
func CACertFlag() *cli.StringFlag {
	return &cli.StringFlag{
		Name: "ca-cert", TakesFile: true, EnvVars: env("CA_CERT"),
		Usage: "PEM file of the CA certificate(s) to trust for https:// URLs instead of the system's, as curl --cacert (for a server whose certificate a private CA signed)",
	}
}

// RootCAs returns the CAs that --ca-cert names, or nil (the system's)
// without it.
func RootCAs(c *cli.Context) (*x509.CertPool, error) {
	path := c.String("ca-cert")
	if path == "" {
		return nil, nil
	}
	pool, err := server.LoadCertPool(path)
	if err != nil {
		return nil, fmt.Errorf("--ca-cert: %w", err)
	}
	return pool, nil
}
