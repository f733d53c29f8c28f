package migratecmd_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"smartmeters/crypto"
	"smartmeters/db"
	"smartmeters/db/dbtest"
	"smartmeters/db/migratecmd"
	"smartmeters/store"
)

// run runs `smartmeters migrate args...` and returns its output.
func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	app := &cli.App{Name: "smartmeters", Writer: &out, ErrWriter: &out, Commands: []*cli.Command{migratecmd.Command()}}
	err := app.RunContext(context.Background(), append([]string{"smartmeters", "migrate"}, args...))
	return out.String(), err
}

// TestDistributeRestored converts a database as it is after a single
// node's dump is restored onto a Citus coordinator (migrated, with meters,
// keys and readings in local tables) with `migrate distribute`, and checks
// that every row is then in the cluster's shards, served as before, and
// that the coordinator's copies are gone.
func TestDistributeRestored(t *testing.T) {
	c, ok := dbtest.CitusCluster(t)
	if !ok {
		t.Skipf("needs a Citus cluster: set %s", dbtest.EnvCitusURL)
	}
	ctx := context.Background()
	conn := c.Open(t)
	p, err := db.NewMigrator(conn)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Up(ctx); err != nil { // goose alone: what a restore holds
		t.Fatal(err)
	}
	st := store.New(conn)
	before := fill(t, st)

	if _, err := run(t, "--database-url", c.URL, "distribute", "--shard-count", "3"); err != nil {
		t.Fatalf("migrate distribute: %v", err)
	}
	dbtest.RequireDistributed(t, conn)
	var shards int
	if err := conn.Get(&shards, `SELECT shard_count FROM public.citus_tables WHERE table_name = 'readings'::regclass`); err != nil || shards != 3 {
		t.Fatalf("readings have %d shards, %v; want --shard-count 3", shards, err)
	}
	if after := contents(t, st, before.meters); after != before.text {
		t.Fatalf("after distribution the store holds\n%s\nwant\n%s", after, before.text)
	}
	var local int64
	const q = `
		SELECT coalesce(sum(pg_relation_size(c.oid)), 0) FROM pg_class c
		WHERE c.relkind = 'r' AND c.relnamespace = current_schema()::regnamespace
			AND (c.relname IN ('meters', 'meter_keys', 'meter_key_events', 'key_fingerprints', 'meter_usernames')
				OR c.oid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = 'readings'::regclass))`
	if err := conn.Get(&local, q); err != nil || local != 0 {
		t.Fatalf("the coordinator still holds %d bytes of the distributed tables (%v)", local, err)
	}

	// The converted store takes readings and key changes, and a second
	// run does nothing.
	m := before.meters[0]
	if got, err := st.InsertReadings(ctx, []store.Reading{reading(m, 10_000, 99)}); err != nil || got[0] != store.Stored {
		t.Fatalf("insert after distribution: %v, %v", got, err)
	}
	if _, err := st.RevokeKey(ctx, m, "test", time.Now()); err != nil {
		t.Fatalf("revoke after distribution: %v", err)
	}
	if out, err := run(t, "--database-url", c.URL, "distribute"); err != nil || strings.TrimSpace(out) != "" {
		t.Fatalf("second migrate distribute: %q, %v; want no output", out, err)
	}
	if out, err := run(t, "--database-url", c.URL, "up"); err != nil || strings.Contains(out, "distributed") {
		t.Fatalf("migrate up after distribution: %q, %v", out, err)
	}
}

// TestDistributeRefused checks that `migrate distribute` refuses a
// database that is not a Citus coordinator, and one whose schema is
// behind.
func TestDistributeRefused(t *testing.T) {
	for _, b := range dbtest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			b.Open(t) // creates the SQLite file
			_, err := run(t, "--database-url", b.URL, "distribute")
			want := "not a Citus coordinator"
			if b.Name == dbtest.Citus {
				want = "run `smartmeters migrate up`"
			}
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("migrate distribute = %v, want an error saying %q", err, want)
			}
		})
	}
}

type filled struct {
	meters []int64
	text   string
}

