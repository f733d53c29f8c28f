package server_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"smartmeters/db/dbtest"
	"smartmeters/server"
	"smartmeters/store"
)

// BenchmarkReportingAtScale seeds PostgreSQL with
// SMARTMETERS_BENCH_SCALE_ROWS readings (1,000 per meter, 15 minutes apart,
// ending now) and one meter with a year of readings, builds the rollups from them as `smartmeters rollups
// rebuild` does, and times the reporting endpoints through the full HTTP
// stack (p95 and worst of the requests). It runs only when that variable
// and SMARTMETERS_TEST_DATABASE_URL are set:
//
//	SMARTMETERS_BENCH_SCALE_ROWS=10000000 go test ./server -run XXX \
//	    -bench BenchmarkReportingAtScale -benchtime 20x -timeout 30m
func BenchmarkReportingAtScale(b *testing.B) {
	rows, _ := strconv.ParseInt(os.Getenv("SMARTMETERS_BENCH_SCALE_ROWS"), 10, 64)
	if rows <= 0 {
		b.Skip("set SMARTMETERS_BENCH_SCALE_ROWS (and SMARTMETERS_TEST_DATABASE_URL) to run")
	}
	pg, ok := dbtest.Postgres(b)
	if !ok {
		b.Skip("PostgreSQL is needed")
	}
	const perMeter = 1000
	meters := max(rows/perMeter, 1)
	conn := pg.OpenMigrated(b)
	ctx := context.Background()
	end := time.Now().Truncate(15 * time.Minute)

	start := time.Now()
	// Fingerprints only have to be unique: sha256 of the username.
	for _, q := range []string{`
		INSERT INTO meters (username, public_key, fingerprint, algorithm, registered_at, key_seq)
		SELECT 'bench-' || g, '\x00'::bytea, sha256(('bench-' || g)::bytea), 'ed25519', now(), 1
		FROM generate_series(1, $1::bigint) g`, `
		INSERT INTO meter_keys (meter_id, seq, fingerprint, public_key, algorithm, added_at)
		SELECT id, 1, fingerprint, public_key, algorithm, registered_at FROM meters`, `
		INSERT INTO key_fingerprints (fingerprint, meter_id, seq) SELECT fingerprint, id, 1 FROM meters`, `
		INSERT INTO meter_usernames (username, meter_id) SELECT username, id FROM meters`,
	} {
		var args []any
		if strings.Contains(q, "$1") {
			args = append(args, meters)
		}
		if _, err := conn.ExecContext(ctx, q, args...); err != nil {
			b.Fatal(err)
		}
	}
	// Each meter reports every 15 minutes at its own offset, importing
	// 200-300 Wh and exporting 40 Wh per reading.
	if _, err := conn.ExecContext(ctx, `
		INSERT INTO readings (meter_id, timestamp, wh_in, wh_out, signature, received_at, key_seq)
		SELECT m.id, t.ts, i * (200 + m.id % 100), i * 40, '\x00'::bytea, to_timestamp(t.ts / 1000.0), 1
		FROM meters m
		CROSS JOIN generate_series(0, $1::bigint - 1) i
		CROSS JOIN LATERAL (SELECT $2::bigint - ($1::bigint - 1 - i) * 900000 - (m.id * 7919) % 900000 AS ts) t`,
		perMeter, end.UnixMilli()); err != nil {
		b.Fatal(err)
	}
	// One more meter with a year of readings, 15 minutes apart, for a
	// meter's year in days.
	var yearMeter int64
	if err := conn.GetContext(ctx, &yearMeter, `
		WITH m AS (
			INSERT INTO meters (username, public_key, fingerprint, algorithm, registered_at, key_seq)
			VALUES ('bench-year', '\x00'::bytea, sha256('bench-year'::bytea), 'ed25519', now(), 1) RETURNING id)
		SELECT id FROM m`); err != nil {
		b.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, `
		INSERT INTO readings (meter_id, timestamp, wh_in, wh_out, signature, received_at, key_seq)
		SELECT $1, $2::bigint - i * 900000, (35040 - i) * 250, (35040 - i) * 40, '\x00'::bytea, now(), 1
		FROM generate_series(0::bigint, 35039) i`, yearMeter, end.UnixMilli()); err != nil {
		b.Fatal(err)
	}
	// VACUUM as well, so that autovacuum, woken by the inserts, does not
	// run while the requests are timed.
	if _, err := conn.ExecContext(ctx, `VACUUM ANALYZE`); err != nil {
		b.Fatal(err)
	}
	var n int64
	if err := conn.GetContext(ctx, &n, `SELECT count(*) FROM readings`); err != nil {
		b.Fatal(err)
	}
	b.Logf("seeded %d meters, %d readings in %s", meters, n, time.Since(start).Round(time.Millisecond))
	st := store.New(conn)
	start = time.Now()
	res, err := st.RebuildRollups(ctx, time.Time{}, time.Time{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, `VACUUM ANALYZE fleet_rollups, rollup_meters, rollup_queue`); err != nil {
		b.Fatal(err)
	}
	var size string
	if err := conn.GetContext(ctx, &size, `
		SELECT pg_size_pretty(sum(pg_total_relation_size(t))) FROM unnest(ARRAY['fleet_rollups', 'rollup_meters', 'rollup_spans']::regclass[]) t`); err != nil {
		b.Fatal(err)
	}
	b.Logf("rollups rebuilt from %d readings in %s: %d buckets, %d long segments, %s on disk",
		res.Readings, time.Since(start).Round(time.Millisecond), res.Buckets, res.Spans, size)

	srv := newServer(b, server.DefaultConfig(), st)
	adm := httptest.NewServer(srv.AdminHandler())
	b.Cleanup(adm.Close)

	month := end.Add(-30 * 24 * time.Hour)
	year := end.Add(-365 * 24 * time.Hour)
	paths := []struct{ name, path string }{
		{"ConsumptionMonth15m", fmt.Sprintf("/meters/%d/consumption?bucket=15m&from=%d&to=%d", meters/2, month.UnixMilli(), end.UnixMilli())},
		{"ConsumptionYear1d", fmt.Sprintf("/meters/%d/consumption?bucket=1d&from=%d&to=%d", yearMeter, year.UnixMilli(), end.UnixMilli())},
		{"Fleet", "/fleet"},
		{"Fleet24h1h", fmt.Sprintf("/fleet?bucket=1h&from=%d&to=%d", end.Add(-24*time.Hour).UnixMilli(), end.UnixMilli())},
		{"Fleet30d1d", fmt.Sprintf("/fleet?bucket=1d&from=%d&to=%d", month.UnixMilli(), end.UnixMilli())},
		{"FleetYear1moBerlin", fmt.Sprintf("/fleet?bucket=1mo&tz=Europe/Berlin&from=%d&to=%d", year.UnixMilli(), end.UnixMilli())},
		{"Meter", fmt.Sprintf("/meters/%d", meters/2)},
		{"MetersPageFirst", "/meters?limit=100"},
		{"MetersPageMiddle", fmt.Sprintf("/meters?limit=100&after=%d", meters/2)},
		{"MetersPageLast", fmt.Sprintf("/meters?limit=100&after=%d", meters-100)},
		{"ReadingsPage", fmt.Sprintf("/meters/%d/readings?limit=1000&from=%d", meters/2, month.UnixMilli())},
	}
	for _, p := range paths {
		b.Run(p.name, func(b *testing.B) {
			var took []time.Duration
			for b.Loop() {
				t0 := time.Now()
				res, err := http.Get(adm.URL + p.path)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.Copy(io.Discard, res.Body); err != nil {
					b.Fatal(err)
				}
				res.Body.Close()
				if res.StatusCode != http.StatusOK {
					b.Fatalf("GET %s: %d", p.path, res.StatusCode)
				}
				took = append(took, time.Since(t0))
			}
			slices.Sort(took)
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/req")
			b.ReportMetric(float64(took[(len(took)*95+99)/100-1].Microseconds())/1000, "p95-ms")
			b.ReportMetric(float64(took[len(took)-1].Microseconds())/1000, "worst-ms")
		})
	}
}
