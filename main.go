// Command smartmeters collects cryptographically signed smart-meter readings
// and simulates a swarm of meters to drive it.
//
//	smartmeters serve             run the service (server/servecmd)
//	smartmeters migrate up        apply database migrations (db/migratecmd)
//	smartmeters simulate          drive a server with simulated meters (simulator/simcmd)
//	smartmeters demo              a server and a simulated swarm in one process (simulator/simcmd)
//	smartmeters bench             measure how many readings a server stores per second (simulator/simcmd)
//	smartmeters rollups rebuild   build the fleet's rollups from stored readings (store/rollupscmd)
//	smartmeters verify FILE       check a meter's exported readings offline (crypto/verifycmd)
//	smartmeters healthcheck       probe a server, for container healthchecks (server/servecmd)
//	smartmeters version           print the version
//
// Run "smartmeters help" or "smartmeters COMMAND --help" for the flags; each
// flag can also be set through the SMARTMETERS_* variable its help names.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"regexp"
	"slices"
	"syscall"
	// Time zones for the reporting API's tz= wherever the binary runs,
	// with or without the system's zoneinfo.
	_ "time/tzdata"

	"github.com/urfave/cli/v2"

	"smartmeters/buildinfo"
	"smartmeters/crypto/verifycmd"
	"smartmeters/db/migratecmd"
	"smartmeters/server/servecmd"
	"smartmeters/simulator/simcmd"
	"smartmeters/store/rollupscmd"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run runs the command line args and returns the process exit status: 0,
// 1 for a failure, 2 for a malformed command line. A failure is reported
// as one line on stderr.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	err := newApp(stdout, stderr).RunContext(ctx, args)
	if err == nil {
		return 0
	}
	fmt.Fprintf(stderr, "smartmeters: %v\n", err)
	var exit cli.ExitCoder
	if errors.As(err, &exit) && exit.ExitCode() != 0 {
		return exit.ExitCode()
	}
	return 1
}

// newApp returns the command line, writing to stdout and stderr.
func newApp(stdout, stderr io.Writer) *cli.App {
	app := &cli.App{
		Name:                 "smartmeters",
		Usage:                "collect signed smart-meter readings; simulate a swarm of meters",
		Version:              buildinfo.Version() + " " + buildinfo.GoVersion(),
		Writer:               stdout,
		ErrWriter:            stderr,
		EnableBashCompletion: true,
		HideHelpCommand:      true,
		Suggest:              true,
		Commands: []*cli.Command{
			servecmd.Command(),
			migratecmd.Command(),
			rollupscmd.Command(),
			versionCommand(),
			simcmd.Simulate(),
			simcmd.Demo(),
			simcmd.Bench(),
			verifycmd.Command(),
			servecmd.Healthcheck(),
		},
		// Errors are printed once, below, and never exit from inside cli.
		ExitErrHandler: func(*cli.Context, error) {},
	}
	app.OnUsageError = func(_ *cli.Context, err error, _ bool) error {
		return cli.Exit(usageMessage(app, err)+" (see --help)", 2)
	}
	app.Action = appAction
	for _, cmd := range app.Commands {
		setUsageError(cmd, app.OnUsageError)
	}
	return app
}

// appAction runs when no command is named: it shows the help, also for
// `smartmeters help [COMMAND]`, and refuses any other word as an unknown
// command.
func appAction(c *cli.Context) error {
	name := c.Args().First()
	if name == "help" || name == "h" {
		if topic := c.Args().Get(1); topic != "" {
			if c.App.Command(topic) == nil {
				return unknownCommand(c.App.Commands, "command", topic)
			}
			return cli.ShowCommandHelp(c, topic)
		}
		name = ""
	}
	if name == "" {
		return cli.ShowAppHelp(c)
	}
	return unknownCommand(c.App.Commands, "command", name)
}

// subcommandsAction is the action of a command that only groups
// subcommands (`migrate`, `rollups`): it shows the command's help, and
// refuses any other word as an unknown subcommand.
func subcommandsAction(c *cli.Context) error {
	if !c.Args().Present() {
		return cli.ShowSubcommandHelp(c)
	}
	return unknownCommand(c.Command.Subcommands, c.Command.FullName()+" subcommand", c.Args().First())
}

// unknownCommand is the usage error of a name that is none of cmds, with
// the nearest of them as a suggestion. Without it urfave/cli answers "No
// help topic for 'name'" and exit status 3.
func unknownCommand(cmds []*cli.Command, what, name string) error {
	msg := fmt.Sprintf("unknown %s %q", what, name)
	if s := cli.SuggestCommand(cmds, name); s != "" && s != fmt.Sprintf(cli.SuggestDidYouMeanTemplate, "") {
		msg += ". " + s
	}
	return cli.Exit(msg+" (see --help)", 2)
}

var (
	badDurationFlag = regexp.MustCompile(`^invalid value "([0-9.]+)" for flag -([\w-]+): parse error$`)
	badDurationEnv  = regexp.MustCompile(`^could not parse "([0-9.]+)" as duration value from environment variable "(\w+)" for flag ([\w-]+): `)
)

// usageMessage is the message of a malformed command line: err's, or, for
// a duration given as a bare number, one that says to add a unit.
func usageMessage(app *cli.App, err error) string {
	msg := err.Error()
	if m := badDurationFlag.FindStringSubmatch(msg); m != nil && isDurationFlag(app.Commands, m[2]) {
		return fmt.Sprintf("--%s %s: a duration needs a unit: use %ss", m[2], m[1], m[1])
	}
	if m := badDurationEnv.FindStringSubmatch(msg); m != nil {
		return fmt.Sprintf("%s=%s (--%s): a duration needs a unit: use %ss", m[2], m[1], m[3], m[1])
	}
	return msg
}

// isDurationFlag reports whether a command of cmds, or one of their
// subcommands, has a duration flag called name.
func isDurationFlag(cmds []*cli.Command, name string) bool {
	for _, cmd := range cmds {
		for _, f := range cmd.Flags {
			if _, ok := f.(*cli.DurationFlag); ok && slices.Contains(f.Names(), name) {
				return true
			}
		}
		if isDurationFlag(cmd.Subcommands, name) {
			return true
		}
	}
	return false
}

// setUsageError makes a command and its subcommands report a malformed
// command line, an unknown subcommand included, as one line rather than
// with the whole help text.
func setUsageError(cmd *cli.Command, f cli.OnUsageErrorFunc) {
	cmd.OnUsageError = f
	if len(cmd.Subcommands) > 0 && cmd.Action == nil {
		cmd.Action = subcommandsAction
	}
	for _, sub := range cmd.Subcommands {
		setUsageError(sub, f)
	}
}

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print the version of this binary and of Go it was built with",
		Action: func(c *cli.Context) error {
			fmt.Fprintln(c.App.Writer, "smartmeters", buildinfo.Version(), buildinfo.GoVersion())
			return nil
		},
	}
}
