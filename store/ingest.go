package store

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/lib/pq"
)

// functionOutcomes are ingest_readings' outcome codes (migration 00008).
var functionOutcomes = [...]Outcome{1: Stored, 2: Duplicate, 3: Conflict, 4: Decreased, 5: KeyReplaced, 7: KeyRevoked}

// ingestPostgres stores rs through ingest_readings: one call, one round
// trip and one transaction for the batch on one database; on a Citus
// cluster one call per shard the batch touches, made at once, each
// delegated to the worker that holds the shard, where all of it runs. A
// call that fails leaves its readings' outcomes 0.
func (s *Store) ingestPostgres(ctx context.Context, rs []Reading) ([]Outcome, error) {
	groups, err := s.shardGroups(ctx, rs)
	if err != nil {
		return nil, err
	}
	out := make([]Outcome, len(rs))
	if len(groups) == 1 {
		return out, s.callIngest(ctx, rs, groups[0], out)
	}
	// One call per shard, at once: each runs on its own worker, and fills
	// its own readings' outcomes.
	errs := make([]error, len(groups))
	var wg sync.WaitGroup
	for i, g := range groups {
		wg.Go(func() { errs[i] = s.callIngest(ctx, rs, g, out) })
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

// callIngest runs ingest_readings on the readings of rs at indexes idx,
// which must all lie in one shard, and fills their outcomes.
func (s *Store) callIngest(ctx context.Context, rs []Reading, idx []int, out []Outcome) error {
	var (
		meters, ts, in, wout, received = make(pq.Int64Array, len(idx)), make(pq.Int64Array, len(idx)), make(pq.Int64Array, len(idx)), make(pq.Int64Array, len(idx)), make(pq.Int64Array, len(idx))
		keySeq                         = make(pq.Int64Array, len(idx))
		sigs                           = make(pq.ByteaArray, len(idx))
	)
	for j, i := range idx {
		r := rs[i]
		meters[j], ts[j], in[j], wout[j] = r.MeterID, r.Timestamp, r.WhIn, r.WhOut
		received[j], keySeq[j], sigs[j] = r.ReceivedAt.UnixMilli(), int64(r.KeySeq), r.Signature
	}
	const q = `SELECT ingest_readings($1, $2, $3, $4, $5, $6, $7, $8::int[])`
	var codes pq.Int64Array
	if err := s.db.GetContext(ctx, &codes, q, meters[0], meters, ts, in, wout, sigs, received, keySeq); err != nil {
		var pqErr *pq.Error
		if errors.As(err, &pqErr) && pqErr.Code == "23503" { // foreign_key_violation: no such meter
			return fmt.Errorf("%s: %w", pqErr.Message, ErrNotFound)
		}
		return fmt.Errorf("ingest_readings: %w", err)
	}
	if len(codes) != len(idx) {
		return fmt.Errorf("ingest_readings: %d outcomes for %d readings", len(codes), len(idx))
	}
	for _, c := range codes {
		if c < 1 || int(c) >= len(functionOutcomes) || functionOutcomes[c] == 0 {
			return fmt.Errorf("ingest_readings: outcome %d", c)
		}
	}
	for j, i := range idx {
		out[i] = functionOutcomes[codes[j]]
	}
	return nil
}

// shardGroups splits the indexes of rs by the shard that holds their
// meter on a Citus cluster (meters, readings and the key history are
// distributed by meter id, co-located), keeping the order of rs within
// each group; on one database, one group holds them all.
func (s *Store) shardGroups(ctx context.Context, rs []Reading) ([][]int, error) {
	cluster, err := s.isCluster(ctx)
	if err != nil {
		return nil, err
	}
	if !cluster {
		all := make([]int, len(rs))
		for i := range all {
			all[i] = i
		}
		return [][]int{all}, nil
	}
	if err := s.learnShards(ctx, rs); err != nil {
		return nil, err
	}
	var groups [][]int
	byShard := map[int64]int{}
	for i, r := range rs {
		sh, _ := s.shards.Load(r.MeterID)
		g, ok := byShard[sh.(int64)]
		if !ok {
			g = len(groups)
			byShard[sh.(int64)] = g
			groups = append(groups, nil)
		}
		groups[g] = append(groups[g], i)
	}
	return groups, nil
}

// CommitGroup returns the group of meter id whose readings one call of
// InsertReadings commits together: on a Citus cluster its shard, learnt
// once; on one database, the meter itself, since one call commits any
// batch. It lets the committer batch a shard's readings together.
func (s *Store) CommitGroup(ctx context.Context, id int64) (int64, error) {
	if !s.postgres {
		return id, nil
	}
	cluster, err := s.isCluster(ctx)
	if err != nil || !cluster {
		return id, err
	}
	if sh, ok := s.shards.Load(id); ok {
		return sh.(int64), nil
	}
	if err := s.learnShards(ctx, []Reading{{MeterID: id}}); err != nil {
		return 0, err
	}
	sh, _ := s.shards.Load(id)
	return sh.(int64), nil
}

// learnShards asks the cluster for the shard of every meter of rs it has
// not seen yet. A meter's shard never changes while the shard count stays
// the same: rebalancing moves shards between workers, not meters between
// shards.
func (s *Store) learnShards(ctx context.Context, rs []Reading) error {
	var unknown pq.Int64Array
	for _, r := range rs {
		if _, ok := s.shards.Load(r.MeterID); !ok {
			unknown = append(unknown, r.MeterID)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	const q = `SELECT id, get_shard_id_for_distribution_column('meters', id) FROM unnest($1::bigint[]) AS u (id)`
	rows, err := s.db.QueryContext(ctx, q, unknown)
	if err != nil {
		return fmt.Errorf("shards of %d meters: %w", len(unknown), err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, shard int64
		if err := rows.Scan(&id, &shard); err != nil {
			return fmt.Errorf("scan shard: %w", err)
		}
		s.shards.Store(id, shard)
	}
	return rows.Err()
}

// isCluster reports whether the store's readings are distributed by Citus;
// it asks the database once.
func (s *Store) isCluster(ctx context.Context) (bool, error) {
	s.clusterMu.Lock()
	defer s.clusterMu.Unlock()
	if s.clusterKnown {
		return s.cluster, nil
	}
	const q = `
		SELECT to_regclass('pg_catalog.pg_dist_partition') IS NOT NULL
			AND EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'citus')`
	var hasCitus bool
	if err := s.db.GetContext(ctx, &hasCitus, q); err != nil {
		return false, fmt.Errorf("is the store a cluster: %w", err)
	}
	if hasCitus {
		const dist = `SELECT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = 'readings'::regclass)`
		if err := s.db.GetContext(ctx, &hasCitus, dist); err != nil {
			return false, fmt.Errorf("are readings distributed: %w", err)
		}
	}
	s.cluster, s.clusterKnown = hasCitus, true
	return s.cluster, nil
}

// clusterState is what a Store learns of a Citus cluster.
type clusterState struct {
	clusterMu    sync.Mutex
	cluster      bool
	clusterKnown bool
	shards       sync.Map // meter id → shard id
}
