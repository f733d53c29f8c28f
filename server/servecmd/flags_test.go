package servecmd

import (
	"testing"

	"github.com/urfave/cli/v2"
)

// TestCommitWorkers checks that --commit-workers and its variable reach
// the ingest configuration, the flag winning.
func TestCommitWorkers(t *testing.T) {
	for _, c := range []struct {
		name string
		env  string
		args []string
		want int
	}{
		{"Default", "", nil, 2},
		{"Flag", "", []string{"--commit-workers", "1"}, 1},
		{"Env", "2", nil, 2},
		{"FlagOverEnv", "2", []string{"--commit-workers", "8"}, 8},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("SMARTMETERS_COMMIT_WORKERS", c.env)
			got := -1
			app := &cli.App{Flags: flags(), Action: func(ctx *cli.Context) error {
				cfg, err := config(ctx)
				got = cfg.Ingest.Committers
				return err
			}}
			if err := app.Run(append([]string{"serve"}, c.args...)); err != nil {
				t.Fatal(err)
			}
			if got != c.want {
				t.Fatalf("Ingest.Committers = %d, want %d", got, c.want)
			}
		})
	}
}
