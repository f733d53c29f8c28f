// Command smartmeters collects cryptographically signed smart-meter readings
// and simulates a swarm of meters to drive it.
//
//	smartmeters serve             run the service
//	smartmeters migrate up        apply database migrations
//	smartmeters version           print the version
//	smartmeters verify FILE       check the signatures of an exported CSV
//
// Run "smartmeters help" or "smartmeters COMMAND --help" for the flags; each
// flag can also be set through the SMARTMETERS_* variable its help names.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run runs the command line args and returns the process exit status. A
// failure is reported as one line on stderr.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	app := &cli.App{
		Name:                 "smartmeters",
		Usage:                "collect signed smart-meter readings; simulate a swarm of meters",
		Writer:               stdout,
		ErrWriter:            stderr,
		EnableBashCompletion: true,
		HideHelpCommand:      true,
		Suggest:              true,
		Commands: []*cli.Command{
			serveCommand(),
			migrateCommand(),
			versionCommand(),
			simulateCommand(),
			demoCommand(),
			benchCommand(),
			verifyCommand(),
			healthcheckCommand(),
		},
		// Errors are printed once, below, and never exit from inside cli.
		ExitErrHandler: func(*cli.Context, error) {},
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return usageError{err}
		},
	}
	for _, cmd := range app.Commands {
		setUsageError(cmd, app.OnUsageError)
	}
	err := app.RunContext(ctx, args)
	if err == nil {
		return 0
	}
	fmt.Fprintf(stderr, "smartmeters: %v\n", err)
	var exit cli.ExitCoder
	if errors.As(err, &exit) && exit.ExitCode() != 0 {
		return exit.ExitCode()
	}
	var usage usageError
	if errors.As(err, &usage) {
		return 2
	}
	return 1
}

// setUsageError makes a command and its subcommands report a malformed
// command line as one line rather than with the whole help text.
func setUsageError(cmd *cli.Command, f cli.OnUsageErrorFunc) {
	cmd.OnUsageError = f
	for _, sub := range cmd.Subcommands {
		setUsageError(sub, f)
	}
}

// usageError marks a malformed command line; run exits 2 for it.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() + " (see --help)" }
func (e usageError) Unwrap() error { return e.err }

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

// envVar names the environment variable of a flag.
func envVar(name string) []string { return []string{"SMARTMETERS_" + name} }
