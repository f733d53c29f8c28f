// Package migratecmd is the `smartmeters migrate` command: the database
// schema, whose migrations are built into the binary.
package migratecmd

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/pressly/goose/v3"
	"github.com/urfave/cli/v2"

	"smartmeters/db"
	"smartmeters/store"
)

// DatabaseURLFlag returns the --database-url flag of every command that
// opens the store.
func DatabaseURLFlag() *cli.StringFlag {
	return &cli.StringFlag{
		Name:    "database-url",
		Usage:   "store to use: postgres://… or postgresql://… for PostgreSQL, sqlite:PATH (or a bare path) for the embedded store",
		Value:   "sqlite:smartmeters.db",
		EnvVars: []string{"SMARTMETERS_DATABASE_URL"},
	}
}

// Command returns `smartmeters migrate`.
func Command() *cli.Command {
	return &cli.Command{
		Name:  "migrate",
		Usage: "manage the database schema (migrations are built into the binary)",
		Description: "Safe to run from several hosts at once on PostgreSQL: a session lock\n" +
			"serialises them and each migration is applied once.",
		Flags: []cli.Flag{DatabaseURLFlag()},
		Subcommands: []*cli.Command{
			{
				Name:   "up",
				Usage:  "apply every pending migration; on a Citus coordinator, distribute the schema",
				Flags:  []cli.Flag{subDatabaseURLFlag(), shardCountFlag()},
				Action: withMigrator(db.Open, up),
			},
			{
				Name:  "distribute",
				Usage: "distribute the schema over the Citus cluster whose coordinator --database-url names",
				Description: "What `migrate up` does on a Citus coordinator, alone: for a database restored\n" +
					"from a single PostgreSQL onto a coordinator, whose rows it moves into shards.\n" +
					"It does nothing to a schema that is distributed already.",
				Flags:  []cli.Flag{subDatabaseURLFlag(), shardCountFlag()},
				Action: withMigrator(db.OpenExisting, distribute),
			},
			{Name: "down", Usage: "roll back the most recent migration", Flags: []cli.Flag{subDatabaseURLFlag()}, Action: withMigrator(db.OpenExisting, down)},
			{Name: "status", Usage: "list every migration and whether it is applied", Flags: []cli.Flag{subDatabaseURLFlag()}, Action: withMigrator(db.OpenExisting, status)},
			{Name: "version", Usage: "print the schema version of the database and the one this binary needs", Flags: []cli.Flag{subDatabaseURLFlag()}, Action: withMigrator(db.OpenExisting, version)},
		},
	}
}

// withMigrator opens the store with open and its migrator for action.
// Only `up` opens with db.Open, which creates a SQLite file that does not
// exist; the others, with db.OpenExisting, refuse one, so that a mistyped
// path is not taken for an empty database and left behind as one.
func withMigrator(open func(context.Context, string) (*sqlx.DB, error), action func(c *cli.Context, p *goose.Provider, conn *sqlx.DB) error) cli.ActionFunc {
	return func(c *cli.Context) error {
		if c.Args().Present() {
			return cli.Exit(fmt.Sprintf("unexpected argument %q (see --help)", c.Args().First()), 2)
		}
		conn, err := open(c.Context, databaseURL(c))
		if err != nil {
			return err
		}
		defer conn.Close()
		p, err := db.NewMigrator(conn)
		if err != nil {
			return err
		}
		return action(c, p, conn)
	}
}

// subDatabaseURLFlag is --database-url as a subcommand of migrate declares
// it, so that it may also follow the subcommand's name (`migrate up
// --database-url URL`). It has no default and no variable: those are
// migrate's own flag's, which databaseURL falls back to.
func subDatabaseURLFlag() *cli.StringFlag {
	return &cli.StringFlag{
		Name:  "database-url",
		Usage: "store to use, as migrate's --database-url (which it overrides); default: $SMARTMETERS_DATABASE_URL or sqlite:smartmeters.db",
	}
}

