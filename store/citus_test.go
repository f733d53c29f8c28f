package store_test

import (
	"context"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/lib/pq"

	"smartmeters/db"
	"smartmeters/db/dbtest"
	"smartmeters/store"
)

// citusRules are constructs that Citus rejects, or that stop a statement
// from running on the one shard of a meter, when readings and meters are
// distributed by meter id (docs/scaling.md). They are checked on every SQL
// literal of the store: a lint, not a run on Citus.
var citusRules = []struct {
	name string
	bad  func(sql string) bool
}{
	{"table lock (LOCK TABLE)", match(`\bLOCK\s+TABLE\b`)},
	{"explicit sequence access (nextval/currval/lastval/setval)", match(`\b(nextval|currval|lastval|setval)\s*\(`)},
	{"temporary table", match(`\bCREATE\s+(TEMP|TEMPORARY)\b`)},
	{"row lock on a statement not pinned to one meter", func(q string) bool {
		return match(`\bFOR\s+(UPDATE|SHARE)\b`)(q) && !match(`\b(meter_)?id\s*=\s*\$\d`)(q)
	}},
	{"join of readings and meters not on the meter id (not co-located)", func(q string) bool {
		return match(`\bmeters\b`)(q) && match(`\breadings\b`)(q) && match(`\bJOIN\b`)(q) && !match(`meter_id\s*=\s*m\.id`)(q)
	}},
	// Refused on a cluster: "complex joins are only supported when all
	// distributed tables are co-located and joined on their distribution
	// columns" (the neighbour lookup of a batch, LATERAL over unnest).
	{"readings joined with a list of rows (unnest, json_each) not pinned to one shard", func(q string) bool {
		return match(`\breadings\b`)(q) && match(`\b(unnest|json_each)\s*\(`)(q) && !match(`meter_id\s*=\s*ANY\s*\(`)(q)
	}},
}

// sqliteOnly are the store's functions whose SQL runs on SQLite alone:
// on PostgreSQL, ingest_readings does their work (migration 00008).
var sqliteOnly = []string{"queryNeighbours", "currentKeys", "insertRows"}

func match(expr string) func(string) bool {
	re := regexp.MustCompile(`(?is)` + expr)
	return re.MatchString
}

// TestCitusCompatibleSQL applies citusRules to every SQL literal of the
// store's code.
func TestCitusCompatibleSQL(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	isSQL := match(`^\s*(SELECT|INSERT|UPDATE|DELETE|WITH|CREATE|ALTER|DROP)\b`)
	checked, sqliteFuncs := 0, 0
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		skip := map[ast.Node]bool{}
		for _, d := range f.Decls {
			if fn, ok := d.(*ast.FuncDecl); ok && slices.Contains(sqliteOnly, fn.Name.Name) {
				skip[fn] = true
				sqliteFuncs++
			}
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if skip[n] {
				return false
			}
			lit, ok := n.(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			q, err := strconv.Unquote(lit.Value)
			if err != nil || !isSQL(q) {
				return true
			}
			checked++
			for _, r := range citusRules {
				if r.bad(q) {
					t.Errorf("%s: %s:\n%s", fset.Position(lit.Pos()), r.name, q)
				}
			}
			return true
		})
	}
	if checked < 20 {
		t.Fatalf("found only %d SQL literals; is the scan broken?", checked)
	}
	if sqliteFuncs != len(sqliteOnly) {
		t.Fatalf("found %d of the SQLite-only functions %v; one was renamed?", sqliteFuncs, sqliteOnly)
	}
	t.Logf("%d SQL literals checked", checked)
}

// TestIngestSingleShard runs the ingest path, the key lookup and the
// commit of a batch that spans every shard, on a connection that Citus
// makes refuse any statement that needs more than one shard
// (citus.multi_task_query_log_level = error).
func TestIngestSingleShard(t *testing.T) {
	c, ok := dbtest.CitusCluster(t)
	if !ok {
		t.Skipf("needs a Citus cluster: set %s", dbtest.EnvCitusURL)
	}
	ctx := context.Background()
	setup := store.New(c.OpenMigrated(t))
	var meters []store.Meter
	for i := range 24 {
		meters = append(meters, newMeter(t, setup, fmt.Sprintf("shard-%d", i)))
	}
	u, err := url.Parse(c.URL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("citus.multi_task_query_log_level", "error")
	u.RawQuery = q.Encode()
	strict, err := db.Open(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { strict.Close() })
	st := store.New(strict)
	if _, err := st.CountMeters(ctx); err == nil {
		t.Fatal("the strict connection runs a statement over every shard; this test would prove nothing")
	}

	var batch []store.Reading
	for i, m := range meters {
		got, err := st.MeterByFingerprint(ctx, m.Fingerprint)
		if err != nil || got.ID != m.ID {
			t.Fatalf("MeterByFingerprint(%s) = %d, %v", m.Username, got.ID, err)
		}
		batch = append(batch, reading(m.ID, 1764141000000, int64(i), 0), reading(m.ID, 1764141001000, int64(i)+1, 0))
	}
	for _, want := range []store.Outcome{store.Stored, store.Duplicate} {
		got, err := st.InsertReadings(ctx, batch)
		if err != nil {
			t.Fatalf("InsertReadings: %v", err)
		}
		for i, o := range got {
			if o != want {
				t.Fatalf("reading %d: %s, want %s", i, o, want)
			}
		}
	}
	var shards int
	if err := strict.GetContext(ctx, &shards, `SELECT count(DISTINCT get_shard_id_for_distribution_column('meters', id)) FROM unnest($1::bigint[]) AS u (id)`,
		pq.Array(meterIDs(meters))); err != nil {
		t.Fatal(err)
	}
	if shards < 2 {
		t.Fatalf("the batch spans %d shard; it should span several", shards)
	}
}

func meterIDs(ms []store.Meter) []int64 {
	ids := make([]int64, len(ms))
	for i, m := range ms {
		ids[i] = m.ID
	}
	return ids
}
