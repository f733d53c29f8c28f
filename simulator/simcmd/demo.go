package simcmd

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"smartmeters/db"
	"smartmeters/server"
	"smartmeters/server/servecmd"
)

// Demo returns `smartmeters demo`.
func Demo() *cli.Command {
	return &cli.Command{
		Name:  "demo",
		Usage: "run the server and a simulated swarm of meters against it, in one process",
		Description: "Serves a fresh SQLite store in a new temporary directory (or --database-url,\n" +
			"migrated first) on loopback ports, runs the simulator against it with the\n" +
			"simulate flags given, prints the summary and where the data is, and stops.\n" +
			"With --keep the server runs on until interrupted. Server warnings and errors\n" +
			"go to stderr; the server's request log is off.",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "database-url", Usage: "store to use (default: sqlite: in a new temporary directory, which is kept)", EnvVars: env("DEMO_DATABASE_URL")},
			&cli.StringFlag{Name: "listen", Value: "127.0.0.1:0", Usage: "public listener address; port 0 picks a free one", EnvVars: env("DEMO_LISTEN")},
			&cli.StringFlag{Name: "admin-listen", Value: "127.0.0.1:0", Usage: "admin listener address; port 0 picks a free one", EnvVars: env("DEMO_ADMIN_LISTEN")},
			&cli.BoolFlag{Name: "keep", Usage: "keep the server running after the simulation, until interrupted", EnvVars: env("DEMO_KEEP")},
		}, simulatorFlags()...),
		Action: demoAction,
	}
}

func demoAction(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	cfg, err := simulatorConfig(c)
	if err != nil {
		return err
	}
	ctx := c.Context
	stdout, stderr := c.App.Writer, c.App.ErrWriter
	if c.Bool("json") {
		stdout = stderr // stdout carries the JSON summary alone
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	url := c.String("database-url")
	if url == "" {
		dir, err := os.MkdirTemp("", "smartmeters-demo-")
		if err != nil {
			return fmt.Errorf("demo database: %w", err)
		}
		url = "sqlite:" + filepath.Join(dir, "smartmeters.db")
	}
	pub, err := servecmd.Listen("--listen", c.String("listen"))
	if err != nil {
		return err
	}
	adm, err := servecmd.Listen("--admin-listen", c.String("admin-listen"))
	if err != nil {
		pub.Close()
		return err
	}
	srvCfg := server.DefaultConfig()
	srvCfg.ShutdownTimeout = 5 * time.Second
	// The server outlives ctx so that the simulator's last requests are
	// answered; it is stopped once the simulation is over. If it fails,
	// the simulation stops.
	srvCtx, stopServer := context.WithCancel(context.WithoutCancel(ctx))
	defer stopServer()
	simCtx, stopSim := context.WithCancelCause(ctx)
	defer stopSim(nil)
	served := make(chan error, 1)
	go func() {
		err := servecmd.Run(srvCtx, srvCfg, url, true, pub, adm, logger)
		if err != nil {
			stopSim(fmt.Errorf("demo server: %w", err))
		}
		served <- err
	}()
	c.Context = simCtx

	cfg.PublicURL, cfg.AdminURL = server.BaseURL(pub.Addr(), false), server.BaseURL(adm.Addr(), false)
	printAddresses(stdout, cfg.PublicURL, cfg.AdminURL)
	_, simErr := simulate(c, cfg)
	printDataLocation(stdout, url)
	if c.Bool("keep") && ctx.Err() == nil {
		printAddresses(stdout, cfg.PublicURL, cfg.AdminURL)
		fmt.Fprintln(stdout, "serving         until Ctrl-C")
		<-ctx.Done()
	}
	stopServer()
	if err := <-served; err != nil {
		return fmt.Errorf("demo server: %w", err)
	}
	return simErr
}

// printAddresses tells where the dashboard and the API are.
func printAddresses(w io.Writer, public, admin string) {
	fmt.Fprintf(w, "dashboard       %s/\n", admin)
	fmt.Fprintf(w, "api             public %s, admin %s\n", public, admin)
}

// printDataLocation tells where the demo's readings are and how to look.
func printDataLocation(w io.Writer, url string) {
	driver, _, err := db.ParseURL(url)
	if err != nil || driver != db.SQLite {
		fmt.Fprintln(w, "data            in the database of --database-url")
		return
	}
	path := strings.TrimPrefix(url, "sqlite:")
	fmt.Fprintf(w, "data            %s\n", path)
	fmt.Fprintf(w, "look            sqlite3 %s 'select count(*) from readings'\n", path)
	fmt.Fprintf(w, "serve it        smartmeters serve --database-url sqlite:%s\n", path)
}
