package main

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"smartmeters/db"
	"smartmeters/server"
	"smartmeters/store"
)

// databaseURLFlag is shared by every command that opens the store.
var databaseURLFlag = &cli.StringFlag{
	Name:    "database-url",
	Usage:   "store to use: postgres://… or postgresql://… for PostgreSQL, sqlite:PATH (or a bare path) for the embedded store",
	Value:   "sqlite:smartmeters.db",
	EnvVars: envVar("DATABASE_URL"),
}

func serveCommand() *cli.Command {
	return &cli.Command{
		Name:  "serve",
		Usage: "run the service: the public reporting API and the admin API",
		Description: "The public listener serves POST /reportReading, POST /reportReadings, GET /healthz\n" +
			"and GET /readyz. The admin listener, to peers in --admin-allow only, serves POST\n" +
			"/register, the reporting API (/meters, /fleet, /events), the dashboard at /,\n" +
			"/metrics (Prometheus) and /debug/pprof/.",
		Flags: append([]cli.Flag{
			databaseURLFlag,
			&cli.StringFlag{Name: "listen", Value: ":8080", Usage: "public listener address", EnvVars: envVar("LISTEN")},
			&cli.StringFlag{Name: "admin-listen", Value: "127.0.0.1:8081", Usage: "admin listener address", EnvVars: envVar("ADMIN_LISTEN")},
			&cli.StringSliceFlag{
				Name:        "admin-allow",
				Usage:       "CIDR allowed on the admin listener; repeat or separate with commas",
				DefaultText: "loopback, 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, fc00::/7",
				EnvVars:     envVar("ADMIN_ALLOW"),
			},
			&cli.IntFlag{Name: "min-rsa-bits", Value: 2048, Usage: "smallest RSA key accepted, in bits", EnvVars: envVar("MIN_RSA_BITS")},
			&cli.DurationFlag{Name: "max-clock-skew", Value: 5 * time.Minute, Usage: "how far ahead of the server clock a reading's timestamp may be", EnvVars: envVar("MAX_CLOCK_SKEW")},
			&cli.BoolFlag{Name: "migrate", Usage: "apply pending migrations on start", DefaultText: "on for the embedded store, off for PostgreSQL", EnvVars: envVar("MIGRATE")},
			&cli.StringFlag{Name: "log-format", Value: "text", Usage: "log format: text or json", EnvVars: envVar("LOG_FORMAT")},
			&cli.IntFlag{Name: "batch-max", Value: 1000, Usage: "group commit: most readings written in one statement (1 writes each reading on its own)", EnvVars: envVar("BATCH_MAX")},
			&cli.DurationFlag{Name: "batch-wait", Value: 2 * time.Millisecond, Usage: "group commit: longest wait for a batch to fill (0 commits what is queued at once)", EnvVars: envVar("BATCH_WAIT")},
			&cli.IntFlag{Name: "key-cache-size", Value: 100_000, Usage: "registered keys kept parsed in memory (about 1 KB each for RSA-2048)", EnvVars: envVar("KEY_CACHE_SIZE")},
			&cli.IntFlag{Name: "max-batch", Value: 1000, Usage: "most readings accepted in one POST /reportReadings", EnvVars: envVar("MAX_BATCH")},
		}, append(hardeningFlags(), fleetFlags()...)...),
		Action: serveAction,
	}
}

func serveAction(c *cli.Context) error {
	logger, err := newLogger(c.App.ErrWriter, c.String("log-format"))
	if err != nil {
		return err
	}
	allow, err := parsePrefixes(c.StringSlice("admin-allow"))
	if err != nil {
		return err
	}
	if c.Int("min-rsa-bits") < 1024 {
		return fmt.Errorf("--min-rsa-bits %d: must be at least 1024", c.Int("min-rsa-bits"))
	}
	if c.Duration("max-clock-skew") <= 0 {
		return fmt.Errorf("--max-clock-skew %s: must be positive", c.Duration("max-clock-skew"))
	}
	for _, name := range []string{"batch-max", "key-cache-size", "max-batch"} {
		if c.Int(name) < 1 {
			return fmt.Errorf("--%s %d: must be at least 1", name, c.Int(name))
		}
	}
	if c.Duration("batch-wait") < 0 {
		return fmt.Errorf("--batch-wait %s: must not be negative", c.Duration("batch-wait"))
	}
	batchWait := c.Duration("batch-wait")
	if batchWait == 0 {
		batchWait = -1 // server.Config: negative means do not wait
	}
	cfg := server.Config{
		Listen:       c.String("listen"),
		AdminListen:  c.String("admin-listen"),
		AdminAllow:   allow,
		MinRSABits:   c.Int("min-rsa-bits"),
		MaxClockSkew: c.Duration("max-clock-skew"),
		BatchMax:     c.Int("batch-max"),
		BatchWait:    batchWait,
		KeyCacheSize: c.Int("key-cache-size"),
		MaxBatch:     c.Int("max-batch"),
	}
	if err := applyHardeningFlags(c, &cfg); err != nil {
		return err
	}
	if err := applyFleetFlags(c, &cfg); err != nil {
		return err
	}

	ctx := c.Context
	url := c.String("database-url")
	driver, _, err := db.ParseURL(url)
	if err != nil {
		return err
	}
	conn, err := db.Open(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close()
	migrate := driver == db.SQLite
	if c.IsSet("migrate") {
		migrate = c.Bool("migrate")
	}
	if migrate {
		res, err := db.Migrate(ctx, conn)
		if err != nil {
			return err
		}
		for _, r := range res {
			logger.Info("migration applied", "version", r.Source.Version, "file", r.Source.Path, "took", r.Duration)
		}
	} else if err := db.CheckSchema(ctx, conn); err != nil {
		if errors.Is(err, db.ErrSchemaBehind) {
			return fmt.Errorf("%v; run `smartmeters migrate up` first, or serve with --migrate", err)
		}
		return err
	}
	cfg.Committers = committers(driver)
	stopFleet, err := startFleet(&cfg, driver, url, conn, logger)
	if err != nil {
		return err
	}
	defer stopFleet()
	logger.Info("store open", "driver", driver)
	return server.New(cfg, store.New(conn), logger).Run(ctx)
}

// parsePrefixes parses CIDRs (a bare address counts as a single-host
// prefix); none means the server's default allowlist.
func parsePrefixes(values []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, v := range values {
		for _, s := range strings.Split(v, ",") {
			s = strings.TrimSpace(s)
			if s == "" {
				continue
			}
			p, err := netip.ParsePrefix(s)
			if err != nil {
				a, aerr := netip.ParseAddr(s)
				if aerr != nil {
					return nil, fmt.Errorf("--admin-allow %q: not a CIDR such as 10.0.0.0/8", s)
				}
				p = netip.PrefixFrom(a, a.BitLen())
			}
			out = append(out, p.Masked())
		}
	}
	return out, nil
}

// committers is how many group-commit batches may be in flight on a store:
// SQLite has one writer at a time, so more would only wait on its lock;
// zero means the server's default.
func committers(driver string) int {
	if driver == db.SQLite {
		return 1
	}
	return 0
}
