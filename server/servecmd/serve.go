// Package servecmd is `smartmeters serve`, which runs the service, and
// `smartmeters healthcheck`, which probes it.
package servecmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/urfave/cli/v2"
	"golang.org/x/sync/errgroup"

	"smartmeters/crypto"
	"smartmeters/db"
	"smartmeters/server"
	"smartmeters/server/background"
	"smartmeters/store"
)

// Command returns `smartmeters serve`.
func Command() *cli.Command {
	return &cli.Command{
		Name:  "serve",
		Usage: "run the service: the public reporting API and the admin API",
		Description: "The public listener serves POST /reportReading, POST /reportReadings, GET /healthz\n" +
			"and GET /readyz. The admin listener, to peers in --admin-allow only, serves POST\n" +
			"/register, the reporting API (/meters, /fleet, /events), the dashboard at /,\n" +
			"/metrics (Prometheus) and /debug/pprof/. With --mqtt-broker, readings published on\n" +
			"--mqtt-topic are stored too, and their results published under --mqtt-results-topic.",
		Flags:  flags(),
		Action: serve,
	}
}

func serve(c *cli.Context) error {
	if c.Args().Present() {
		return cli.Exit(fmt.Sprintf("unexpected argument %q (see --help)", c.Args().First()), 2)
	}
	logger, err := newLogger(c.App.ErrWriter, c.String("log-format"))
	if err != nil {
		return err
	}
	cfg, err := config(c)
	if err != nil {
		return err
	}
	url := c.String("database-url")
	driver, _, err := db.ParseURL(url)
	if err != nil {
		return err
	}
	// The ports first: a port in use fails the start before anything is
	// created or migrated.
	pub, err := Listen("--listen", cfg.Listen)
	if err != nil {
		return err
	}
	adm, err := Listen("--admin-listen", cfg.AdminListen)
	if err != nil {
		pub.Close()
		return err
	}
	migrate := driver == db.SQLite
	if c.IsSet("migrate") {
		migrate = c.Bool("migrate")
	}
	return Run(c.Context, cfg, url, migrate, pub, adm, logger)
}

// Listen opens the TCP listener that flag (such as --listen) gives as
// addr. A port number alone, which net.Listen would refuse as "missing
// port in address", is refused with the address meant.
func Listen(flag, addr string) (net.Listener, error) {
	if _, err := strconv.ParseUint(addr, 10, 16); err == nil {
		return nil, fmt.Errorf("%s %s: a port alone is not an address: use :%s (every interface) or 127.0.0.1:%s", flag, addr, addr, addr)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", flag, addr, err)
	}
	return l, nil
}

