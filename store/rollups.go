package store

import (
	"cmp"
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"smartmeters/crypto"
	"smartmeters/store/energy"
)

// Rollups keep the fleet's energy per 5-minute bucket (energy.Grid) as
// readings are stored, so that fleet answers cost the buckets asked for,
// not the readings in them.
//
// Each reading stored is queued (rollup_queue) in the transaction that
// stores it. The follower (FollowRollups, run every second by serve) takes
// the queue in one transaction and adds what the queued readings change to
// the fleet's segments: between two consecutive readings of a meter, its
// registers rise linearly, and each bucket gets the rise across the part
// of the segment inside it, as package energy computes it. A reading after
// the meter's newest rolled-up one (rollup_meters) adds the segment from
// it; a late reading that lands between two stored ones takes that
// segment away and adds the two it is split into. Fleet answers
// (FleetEnergy) read the buckets and add, in the same snapshot, what the
// readings still queued change: never stale, and exact.
//
// A segment longer than maxGridSegment (a meter silent for a day) is kept
// whole in rollup_spans and spread over the buckets asked for when read,
// so that no reading costs more than a day of buckets, whatever its
// timestamp.
//
// Fleet sums are integers of 128 bits, kept as two columns (energy.Wide's
// Split), so that they stay exact with registers near 2^63 Wh.

// maxGridSegment is the longest segment spread over grid buckets when
// rolled up: a day, 288 buckets.
const maxGridSegment = 24 * time.Hour

// leaseFor is how long a rebuild's lease lasts unless renewed; a rebuild
// renews it every leaseFor/6, and a crashed one holds the follower back
// for at most this long.
const leaseFor = time.Minute

// ErrRebuildRunning means another rebuild holds the rollups' lease.
var ErrRebuildRunning = errors.New("another rollups rebuild is running")

// rollupChange is what rolling up some readings changes: buckets of the
// grid, and long segments added and taken away.
type rollupChange struct {
	buckets energy.Change
	added   []span
	removed []span
}

// span is a long segment of one meter, from one reading to the next.
type span struct {
	meter    int64
	from, to crypto.Reading
}

func newRollupChange() *rollupChange { return &rollupChange{buckets: energy.Change{}} }

// addSeries adds the segments of rs, one meter's readings in time order,
// or takes them away when sub is set.
func (c *rollupChange) addSeries(meter int64, rs []crypto.Reading, sub bool) {
	for i := 1; i < len(rs); i++ {
		p, r := rs[i-1], rs[i]
		if r.Timestamp-p.Timestamp > maxGridSegment.Milliseconds() {
			if sub {
				c.removed = append(c.removed, span{meter, p, r})
			} else {
				c.added = append(c.added, span{meter, p, r})
			}
			continue
		}
		c.buckets.AddSeries(rs[i-1:i+1], sub)
	}
}

// queuedReading is a reading stored and not yet rolled up.
type queuedReading struct {
	meter int64
	crypto.Reading
}

// RollupsBuilt reports whether the rollups cover every stored reading:
// false on a database that held readings before rollups came, until
// RebuildRollups has run over all of them.
func (s *Store) RollupsBuilt(ctx context.Context) (bool, error) {
	var built bool
	if err := s.db.GetContext(ctx, &built, `SELECT built FROM rollup_state WHERE id = 1`); err != nil {
		return false, fmt.Errorf("rollup state: %w", err)
	}
	return built, nil
}

// FollowRollups rolls up the readings queued, in one transaction, and
// returns how many. It does nothing, and returns 0, while a rebuild holds
// the lease or another follower is at it. Any number of servers may call
// it at once.
func (s *Store) FollowRollups(ctx context.Context) (int, error) {
	n, err := s.followRollups(ctx)
	if serializationFailure(err) {
		return 0, nil // another follower rolled up after this one's snapshot
	}
	return n, err
}

