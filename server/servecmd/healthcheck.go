package servecmd

import (
	"fmt"
	"net/http"
	"time"

	"github.com/urfave/cli/v2"
)

// Healthcheck returns `smartmeters healthcheck`, which probes a server's
// /readyz (or any URL), for container healthchecks in images that have no
// curl.
func Healthcheck() *cli.Command {
	return &cli.Command{
		Name:  "healthcheck",
		Usage: "exit 0 if a URL answers 200 (for container healthchecks), 1 otherwise",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "url", Value: "http://127.0.0.1:8080/readyz", Usage: "URL to GET", EnvVars: env("HEALTHCHECK_URL")},
			&cli.DurationFlag{Name: "timeout", Value: 3 * time.Second, Usage: "give up after this long", EnvVars: env("HEALTHCHECK_TIMEOUT")},
		},
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return cli.Exit(fmt.Sprintf("unexpected argument %q (see --help)", c.Args().First()), 2)
			}
			client := &http.Client{Timeout: c.Duration("timeout")}
			res, err := client.Get(c.String("url"))
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
