package db_test

import (
	"context"
	"slices"
	"testing"

	"github.com/lib/pq"

	"smartmeters/db"
	"smartmeters/db/dbtest"
)

// localTables are the tables that stay on a Citus coordinator: only the
// servers, which talk to the coordinator alone, read them.
var localTables = []string{"goose_db_version", "server_keys"}

// TestDistributionPlan checks the migrated PostgreSQL schema against what
// Citus accepts when db.Distribute distributes it, so that a migration
// that would break distribution fails here, on plain PostgreSQL, and not
// on an operator's cluster:
//   - every table is either distributed or one of localTables;
//   - every unique constraint and primary key of a distributed table
//     includes its distribution column, or is one Distribute drops;
//   - every foreign key joins two tables of the same distribution on their
//     distribution columns.
func TestDistributionPlan(t *testing.T) {
	b, ok := dbtest.Postgres(t)
	if !ok {
		t.Skipf("needs PostgreSQL: set %s", dbtest.EnvURL)
	}
	conn := b.OpenMigrated(t)
	ctx := context.Background()
	columns, dropped := db.DistributionPlan()

	var tables []string
	const qt = `
		SELECT c.relname FROM pg_class c
		WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p') AND NOT c.relispartition`
	if err := conn.SelectContext(ctx, &tables, qt); err != nil {
		t.Fatal(err)
	}
	for _, table := range tables {
		if _, ok := columns[table]; !ok && !slices.Contains(localTables, table) {
			t.Errorf("table %s is neither distributed by db.Distribute nor kept on the coordinator", table)
		}
	}

	var uniques []struct {
		Table   string         `db:"tbl"`
		Name    string         `db:"name"`
		Columns pq.StringArray `db:"cols"`
	}
	const qu = `
		SELECT c.conrelid::regclass::text AS tbl, c.conname AS name,
			array(SELECT a.attname FROM pg_attribute a WHERE a.attrelid = c.conrelid AND a.attnum = ANY(c.conkey)) AS cols
		FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid
		WHERE c.contype IN ('u', 'p') AND t.relnamespace = current_schema()::regnamespace AND NOT t.relispartition`
	if err := conn.SelectContext(ctx, &uniques, qu); err != nil {
		t.Fatal(err)
	}
	for _, u := range uniques {
		col, distributed := columns[u.Table]
		if distributed && col != "" && !slices.Contains(u.Columns, col) && !slices.Contains(dropped, u.Name) {
			t.Errorf("%s on %s (%v) does not include the distribution column %s: Citus refuses it", u.Name, u.Table, u.Columns, col)
		}
	}

	var fks []struct {
		Table   string         `db:"tbl"`
		Name    string         `db:"name"`
		Columns pq.StringArray `db:"cols"`
		Ref     string         `db:"ref"`
		RefCols pq.StringArray `db:"refcols"`
	}
	const qf = `
		SELECT c.conrelid::regclass::text AS tbl, c.conname AS name, c.confrelid::regclass::text AS ref,
			array(SELECT a.attname FROM pg_attribute a WHERE a.attrelid = c.conrelid AND a.attnum = ANY(c.conkey)) AS cols,
			array(SELECT a.attname FROM pg_attribute a WHERE a.attrelid = c.confrelid AND a.attnum = ANY(c.confkey)) AS refcols
		FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid
		WHERE c.contype = 'f' AND t.relnamespace = current_schema()::regnamespace AND NOT t.relispartition`
	if err := conn.SelectContext(ctx, &fks, qf); err != nil {
		t.Fatal(err)
	}
	byMeter := func(table string) bool { return table == "meters" || columns[table] == "meter_id" }
	for _, f := range fks {
		ok := byMeter(f.Table) && byMeter(f.Ref) &&
			slices.Equal(f.Columns, []string{columns[f.Table]}) && slices.Equal(f.RefCols, []string{columns[f.Ref]})
		if !ok {
			t.Errorf("foreign key %s from %s (%v) to %s (%v) does not join co-located tables on their distribution columns",
				f.Name, f.Table, f.Columns, f.Ref, f.RefCols)
		}
	}
	t.Logf("%d tables, %d unique constraints, %d foreign keys checked", len(tables), len(uniques), len(fks))
}