func (s *Store) followRollups(ctx context.Context) (int, error) {
	// On PostgreSQL the transaction is one snapshot, so that the readings
	// it reads are exactly those stored before the queue it takes; SQLite's
	// write transaction runs alone.
	var opts *sql.TxOptions
	if s.postgres {
		opts = &sql.TxOptions{Isolation: sql.LevelRepeatableRead}
	}
	defer s.lockWriter()()
	tx, err := s.db.BeginTxx(ctx, opts)
	if err != nil {
		return 0, fmt.Errorf("follow rollups: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	// The state row is what followers and a rebuild's lease line up on: a
	// follower at work holds it, others skip, and taking the lease waits
	// for the follower to finish.
	lock := `SELECT lease_until FROM rollup_state WHERE id = 1`
	if s.postgres {
		lock += ` FOR UPDATE SKIP LOCKED`
	}
	var until int64
	if err := tx.GetContext(ctx, &until, lock); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return 0, nil // another follower is at work
		}
		return 0, fmt.Errorf("follow rollups: %w", err)
	}
	if until > time.Now().UnixMilli() {
		return 0, nil
	}
	if err := s.commuteOnCluster(ctx, tx); err != nil {
		return 0, err
	}
	queued, err := takeQueue(ctx, tx)
	if err != nil {
		return 0, err
	}
	if len(queued) == 0 {
		return 0, tx.Commit()
	}
	change, last, err := s.changeOf(ctx, tx, queued)
	if err != nil {
		return 0, err
	}
	if err := s.applyChange(ctx, tx, change); err != nil {
		return 0, err
	}
	if err := s.putLast(ctx, tx, last); err != nil {
		return 0, err
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("follow rollups: commit: %w", err)
	}
	return len(queued), nil
}

// commuteOnCluster tells a Citus cluster that the transaction's taking of
// the queue commutes with the ingest that fills it: the follower removes
// only rows of its snapshot, and the rows added meanwhile stay. That
// spares the ingest calls on the queue's shards the wait for the
// follower's shard locks. Elsewhere it does nothing.
func (s *Store) commuteOnCluster(ctx context.Context, tx *sqlx.Tx) error {
	if !s.postgres {
		return nil
	}
	cluster, err := s.isCluster(ctx)
	if err != nil || !cluster {
		return err
	}
	if _, err := tx.ExecContext(ctx, `SET LOCAL citus.all_modifications_commutative TO on`); err != nil {
		return fmt.Errorf("follow rollups: %w", err)
	}
	return nil
}

// serializationFailure reports whether err is PostgreSQL's refusal to let
// a REPEATABLE READ transaction change a row another changed after its
// snapshot.
func serializationFailure(err error) bool {
	var pqErr *pq.Error
	return errors.As(err, &pqErr) && pqErr.Code == "40001"
}

// takeQueue removes the queued readings and returns them.
func takeQueue(ctx context.Context, tx *sqlx.Tx) ([]queuedReading, error) {
	return scanQueue(ctx, tx, `DELETE FROM rollup_queue RETURNING meter_id, timestamp, wh_in, wh_out`)
}

