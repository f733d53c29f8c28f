package simcmd

import (
	"context"
	"errors"
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
	// Checked before anything is printed: the server would only find out
	// once the addresses are.
	url := c.String("database-url")
	if url != "" {
		if _, _, err := db.ParseURL(url); err != nil {
			return fmt.Errorf("--database-url: %w", err)
		}
	}
	ctx := c.Context
	stdout, stderr := c.App.Writer, c.App.ErrWriter
	if c.Bool("json") {
		stdout = stderr // stdout carries the JSON summary alone
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	pub, err := servecmd.Listen("--listen", c.String("listen"))
	if err != nil {
		return err
	}
	adm, err := servecmd.Listen("--admin-listen", c.String("admin-listen"))
	if err != nil {
		pub.Close()
		return err
	}
	// A directory of our own is kept once the demo has said where its data
	// is; a demo that fails before leaves nothing behind. Every return
	// below waits for the server to stop first.
	toldWhere := false
	if url == "" {
		dir, err := os.MkdirTemp("", "smartmeters-demo-")
		if err != nil {
			pub.Close()
			adm.Close()
			return fmt.Errorf("demo database: %w", err)
		}
		defer func() {
			if !toldWhere {
				os.RemoveAll(dir)
			}
		}()
		url = "sqlite:" + filepath.Join(dir, "smartmeters.db")
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
	var srvErr error
	srvDone := make(chan struct{})
	go func() {
		defer close(srvDone)
		srvErr = servecmd.Run(srvCtx, srvCfg, url, true, pub, adm, logger)
		if srvErr != nil {
			stopSim(fmt.Errorf("demo server: %w", srvErr))
		}
	}()
	c.Context = simCtx

	cfg.PublicURL, cfg.AdminURL = server.BaseURL(pub.Addr(), false), server.BaseURL(adm.Addr(), false)
	printAddresses(stdout, cfg.PublicURL, cfg.AdminURL)
	sum, simErr := simulate(c, cfg)
	serving := c.Bool("keep") && ctx.Err() == nil && !isDone(srvDone)
	// Without a summary the fleet was never set up: there is no data to
	// point at, unless the server stays up with what it has.
	if sum != nil || serving {
		printDataLocation(stdout, url)
		toldWhere = true
	}
	if serving {
		printAddresses(stdout, cfg.PublicURL, cfg.AdminURL)
		fmt.Fprintln(stdout, "serving         until Ctrl-C")
		select {
		case <-ctx.Done():
		case <-srvDone:
		}
	}
	failedFirst := isDone(srvDone) // on its own, not stopped by us
	stopServer()
	<-srvDone
	// Stopped while it was still starting, the server only says that it
	// was stopped: the simulation's error is the news.
	if srvErr != nil && (failedFirst || !errors.Is(srvErr, context.Canceled)) {
		return fmt.Errorf("demo server: %w", srvErr)
	}
	return simErr
}

// isDone reports whether ch is closed.
func isDone(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
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