// Run serves cfg on the listeners pub and adm (which it closes) over the
// store at url until ctx is done, migrating the store first when migrate
// is set and refusing a schema that is behind otherwise. Beside the
// server run partition maintenance and, with several servers on one
// PostgreSQL, the following of their key changes; it returns when all have
// stopped, or when one of them fails. The reporting side reads through a
// pool of its own, which cannot write, so that a slow reader can never take
// what ingest needs. `smartmeters serve` and `smartmeters demo` run it.
func Run(ctx context.Context, cfg server.Config, url string, migrate bool, pub, adm net.Listener, logger *slog.Logger) error {
	defer pub.Close()
	defer adm.Close()
	driver, _, err := db.ParseURL(url)
	if err != nil {
		return err
	}
	conn, err := db.Open(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := prepareSchema(ctx, conn, migrate, logger); err != nil {
		return err
	}
	rconn, err := db.OpenReadOnly(ctx, url)
	if err != nil {
		return err
	}
	defer rconn.Close()
	if driver == db.SQLite {
		cfg.Ingest.Committers = 1 // one writer at a time: more would only wait on its lock
	}
	cfg.SchemaCheck = func(ctx context.Context) error { return db.CheckSchema(ctx, conn) }
	st := store.New(conn)
	if built, err := st.RollupsBuilt(ctx); err != nil {
		return err
	} else if !built {
		logger.Warn("the fleet's rollups do not cover the readings stored before they came; run `smartmeters rollups rebuild` (ingest goes on meanwhile)")
	}
	if cfg.ExportKey == nil {
		if cfg.ExportKey, err = storedExportKey(ctx, st, cfg.Now()); err != nil {
			return err
		}
	}
	stores := server.StoresOf(st)
	stores.Reporting = store.New(rconn)
	srv, err := server.New(cfg, stores, logger)
	if err != nil {
		return err
	}
	logger.Info("store open", "driver", driver)
	units := []func(context.Context) error{
		func(ctx context.Context) error { return srv.Serve(ctx, pub, adm) },
		background.Partitions{
			Store: st, Ahead: cfg.PartitionsAhead, Retention: cfg.Retention,
			Every: cfg.PartitionCheckEvery, Now: cfg.Now, Logger: logger,
		}.Run,
	}
	// Rollups go with their readings, which only PostgreSQL drops.
	rollupRetention := cfg.RollupRetention
	if rollupRetention == 0 && driver == db.Postgres {
		rollupRetention = cfg.Retention
	}
	units = append(units, background.Rollups{
		Store: st, Every: cfg.RollupEvery, Retention: rollupRetention, Now: cfg.Now, Logger: logger,
	}.Run)
	if in := srv.MQTT(); in != nil {
		units = append(units, in.Run)
	}
	if driver == db.Postgres {
		kl, err := store.ListenKeyChanges(url, logger)
		if err != nil {
			srv.Close()
			return fmt.Errorf("listen for key changes: %w", err)
		}
		defer kl.Close()
		units = append(units, background.KeyChanges{
			Listener: kl, Store: st, Cache: srv.Keys(), Resync: cfg.KeyResync, Now: cfg.Now, Logger: logger,
		}.Run)
	}
	g, ctx := errgroup.WithContext(ctx)
	for _, unit := range units {
		g.Go(func() error { return unit(ctx) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	logger.Info("stopped")
	return nil
}

// prepareSchema applies pending migrations when migrate is set, and
// otherwise refuses a schema that is behind.
func prepareSchema(ctx context.Context, conn *sqlx.DB, migrate bool, logger *slog.Logger) error {
	if !migrate {
		err := db.CheckSchema(ctx, conn)
		if errors.Is(err, db.ErrSchemaBehind) {
			return fmt.Errorf("%v; run `smartmeters migrate up` first, or serve with --migrate", err)
		}
		return err
	}
	res, err := db.Migrate(ctx, conn)
	if err != nil {
		return err
	}
	for _, r := range res {
		logger.Info("migration applied", "version", r.Source.Version, "file", r.Source.Path, "took", r.Duration)
	}
	return nil
}

// newLogger returns the slog logger that --log-format asks for.
func newLogger(w io.Writer, format string) (*slog.Logger, error) {
	switch format {
	case "text", "":
		return slog.New(slog.NewTextHandler(w, nil)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, nil)), nil
	}
	return nil, fmt.Errorf("--log-format %q: use text or json", format)
}

// storedExportKey returns the export signing key the store keeps, making
// one if it has none: every server on the store signs with the same key.
func storedExportKey(ctx context.Context, st *store.Store, now time.Time) (*crypto.PrivateKey, error) {
	fresh, err := crypto.GenerateKey(crypto.Ed25519, nil)
	if err != nil {
		return nil, err
	}
	pemBytes, err := fresh.MarshalPKCS8PEM()
	if err != nil {
		return nil, err
	}
	stored, err := st.EnsureServerKey(ctx, "export", pemBytes, now)
	if err != nil {
		return nil, err
	}
	k, err := crypto.ParsePrivateKeyPEM(stored)
	if err != nil {
		return nil, fmt.Errorf("the export key the store keeps: %w", err)
	}
	return k, nil
}