// databaseURL is the --database-url nearest the end of the command line:
// after the subcommand, else before it (`migrate --database-url URL up`),
// else migrate's variable or default. urfave/cli reads a flag that both a
// command and its subcommand declare from the subcommand alone.
func databaseURL(c *cli.Context) string {
	for _, ctx := range c.Lineage() {
		if ctx.String("database-url") != "" {
			return ctx.String("database-url")
		}
	}
	return ""
}

// shardCountFlag is the shard count of the meters' tables on Citus.
func shardCountFlag() *cli.IntFlag {
	return &cli.IntFlag{
		Name:    "shard-count",
		Usage:   "on Citus, the number of shards of the meters' tables when they are distributed (0: the cluster's citus.shard_count); fixed once distributed",
		EnvVars: []string{"SMARTMETERS_SHARD_COUNT"},
	}
}

func up(c *cli.Context, p *goose.Provider, conn *sqlx.DB) error {
	res, err := p.Up(c.Context)
	for _, r := range res {
		fmt.Fprintf(c.App.Writer, "applied %s (%s)\n", r.Source.Path, r.Duration.Round(time.Millisecond))
	}
	if err != nil {
		return fmt.Errorf("migrate up: %w", err)
	}
	v, err := p.GetDBVersion(c.Context)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "schema at version %d\n", v)
	if err := distributeSchema(c, conn); err != nil {
		return err
	}
	// On PostgreSQL, readings partitions for the months ahead, as a
	// server would create them.
	now := time.Now()
	created, err := store.New(conn).EnsurePartitions(c.Context, now, now.Add(store.PartitionsAhead))
	for _, part := range created {
		fmt.Fprintf(c.App.Writer, "created partition %s\n", part.Name)
	}
	if err != nil {
		return err
	}
	built, err := store.New(conn).RollupsBuilt(c.Context)
	if err != nil {
		return err
	}
	if !built {
		fmt.Fprintln(c.App.Writer, "readings stored before rollups came: run `smartmeters rollups rebuild` to roll them up (ingest may go on meanwhile)")
	}
	return nil
}

func distribute(c *cli.Context, _ *goose.Provider, conn *sqlx.DB) error {
	ok, err := db.HasCitus(c.Context, conn)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("migrate distribute: the database has no citus extension: it is not a Citus coordinator")
	}
	if err := db.CheckSchema(c.Context, conn); err != nil {
		return fmt.Errorf("migrate distribute: %w; run `smartmeters migrate up`, which distributes too", err)
	}
	return distributeSchema(c, conn)
}

// distributeSchema distributes the schema on a Citus coordinator and says
// what it did.
func distributeSchema(c *cli.Context, conn *sqlx.DB) error {
	n := c.Int("shard-count")
	if n < 0 {
		return fmt.Errorf("--shard-count %d: must not be negative", n)
	}
	done, err := db.Distribute(c.Context, conn, n)
	for _, d := range done {
		fmt.Fprintln(c.App.Writer, d)
	}
	return err
}

func down(c *cli.Context, p *goose.Provider, _ *sqlx.DB) error {
	r, err := p.Down(c.Context)
	if err != nil {
		return fmt.Errorf("migrate down: %w", err)
	}
	fmt.Fprintf(c.App.Writer, "rolled back %s (%s)\n", r.Source.Path, r.Duration.Round(time.Millisecond))
	return nil
}

func status(c *cli.Context, p *goose.Provider, _ *sqlx.DB) error {
	st, err := p.Status(c.Context)
	if err != nil {
		return fmt.Errorf("migrate status: %w", err)
	}
	tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tSTATE\tAPPLIED AT\tFILE")
	for _, s := range st {
		at := "-"
		if !s.AppliedAt.IsZero() {
			at = s.AppliedAt.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", s.Source.Version, s.State, at, s.Source.Path)
	}
	return tw.Flush()
}

func version(c *cli.Context, p *goose.Provider, _ *sqlx.DB) error {
	current, target, err := p.GetVersions(c.Context)
	if err != nil {
		return fmt.Errorf("migrate version: %w", err)
	}
	fmt.Fprintf(c.App.Writer, "database %d, binary %d\n", current, target)
	return nil
}