// fill registers meters, stores readings and replaces a key, and returns
// the meters and what the store then holds.
func fill(t *testing.T, st *store.Store) filled {
	t.Helper()
	ctx := context.Background()
	var f filled
	for i := range 6 {
		k, err := crypto.GenerateKey(crypto.Ed25519, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		m := store.Meter{Username: fmt.Sprintf("restored-%d", i), PublicKey: k.Public().DER(), Fingerprint: k.Public().Fingerprint(),
			Algorithm: k.Public().Algorithm(), RegisteredAt: time.Now().Add(-time.Hour)}
		if err := st.CreateMeter(ctx, &m); err != nil {
			t.Fatal(err)
		}
		f.meters = append(f.meters, m.ID)
		var rs []store.Reading
		for j := range 5 {
			rs = append(rs, reading(m.ID, int64(j+1)*1000, int64(j)))
		}
		if _, err := st.InsertReadings(ctx, rs); err != nil {
			t.Fatal(err)
		}
	}
	k, err := crypto.GenerateKey(crypto.Ed25519, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	nk := store.NewKey{PublicKey: k.Public().DER(), Fingerprint: k.Public().Fingerprint(), Algorithm: k.Public().Algorithm()}
	if _, err := st.ReplaceKey(ctx, f.meters[1], nk, "swap", time.Now()); err != nil {
		t.Fatal(err)
	}
	f.text = contents(t, st, f.meters)
	return f
}

// contents describes what the store holds of meters: each meter, its
// keys and its readings.
func contents(t *testing.T, st *store.Store, meters []int64) string {
	t.Helper()
	ctx := context.Background()
	var b strings.Builder
	for _, id := range meters {
		m, err := st.MeterByID(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if byKey, err := st.MeterByFingerprint(ctx, m.Fingerprint); err != nil || byKey.ID != id {
			t.Fatalf("meter %d by its key: %v, %v", id, byKey.ID, err)
		}
		keys, err := st.MeterKeys(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		rs, err := st.ReadingsBetween(ctx, id, 0, 1<<62, 100)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%d %s key %d of %d:", id, m.Username, m.KeySeq, len(keys))
		for _, r := range rs {
			fmt.Fprintf(&b, " %d=%d/%d", r.Timestamp, r.WhIn, r.WhOut)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

func reading(meter, ts, whIn int64) store.Reading {
	return store.Reading{MeterID: meter, KeySeq: 1, Reading: crypto.Reading{WhIn: whIn, Timestamp: ts}, Signature: []byte{1}, ReceivedAt: time.Now()}
}

// TestUpAsksForRebuild upgrades a database that holds readings from the
// schema before rollups: `migrate up` says to run `rollups rebuild`, and
// stops saying so once it has run; a database without readings needs
// nothing.
func TestUpAsksForRebuild(t *testing.T) {
	const hint = "smartmeters rollups rebuild"
	for _, b := range dbtest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			conn := b.Open(t)
			p, err := db.NewMigrator(conn)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := p.UpTo(ctx, 8); err != nil { // the schema before rollups
				t.Fatal(err)
			}
			st := store.New(conn)
			fill(t, st)
			out, err := run(t, "--database-url", b.URL, "up")
			if err != nil || !strings.Contains(out, hint) {
				t.Fatalf("migrate up over readings = %q, %v; want it to say %q", out, err, hint)
			}
			res, err := st.RebuildRollups(ctx, time.Time{}, time.Time{}, nil)
			if err != nil || res.Readings != 30 {
				t.Fatalf("RebuildRollups = %+v, %v; want the 30 readings read", res, err)
			}
			if out, err := run(t, "--database-url", b.URL, "up"); err != nil || strings.Contains(out, hint) {
				t.Fatalf("migrate up after the rebuild = %q, %v; want no %q", out, err, hint)
			}
			fresh := dbtest.SQLite(t)
			if b.Name != db.SQLite {
				fresh, _ = dbtest.Postgres(t)
			}
			if out, err := run(t, "--database-url", fresh.URL, "up"); err != nil || strings.Contains(out, hint) {
				t.Fatalf("migrate up of an empty database = %q, %v; want no %q", out, err, hint)
			}
		})
	}
}