func scanQueue(ctx context.Context, q sqlx.QueryerContext, query string) ([]queuedReading, error) {
	rows, err := q.QueryContext(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("rollup queue: %w", err)
	}
	defer rows.Close()
	var out []queuedReading
	for rows.Next() {
		var r queuedReading
		if err := rows.Scan(&r.meter, &r.Timestamp, &r.WhIn, &r.WhOut); err != nil {
			return nil, fmt.Errorf("rollup queue: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("rollup queue: %w", err)
	}
	return out, nil
}

// changeOf returns what rolling up queued changes, and each of its meters'
// newest reading once it is rolled up. q must see one snapshot in which
// queued is the whole queue: then every reading of the snapshot that is
// not queued is rolled up.
func (s *Store) changeOf(ctx context.Context, q sqlx.ExtContext, queued []queuedReading) (*rollupChange, map[int64]crypto.Reading, error) {
	byMeter := map[int64][]crypto.Reading{}
	for _, r := range queued {
		byMeter[r.meter] = append(byMeter[r.meter], r.Reading)
	}
	ids := make([]int64, 0, len(byMeter))
	for id, rs := range byMeter {
		slices.SortFunc(rs, func(a, b crypto.Reading) int { return cmp.Compare(a.Timestamp, b.Timestamp) })
		ids = append(ids, id)
	}
	slices.Sort(ids)
	last, err := s.lastRolledUp(ctx, q, ids)
	if err != nil {
		return nil, nil, err
	}
	c := newRollupChange()
	newest := make(map[int64]crypto.Reading, len(ids))
	for _, id := range ids {
		added := byMeter[id]
		l, ok := last[id]
		newest[id] = added[len(added)-1]
		switch {
		case !ok:
			c.addSeries(id, added, false)
		case added[0].Timestamp > l.Timestamp:
			c.addSeries(id, append([]crypto.Reading{l}, added...), false)
		default:
			if l.Timestamp > added[len(added)-1].Timestamp {
				newest[id] = l
			}
			if err := s.addLate(ctx, q, c, id, added); err != nil {
				return nil, nil, err
			}
		}
	}
	return c, newest, nil
}

// addLate adds to c what the readings added, some of them before the
// meter's newest rolled-up reading, change. Each run of added readings
// that are neighbours in time replaces the segment between the rolled-up
// readings around it by the segments through the run.
func (s *Store) addLate(ctx context.Context, q sqlx.QueryerContext, c *rollupChange, meter int64, added []crypto.Reading) error {
	isAdded := make(map[int64]bool, len(added))
	for _, r := range added {
		isAdded[r.Timestamp] = true
	}
	for i := 0; i < len(added); {
		prev, hasPrev, err := s.neighbour(ctx, q, meter, added[i].Timestamp, false)
		if err != nil {
			return err
		}
		// The run: added readings each followed by the next added one.
		j := i
		var next crypto.Reading
		var hasNext bool
		for {
			next, hasNext, err = s.neighbour(ctx, q, meter, added[j].Timestamp, true)
			if err != nil {
				return err
			}
			if !hasNext || !isAdded[next.Timestamp] {
				break
			}
			j++
		}
		chain := make([]crypto.Reading, 0, j-i+3)
		if hasPrev {
			chain = append(chain, prev)
		}
		chain = append(chain, added[i:j+1]...)
		if hasNext {
			chain = append(chain, next)
		}
		c.addSeries(meter, chain, false)
		if hasPrev && hasNext {
			c.addSeries(meter, []crypto.Reading{prev, next}, true)
		}
		i = j + 1
	}
	return nil
}

// neighbour returns the meter's reading just before t, or just after it
// when after is set.
func (s *Store) neighbour(ctx context.Context, q sqlx.QueryerContext, meter, t int64, after bool) (crypto.Reading, bool, error) {
	query := `SELECT timestamp, wh_in, wh_out FROM readings WHERE meter_id = $1 AND timestamp < $2 ORDER BY meter_id DESC, timestamp DESC LIMIT 1`
	if after {
		query = `SELECT timestamp, wh_in, wh_out FROM readings WHERE meter_id = $1 AND timestamp > $2 ORDER BY meter_id, timestamp LIMIT 1`
	}
	var r crypto.Reading
	err := q.QueryRowxContext(ctx, query, meter, t).Scan(&r.Timestamp, &r.WhIn, &r.WhOut)
	if errors.Is(err, sql.ErrNoRows) {
		return r, false, nil
	}
	if err != nil {
		return r, false, fmt.Errorf("neighbour of meter %d at %d: %w", meter, t, err)
	}
	return r, true, nil
}

// lastRolledUp returns the newest rolled-up reading of each of ids that
// has one.
func (s *Store) lastRolledUp(ctx context.Context, q sqlx.QueryerContext, ids []int64) (map[int64]crypto.Reading, error) {
	out := make(map[int64]crypto.Reading, len(ids))
	scan := func(rows *sqlx.Rows) error {
		defer rows.Close()
		for rows.Next() {
			var id int64
			var r crypto.Reading
			if err := rows.Scan(&id, &r.Timestamp, &r.WhIn, &r.WhOut); err != nil {
				return err
			}
			out[id] = r
		}
		return rows.Err()
	}
	const cols = `SELECT meter_id, timestamp, wh_in, wh_out FROM rollup_meters WHERE meter_id `
	if s.postgres {
		rows, err := q.QueryxContext(ctx, cols+`= ANY($1)`, pq.Array(ids))
		if err == nil {
			err = scan(rows)
		}
		if err != nil {
			return nil, fmt.Errorf("rolled-up readings: %w", err)
		}
		return out, nil
	}
	for chunk := range slices.Chunk(ids, 500) {
		args := make([]any, len(chunk))
		for i, id := range chunk {
			args[i] = id
		}
		rows, err := q.QueryxContext(ctx, cols+`IN (?`+strings.Repeat(`,?`, len(chunk)-1)+`)`, args...)
		if err == nil {
			err = scan(rows)
		}
		if err != nil {
			return nil, fmt.Errorf("rolled-up readings: %w", err)
		}
	}
	return out, nil
}

// rowsPerStatement bounds the rows of one multi-row INSERT.
const rowsPerStatement = 500

// applyChange adds c to the rollups.
func (s *Store) applyChange(ctx context.Context, tx *sqlx.Tx, c *rollupChange) error {
	if err := s.addBuckets(ctx, tx, c.buckets, `
		ON CONFLICT (bucket) DO UPDATE SET
			in_high = fleet_rollups.in_high + excluded.in_high + ((fleet_rollups.in_low + excluded.in_low) >> 32),
			in_low = (fleet_rollups.in_low + excluded.in_low) & 4294967295,
			out_high = fleet_rollups.out_high + excluded.out_high + ((fleet_rollups.out_low + excluded.out_low) >> 32),
			out_low = (fleet_rollups.out_low + excluded.out_low) & 4294967295`); err != nil {
		return err
	}
	for _, sp := range c.removed {
		// The span is gone already when retention dropped it.
		if _, err := tx.ExecContext(ctx, `DELETE FROM rollup_spans WHERE meter_id = $1 AND from_ts = $2`, sp.meter, sp.from.Timestamp); err != nil {
			return fmt.Errorf("rollups: remove span: %w", err)
		}
	}
	return insertSpans(ctx, tx, c.added)
}

// addBuckets inserts the buckets of c, with onConflict after each
// statement.
func (s *Store) addBuckets(ctx context.Context, tx *sqlx.Tx, c energy.Change, onConflict string) error {
	starts := make([]int64, 0, len(c))
	for start := range c {
		starts = append(starts, start)
	}
	slices.Sort(starts) // one order for every writer
	for chunk := range slices.Chunk(starts, rowsPerStatement) {
		args := make([]any, 0, 5*len(chunk))
		for _, start := range chunk {
			e := c[start]
			ih, il := e[0].Split()
			oh, ol := e[1].Split()
			args = append(args, start, ih, il, oh, ol)
		}
		q := `INSERT INTO fleet_rollups (bucket, in_high, in_low, out_high, out_low) VALUES ` + placeholders(len(chunk), 5) + onConflict
		if _, err := tx.ExecContext(ctx, tx.Rebind(q), args...); err != nil {
			return fmt.Errorf("rollups: buckets: %w", err)
		}
	}
	return nil
}

func insertSpans(ctx context.Context, tx *sqlx.Tx, spans []span) error {
	for chunk := range slices.Chunk(spans, rowsPerStatement) {
		args := make([]any, 0, 7*len(chunk))
		for _, sp := range chunk {
			args = append(args, sp.meter, sp.from.Timestamp, sp.to.Timestamp, sp.from.WhIn, sp.to.WhIn, sp.from.WhOut, sp.to.WhOut)
		}
		q := `INSERT INTO rollup_spans (meter_id, from_ts, to_ts, from_in, to_in, from_out, to_out) VALUES ` + placeholders(len(chunk), 7)
		if _, err := tx.ExecContext(ctx, tx.Rebind(q), args...); err != nil {
			return fmt.Errorf("rollups: spans: %w", err)
		}
	}
	return nil
}

// putLast records each meter's newest rolled-up reading.
func (s *Store) putLast(ctx context.Context, tx *sqlx.Tx, last map[int64]crypto.Reading) error {
	ids := make([]int64, 0, len(last))
	for id := range last {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for chunk := range slices.Chunk(ids, rowsPerStatement) {
		args := make([]any, 0, 4*len(chunk))
		for _, id := range chunk {
			r := last[id]
			args = append(args, id, r.Timestamp, r.WhIn, r.WhOut)
		}
		q := `INSERT INTO rollup_meters (meter_id, timestamp, wh_in, wh_out) VALUES ` + placeholders(len(chunk), 4) +
			` ON CONFLICT (meter_id) DO UPDATE SET timestamp = excluded.timestamp, wh_in = excluded.wh_in, wh_out = excluded.wh_out`
		if _, err := tx.ExecContext(ctx, tx.Rebind(q), args...); err != nil {
			return fmt.Errorf("rollups: newest readings: %w", err)
		}
	}
	return nil
}

// FleetEnergy returns the energy the fleet imported and exported between
// each two consecutive edges (Unix milliseconds, increasing, each on the
// 5-minute grid), in Wh, held within the int64 limits: the rollups plus
// what the readings not yet rolled up add, read in one snapshot. It equals
// spreading every segment between consecutive readings of every meter
// over the buckets, however long the segment.
func (s *Store) FleetEnergy(ctx context.Context, edges []int64) ([][2]int64, error) {
	if len(edges) < 2 {
		return nil, nil
	}
	for i, e := range edges {
		if e%energy.GridMillis != 0 || (i > 0 && e <= edges[i-1]) {
			return nil, fmt.Errorf("fleet energy: edges must increase on the %s grid", energy.Grid)
		}
	}
	opts := &sql.TxOptions{ReadOnly: true}
	if s.postgres {
		opts.Isolation = sql.LevelRepeatableRead
	}
	tx, err := s.db.BeginTxx(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("fleet energy: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // read-only
	sums := make([][2]energy.Wide, len(edges)-1)
	from, to := edges[0], edges[len(edges)-1]
	// bucketOf finds the output bucket of a grid bucket; grid buckets come
	// in increasing order, so it walks.
	k := 0
	bucketOf := func(start int64) int {
		for k < len(sums) && start >= edges[k+1] {
			k++
		}
		return k
	}
	// PostgreSQL adds the grid's buckets up per answer bucket itself, so
	// that a year of them is not sent over; SQLite, in the process, hands
	// them over one by one.
	query, args := `
		SELECT bucket, in_high, in_low, out_high, out_low FROM fleet_rollups
		WHERE bucket >= $1 AND bucket < $2 ORDER BY bucket`, []any{from, to}
	if s.postgres {
		query, args = `
			SELECT width_bucket(bucket, $3::bigint[]) - 1 AS k, sum(in_high), sum(in_low), sum(out_high), sum(out_low)
			FROM fleet_rollups WHERE bucket >= $1 AND bucket < $2 GROUP BY k ORDER BY k`, []any{from, to, pq.Array(edges)}
	}
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("fleet energy: %w", err)
	}
	err = func() error {
		defer rows.Close()
		for rows.Next() {
			var at, ih, il, oh, ol int64
			if err := rows.Scan(&at, &ih, &il, &oh, &ol); err != nil {
				return err
			}
			i := int(at)
			if !s.postgres {
				i = bucketOf(at)
			}
			if i < 0 || i >= len(sums) {
				return fmt.Errorf("bucket %d of %d", i, len(sums))
			}
			sums[i][0], sums[i][1] = sums[i][0].Add(energy.Join(ih, il)), sums[i][1].Add(energy.Join(oh, ol))
		}
		return rows.Err()
	}()
	if err != nil {
		return nil, fmt.Errorf("fleet energy: %w", err)
	}
	spans, err := spansBetween(ctx, tx, from, to)
	if err != nil {
		return nil, err
	}
	queued, err := scanQueue(ctx, tx, `SELECT meter_id, timestamp, wh_in, wh_out FROM rollup_queue`)
	if err != nil {
		return nil, err
	}
	if len(queued) > 0 {
		c, _, err := s.changeOf(ctx, tx, queued)
		if err != nil {
			return nil, err
		}
		starts := make([]int64, 0, len(c.buckets))
		for start := range c.buckets {
			if start >= from && start < to {
				starts = append(starts, start)
			}
		}
		slices.Sort(starts)
		k = 0
		for _, start := range starts {
			i, e := bucketOf(start), c.buckets[start]
			sums[i][0], sums[i][1] = sums[i][0].Add(e[0]), sums[i][1].Add(e[1])
		}
		for _, sp := range c.added {
			spread(sums, edges, sp, false)
		}
		for _, sp := range c.removed {
			spread(sums, edges, sp, true)
		}
	}
	for _, sp := range spans {
		spread(sums, edges, sp, false)
	}
	out := make([][2]int64, len(sums))
	for i, e := range sums {
		out[i] = [2]int64{e[0].Int64(), e[1].Int64()}
	}
	return out, nil
}

// spread adds the energy of a long segment to the buckets between edges,
// or takes it away.
func spread(sums [][2]energy.Wide, edges []int64, sp span, sub bool) {
	p, r := sp.from, sp.to
	first, _ := slices.BinarySearch(edges, p.Timestamp+1)
	for i := max(first-1, 0); i < len(sums) && edges[i] < r.Timestamp; i++ {
		lo, hi := max(p.Timestamp, edges[i]), min(r.Timestamp, edges[i+1])
		if hi <= lo {
			continue
		}
		wIn, wOut := energy.Share(p, r, lo, hi)
		in, out := energy.WideOf(wIn), energy.WideOf(wOut)
		if sub {
			in, out = in.Neg(), out.Neg()
		}
		sums[i][0], sums[i][1] = sums[i][0].Add(in), sums[i][1].Add(out)
	}
}

// spansBetween returns the long segments that overlap [from, to).
func spansBetween(ctx context.Context, q sqlx.QueryerContext, from, to int64) ([]span, error) {
	rows, err := q.QueryContext(ctx, `
		SELECT meter_id, from_ts, to_ts, from_in, to_in, from_out, to_out FROM rollup_spans
		WHERE to_ts > $1 AND from_ts < $2`, from, to)
	if err != nil {
		return nil, fmt.Errorf("rollup spans: %w", err)
	}
	defer rows.Close()
	var out []span
	for rows.Next() {
		var sp span
		if err := rows.Scan(&sp.meter, &sp.from.Timestamp, &sp.to.Timestamp, &sp.from.WhIn, &sp.to.WhIn, &sp.from.WhOut, &sp.to.WhOut); err != nil {
			return nil, fmt.Errorf("rollup spans: %w", err)
		}
		out = append(out, sp)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("rollup spans: %w", err)
	}
	return out, nil
}

// DropRollupsBefore removes the fleet's buckets, and the long segments,
// that end before horizon, and returns how many buckets it removed.
func (s *Store) DropRollupsBefore(ctx context.Context, horizon time.Time) (int64, error) {
	h := horizon.UnixMilli()
	res, err := s.db.ExecContext(ctx, `DELETE FROM fleet_rollups WHERE bucket <= $1`, h-energy.GridMillis)
	if err != nil {
		return 0, fmt.Errorf("drop rollups before %s: %w", horizon, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("drop rollups before %s: %w", horizon, err)
	}
	if _, err := s.db.ExecContext(ctx, `DELETE FROM rollup_spans WHERE to_ts <= $1`, h); err != nil {
		return n, fmt.Errorf("drop rollup spans before %s: %w", horizon, err)
	}
	return n, nil
}

// RebuildProgress is how far a rebuild has got.
type RebuildProgress struct {
	Meters, MetersDone int
	Readings           int64 // readings read so far
}

// RebuildResult is what a rebuild did.
type RebuildResult struct {
	From, To time.Time // the buckets rebuilt: [From, To)
	RebuildProgress
	Buckets int // buckets written
	Spans   int // long segments written
}

// RebuildRollups builds the rollups of [from, to), widened to whole
// buckets, from the readings stored; zero times mean from the first
// reading and to past the last one, which also records each meter's newest
// reading and marks the rollups built. It reads every reading in the range
// once, meter by meter, in one snapshot, and replaces the buckets in one
// transaction at the end. Ingest goes on meanwhile: readings stored during
// the rebuild stay queued, the follower waits for the rebuild (a lease,
// renewed as it goes), and fleet answers add the queue as always.
// Running it again gives the same rollups.
func (s *Store) RebuildRollups(ctx context.Context, from, to time.Time, progress func(RebuildProgress)) (res RebuildResult, err error) {
	lease := rand.Text()
	if err := s.takeLease(ctx, lease); err != nil {
		return res, err
	}
	parent := ctx
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	// A lease that could not be renewed cancels the rebuild: say why,
	// rather than that its context was canceled.
	defer func() {
		if cause := context.Cause(ctx); err != nil && parent.Err() == nil && cause != nil && !errors.Is(cause, context.Canceled) {
			err = cause
		}
	}()
	renewed := make(chan struct{})
	go func() {
		defer close(renewed)
		t := time.NewTicker(leaseFor / 6)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := s.renewLease(ctx, lease); err != nil {
					cancel(err)
					return
				}
			}
		}
	}()
	defer func() {
		cancel(nil)
		<-renewed
		s.releaseLease(context.WithoutCancel(ctx), lease) //nolint:errcheck // the lease expires anyway
	}()

	opts := &sql.TxOptions{ReadOnly: true}
	if s.postgres {
		opts.Isolation = sql.LevelRepeatableRead
	}
	snap, err := s.db.BeginTxx(ctx, opts)
	if err != nil {
		return res, fmt.Errorf("rebuild rollups: %w", err)
	}
	defer snap.Rollback() //nolint:errcheck // read-only
	full := from.IsZero() && to.IsZero()
	lo, hi, found, err := readingSpan(ctx, snap)
	if err != nil {
		return res, err
	}
	if from.IsZero() {
		from = time.UnixMilli(lo)
	}
	if to.IsZero() {
		to = time.UnixMilli(hi + 1)
	}
	f, t := energy.GridFloor(from.UnixMilli()), energy.GridFloor(to.UnixMilli()-1)+energy.GridMillis
	res.From, res.To = time.UnixMilli(f).UTC(), time.UnixMilli(t).UTC()
	queued, err := scanQueue(ctx, snap, `SELECT meter_id, timestamp, wh_in, wh_out FROM rollup_queue`)
	if err != nil {
		return res, err
	}
	isQueued := make(map[readingKey]bool, len(queued))
	for _, q := range queued {
		isQueued[readingKey{q.meter, q.Timestamp}] = true
	}
	var ids []int64
	if err := snap.SelectContext(ctx, &ids, `SELECT id FROM meters ORDER BY id`); err != nil {
		return res, fmt.Errorf("rebuild rollups: meters: %w", err)
	}
	res.Meters = len(ids)
	c := newRollupChange()
	last := map[int64]crypto.Reading{}
	for _, id := range ids {
		if !found {
			break
		}
		rs, err := registerSeries(ctx, snap, id, f, t)
		if err != nil {
			return res, err
		}
		res.Readings += int64(len(rs))
		// The readings just outside the range may be queued, not rolled
		// up: the segment at each edge then starts or ends at the nearest
		// rolled-up reading further out.
		for len(rs) > 0 && rs[0].Timestamp < f && isQueued[readingKey{id, rs[0].Timestamp}] {
			p, ok, err := s.neighbour(ctx, snap, id, rs[0].Timestamp, false)
			if err != nil {
				return res, err
			}
			if !ok {
				break
			}
			rs = slices.Insert(rs, 0, p)
		}
		for n := len(rs); n > 0 && rs[n-1].Timestamp > t && isQueued[readingKey{id, rs[n-1].Timestamp}]; n = len(rs) {
			r, ok, err := s.neighbour(ctx, snap, id, rs[n-1].Timestamp, true)
			if err != nil {
				return res, err
			}
			if !ok {
				break
			}
			rs = append(rs, r)
		}
		rs = slices.DeleteFunc(rs, func(r crypto.Reading) bool { return isQueued[readingKey{id, r.Timestamp}] })
		if len(rs) > 0 && full {
			last[id] = rs[len(rs)-1]
		}
		seg := newRollupChange()
		seg.addSeries(id, rs, false)
		for start, e := range seg.buckets {
			if start < f || start >= t {
				continue
			}
			if sum := c.buckets[start]; sum != nil {
				sum[0], sum[1] = sum[0].Add(e[0]), sum[1].Add(e[1])
			} else {
				c.buckets[start] = e
			}
		}
		// The series reaches one reading past each end of the range; a
		// long segment that only touches it is outside.
		for _, sp := range seg.added {
			if sp.to.Timestamp > f && sp.from.Timestamp < t {
				c.added = append(c.added, sp)
			}
		}
		res.MetersDone++
		if progress != nil && (res.MetersDone%1000 == 0 || res.MetersDone == res.Meters) {
			progress(res.RebuildProgress)
		}
	}
	snap.Rollback() //nolint:errcheck // read-only

	defer s.lockWriter()()
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return res, fmt.Errorf("rebuild rollups: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	var holder string
	check := `SELECT lease_owner FROM rollup_state WHERE id = 1`
	if s.postgres {
		check += ` FOR UPDATE`
	}
	if err := tx.GetContext(ctx, &holder, check); err != nil {
		return res, fmt.Errorf("rebuild rollups: %w", err)
	}
	if holder != lease {
		return res, fmt.Errorf("rebuild rollups: the lease was lost: %w", ErrRebuildRunning)
	}
	stale := []string{
		`DELETE FROM fleet_rollups WHERE bucket >= $1 AND bucket < $2`,
		`DELETE FROM rollup_spans WHERE to_ts > $1 AND from_ts < $2`,
	}
	for _, q := range stale {
		if _, err := tx.ExecContext(ctx, q, f, t); err != nil {
			return res, fmt.Errorf("rebuild rollups: %w", err)
		}
	}
	if full {
		if _, err := tx.ExecContext(ctx, `DELETE FROM rollup_meters`); err != nil {
			return res, fmt.Errorf("rebuild rollups: %w", err)
		}
	}
	if err := s.addBuckets(ctx, tx, c.buckets, ""); err != nil {
		return res, err
	}
	if err := insertSpans(ctx, tx, c.added); err != nil {
		return res, err
	}
	if full {
		if err := s.putLast(ctx, tx, last); err != nil {
			return res, err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE rollup_state SET built = $1 WHERE id = 1`, true); err != nil {
			return res, fmt.Errorf("rebuild rollups: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return res, fmt.Errorf("rebuild rollups: commit: %w", err)
	}
	res.Buckets, res.Spans = len(c.buckets), len(c.added)
	return res, nil
}

// readingSpan returns the first and last timestamps stored, and whether
// there are any.
func readingSpan(ctx context.Context, q sqlx.QueryerContext) (lo, hi int64, found bool, err error) {
	var l, h sql.NullInt64
	if err := q.QueryRowxContext(ctx, `SELECT min(timestamp), max(timestamp) FROM readings`).Scan(&l, &h); err != nil {
		return 0, 0, false, fmt.Errorf("rebuild rollups: readings: %w", err)
	}
	return l.Int64, h.Int64, l.Valid, nil
}

func (s *Store) takeLease(ctx context.Context, owner string) error {
	now := time.Now().UnixMilli()
	res, err := s.db.ExecContext(ctx, `
		UPDATE rollup_state SET lease_owner = $1, lease_until = $2
		WHERE id = 1 AND (lease_until < $3 OR lease_owner = $1)`, owner, now+leaseFor.Milliseconds(), now)
	if err != nil {
		return fmt.Errorf("rebuild rollups: lease: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return fmt.Errorf("rebuild rollups: %w", ErrRebuildRunning)
	}
	return nil
}

func (s *Store) renewLease(ctx context.Context, owner string) error {
	res, err := s.db.ExecContext(ctx, `UPDATE rollup_state SET lease_until = $1 WHERE id = 1 AND lease_owner = $2`,
		time.Now().Add(leaseFor).UnixMilli(), owner)
	if err != nil {
		return fmt.Errorf("rebuild rollups: renew lease: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return fmt.Errorf("rebuild rollups: the lease was lost: %w", ErrRebuildRunning)
	}
	return nil
}

func (s *Store) releaseLease(ctx context.Context, owner string) error {
	_, err := s.db.ExecContext(ctx, `UPDATE rollup_state SET lease_owner = '', lease_until = 0 WHERE id = 1 AND lease_owner = $1`, owner)
	return err
}
