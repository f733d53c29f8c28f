-- +goose Up
-- ingest_readings looks for a reading's previous neighbour in the week
-- before it first. Its probes had read every monthly partition of
-- readings kept, so that storing a reading cost more with every month
-- stored. Timestamps are never negative, so the bounds cannot overflow.

-- ingest_readings stores a batch of readings in one call, one round trip
-- and one transaction: it locks the readings' meters (the lock key changes
-- take too), checks that each reading's key is its meter's current,
-- unrevoked key, decides every reading as if the readings had arrived one
-- by one in array order (store/integrity.go is the same decision for
-- SQLite, and the conformance suite holds both to it), inserts those
-- stored, never with a received_at before their key was added, and
-- returns one outcome per reading:
--   1 stored, 2 duplicate, 3 conflict, 4 register decreased,
--   5 key replaced (not the meter's current key), 7 key revoked.
-- Migration 00009 added step 5: the readings stored are queued for the
-- rollups. Migration 00010 bounds the probes for a reading's previous
-- neighbour to the week before it (steps 2 and 4), so that a call reads
-- one or two monthly partitions of readings however many months are kept.
-- A reading of a meter that does not exist fails the call as a whole.
--
-- p_meter is the distribution argument on Citus: any meter of the one
-- shard that holds every meter of the call (the store groups a batch by
-- shard), so that the call is delegated to the worker holding that shard
-- and every statement in it is a single-shard query run there. On one
-- PostgreSQL it is not used.
--
-- A call is decided and inserted by two set-based statements (step 2
-- says when that is exact); what they leave, and calls of one or two
-- readings, are taken one reading at a time. Every probe orders by (meter_id, timestamp), the primary key, so that
-- the planner walks the meter's own entries rather than the fleet-wide
-- index on timestamp.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION ingest_readings(
    p_meter    bigint,
    p_meters   bigint[],
    p_ts       bigint[],
    p_in       bigint[],
    p_out      bigint[],
    p_sig      bytea[],
    p_received bigint[],
    p_key_seq  int[])
RETURNS smallint[]
LANGUAGE plpgsql
-- The tables are those of the schema the function is created in, wherever
-- it runs: a Citus worker running a delegated call does not have the
-- caller's search_path.
SET search_path FROM CURRENT
AS $fn$
DECLARE
    n        int := coalesce(cardinality(p_meters), 0);
    outcomes smallint[];
    ids      bigint[];           -- distinct meters, ascending
    rep      bigint[] := '{}';   -- meters decided one reading at a time
    cluster  boolean := to_regclass('pg_catalog.pg_dist_partition') IS NOT NULL;
    shard    text := '';         -- on a cluster, what pins a statement to the call's shard
    v_ord    int[];
    v_out    smallint[];
    v_recv   timestamptz[];      -- when each reading counts as received
    v_added  timestamptz;
    n_acc    int := 0;
    cnt      int;
    k        int;
    i        int;
    m        bigint;
    t        bigint;
    s_ts     bigint;
    s_in     bigint;
    s_out    bigint;
    v_seq    int;
    v_ok     boolean;
    v_lo     bigint;             -- step 2 looks for no previous neighbour at or before this
    c_week   constant bigint := 7 * 86400000;
BEGIN
    IF n = 0 THEN
        RETURN '{}';
    END IF;
    IF cardinality(p_ts) <> n OR cardinality(p_in) <> n OR cardinality(p_out) <> n
       OR cardinality(p_sig) <> n OR cardinality(p_received) <> n OR cardinality(p_key_seq) <> n THEN
        RAISE EXCEPTION 'ingest_readings: arrays of different lengths' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    outcomes := array_fill(0::smallint, ARRAY[n]);
    ids := ARRAY(SELECT DISTINCT u FROM unnest(p_meters) u ORDER BY u);

    -- On a cluster every meter of the call lives in one shard (the store
    -- groups a batch by shard), and every statement names the call's
    -- meters, so that it runs on that shard alone; a call whose meters
    -- span shards fails, since a delegated call may not reach another
    -- shard. On one database that filter would only mislead the planner
    -- into the fleet-wide timestamp index.
    IF cluster THEN
        shard := ' AND r.meter_id = ANY($6)';
    END IF;

    -- 1. Lock the meters, in id order: the lock key changes take too
    --    (store/keys.go), by the same statement on meters, so that on a
    --    cluster it is held on the node that holds the meters.
    IF n <= 2 THEN
        FOREACH m IN ARRAY ids LOOP
            PERFORM pg_advisory_xact_lock(id) FROM meters WHERE id = m;
        END LOOP;
        rep := ids; -- one or two readings: one at a time is cheaper
    ELSE
        PERFORM pg_advisory_xact_lock(id) FROM meters WHERE id = ANY(ids) ORDER BY id;
    END IF;

    -- 2. Decide the readings in one statement, each against its meter's
    --    key and its stored neighbours in time. Every statement of the
    --    call takes a fresh snapshot (READ COMMITTED), so it sees what the
    --    lock's previous holders committed, key changes included.
    --
    --    A meter with one reading in the call gets its outcome here. A
    --    meter with several is decided here only when all of them are
    --    stored: when each is new, in order with its stored neighbours
    --    and with the call's next reading of the meter in time, and no two
    --    share a timestamp. Then the meter's
    --    stored and new readings together are in order, and adding them
    --    one by one in any order stores each. Any other meter with several
    --    readings gets outcome 0 here and is decided one reading at a
    --    time in step 4. Statements are run by EXECUTE so that each call
    --    is planned for its own arrays: a plan cached for the session,
    --    made for arrays of unknown size, is many times slower.
    --
    --    A reading's previous neighbour is looked for after the week
    --    before the call's earliest reading ($8), a bound the planner
    --    prunes partitions by: without it every probe reads every month
    --    kept. A meter with a reading whose previous neighbour is not in
    --    that window (its first reading, or one after a week of silence)
    --    is left to step 4, which looks further back. The next neighbour
    --    is after the reading, hence after the call's earliest reading
    --    ($9), which prunes the months before it.
    IF n > 2 THEN
        SELECT min(u) - c_week INTO v_lo FROM unnest(p_ts) u;
        EXECUTE format($q$
            SELECT array_agg(x.ord ORDER BY x.ord),
                   array_agg(CASE WHEN x.far THEN 0
                                  WHEN x.cnt = 1 THEN x.outcome
                                  WHEN x.all_stored THEN 1
                                  ELSE 0 END::smallint ORDER BY x.ord),
                   array_agg(x.received ORDER BY x.ord),
                   coalesce(array_agg(DISTINCT x.m) FILTER (WHERE x.far OR (x.cnt > 1 AND NOT x.all_stored)), '{}')
            FROM (
                SELECT d.*,
                    count(*) OVER (PARTITION BY d.m) AS cnt,
                    bool_or(d.p_ts IS NULL) OVER (PARTITION BY d.m) AS far,
                    bool_and(d.outcome = 1 AND d.same_ts = 1
                             AND (d.ni IS NULL OR (d.i <= d.ni AND d.o <= d.no)))
                        OVER (PARTITION BY d.m) AS all_stored
                FROM (
                    SELECT u.ord::int AS ord, u.m, u.i, u.o, p.timestamp AS p_ts,
                        greatest(to_timestamp(u.r::double precision / 1000), mk.added_at) AS received,
                        CASE
                            WHEN mt.id IS NULL THEN 6
                            WHEN mt.key_seq <> u.k THEN 5
                            WHEN mt.revoked_at IS NOT NULL THEN 7
                            WHEN p.timestamp = u.t THEN
                                CASE WHEN p.wh_in = u.i AND p.wh_out = u.o THEN 2 ELSE 3 END
                            WHEN u.i < p.wh_in OR u.o < p.wh_out OR u.i > nx.wh_in OR u.o > nx.wh_out THEN 4
                            ELSE 1
                        END AS outcome,
                        count(*) OVER (PARTITION BY u.m, u.t) AS same_ts,
                        lead(u.i) OVER w AS ni, lead(u.o) OVER w AS no
                    FROM unnest($1, $2, $3, $4, $5, $7) WITH ORDINALITY AS u (m, t, i, o, k, r, ord)
                    LEFT JOIN meters mt ON mt.id = u.m AND mt.id = ANY($6)
                    LEFT JOIN meter_keys mk ON mk.meter_id = u.m AND mk.seq = u.k AND mk.meter_id = ANY($6)
                    LEFT JOIN LATERAL (
                        SELECT r.timestamp, r.wh_in, r.wh_out FROM readings r
                        WHERE r.meter_id = u.m AND r.timestamp <= u.t AND r.timestamp > $8 %1$s
                        ORDER BY r.meter_id DESC, r.timestamp DESC LIMIT 1) p ON true
                    LEFT JOIN LATERAL (
                        SELECT r.wh_in, r.wh_out FROM readings r
                        WHERE r.meter_id = u.m AND r.timestamp > u.t AND r.timestamp >= $9 %1$s
                        ORDER BY r.meter_id, r.timestamp LIMIT 1) nx ON true
                    WINDOW w AS (PARTITION BY u.m ORDER BY u.t)
                ) d
            ) x$q$, shard)
        INTO v_ord, v_out, v_recv, rep
        USING p_meters, p_ts, p_in, p_out, p_key_seq, ids, p_received, v_lo, v_lo + c_week;
        -- v_ord is 1 .. n: the outcomes and times come in the call's order.
        FOR k IN 1 .. n LOOP
            outcomes[v_ord[k]] := v_out[k];
            IF v_out[k] = 1 THEN
                n_acc := n_acc + 1;
            END IF;
        END LOOP;

        -- 3. Insert the readings decided stored, from the call's arrays
        --    alone: a cluster routes each row to the call's one shard, and
        --    plans that far more cheaply than a join. No reading is
        --    recorded as received before its key was added (a server whose
        --    clock is behind): step 2 took the later of the two.
        IF n_acc > 0 THEN
            EXECUTE $q$
                INSERT INTO readings (meter_id, timestamp, wh_in, wh_out, signature, received_at, key_seq)
                SELECT u.m, u.t, u.i, u.o, u.s, u.r, u.k
                FROM unnest($1, $2, $3, $4, $5, $6, $7, $8) AS u (m, t, i, o, s, r, k, oc)
                WHERE u.oc = 1$q$
            USING p_meters, p_ts, p_in, p_out, p_sig, v_recv, p_key_seq, outcomes;
            GET DIAGNOSTICS cnt = ROW_COUNT;
            IF cnt <> n_acc THEN
                RAISE EXCEPTION 'ingest_readings: inserted % of % readings', cnt, n_acc;
            END IF;
        END IF;
    END IF;

    -- 4. Calls of one or two readings, and meters left undecided by step
    --    2: one reading at a time, in order, each probe seeing the readings
    --    inserted before it. The previous neighbour is looked for in the
    --    week before the reading, which the executor prunes to that week's
    --    partitions, and further back only when the week has none.
    IF cardinality(rep) > 0 THEN
        FOR i IN 1 .. n LOOP
            m := p_meters[i];
            CONTINUE WHEN m <> ALL(rep);
            t := p_ts[i];
            SELECT mt.key_seq, mt.revoked_at IS NULL, mk.added_at INTO v_seq, v_ok, v_added
            FROM meters mt JOIN meter_keys mk ON mk.meter_id = mt.id AND mk.seq = mt.key_seq
            WHERE mt.id = m AND mk.meter_id = m;
            IF NOT FOUND THEN
                outcomes[i] := 6;
                CONTINUE;
            END IF;
            IF v_seq <> p_key_seq[i] THEN
                outcomes[i] := 5;
                CONTINUE;
            END IF;
            IF NOT v_ok THEN
                outcomes[i] := 7;
                CONTINUE;
            END IF;
            SELECT r.timestamp, r.wh_in, r.wh_out INTO s_ts, s_in, s_out
            FROM readings r
            WHERE r.meter_id = m AND r.timestamp <= t AND r.timestamp > t - c_week
            ORDER BY r.meter_id DESC, r.timestamp DESC LIMIT 1;
            IF NOT FOUND THEN
                SELECT r.timestamp, r.wh_in, r.wh_out INTO s_ts, s_in, s_out
                FROM readings r
                WHERE r.meter_id = m AND r.timestamp <= t - c_week
                ORDER BY r.meter_id DESC, r.timestamp DESC LIMIT 1;
            END IF;
            IF FOUND THEN
                IF s_ts = t THEN
                    outcomes[i] := CASE WHEN s_in = p_in[i] AND s_out = p_out[i] THEN 2 ELSE 3 END;
                    CONTINUE;
                END IF;
                IF p_in[i] < s_in OR p_out[i] < s_out THEN
                    outcomes[i] := 4;
                    CONTINUE;
                END IF;
            END IF;
            SELECT r.wh_in, r.wh_out INTO s_in, s_out
            FROM readings r
            WHERE r.meter_id = m AND r.timestamp > t
            ORDER BY r.meter_id, r.timestamp LIMIT 1;
            IF FOUND AND (p_in[i] > s_in OR p_out[i] > s_out) THEN
                outcomes[i] := 4;
                CONTINUE;
            END IF;
            INSERT INTO readings (meter_id, timestamp, wh_in, wh_out, signature, received_at, key_seq)
            VALUES (m, t, p_in[i], p_out[i], p_sig[i], greatest(to_timestamp(p_received[i]::double precision / 1000), v_added), p_key_seq[i]);
            outcomes[i] := 1;
        END LOOP;
    END IF;

    -- A reading of a meter that does not exist fails the whole call: the
    -- statement's transaction rolls back, inserts made before included.
    IF 6 = ANY(outcomes) THEN
        RAISE EXCEPTION 'ingest_readings: meter % does not exist', p_meters[array_position(outcomes, 6::smallint)]
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    -- 5. Queue the readings stored for the rollups (store/rollups.go), in
    --    the call's transaction, so that each is rolled up exactly once.
    --    The queue is co-located with readings on a cluster: these rows
    --    go to the call's one shard.
    IF 1 = ANY(outcomes) THEN
        EXECUTE $q$
            INSERT INTO rollup_queue (meter_id, timestamp, wh_in, wh_out)
            SELECT u.m, u.t, u.i, u.o
            FROM unnest($1, $2, $3, $4, $5) AS u (m, t, i, o, oc)
            WHERE u.oc = 1$q$
        USING p_meters, p_ts, p_in, p_out, outcomes;
    END IF;
    RETURN outcomes;
END
$fn$;
-- +goose StatementEnd

-- +goose Down
-- ingest_readings as migration 00009 made it.
-- ingest_readings stores a batch of readings in one call, one round trip
-- and one transaction: it locks the readings' meters (the lock key changes
-- take too), checks that each reading's key is its meter's current,
-- unrevoked key, decides every reading as if the readings had arrived one
-- by one in array order (store/integrity.go is the same decision for
-- SQLite, and the conformance suite holds both to it), inserts those
-- stored, never with a received_at before their key was added, and
-- returns one outcome per reading:
--   1 stored, 2 duplicate, 3 conflict, 4 register decreased,
--   5 key replaced (not the meter's current key), 7 key revoked.
-- Migration 00009 added step 5: the readings stored are queued for the
-- rollups.
-- A reading of a meter that does not exist fails the call as a whole.
--
-- p_meter is the distribution argument on Citus: any meter of the one
-- shard that holds every meter of the call (the store groups a batch by
-- shard), so that the call is delegated to the worker holding that shard
-- and every statement in it is a single-shard query run there. On one
-- PostgreSQL it is not used.
--
-- A call is decided and inserted by two set-based statements (step 2
-- says when that is exact); what they leave, and calls of one or two
-- readings, are taken one reading at a time. Every probe orders by (meter_id, timestamp), the primary key, so that
-- the planner walks the meter's own entries rather than the fleet-wide
-- index on timestamp.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION ingest_readings(
    p_meter    bigint,
    p_meters   bigint[],
    p_ts       bigint[],
    p_in       bigint[],
    p_out      bigint[],
    p_sig      bytea[],
    p_received bigint[],
    p_key_seq  int[])
RETURNS smallint[]
LANGUAGE plpgsql
-- The tables are those of the schema the function is created in, wherever
-- it runs: a Citus worker running a delegated call does not have the
-- caller's search_path.
SET search_path FROM CURRENT
AS $fn$
DECLARE
    n        int := coalesce(cardinality(p_meters), 0);
    outcomes smallint[];
    ids      bigint[];           -- distinct meters, ascending
    rep      bigint[] := '{}';   -- meters decided one reading at a time
    cluster  boolean := to_regclass('pg_catalog.pg_dist_partition') IS NOT NULL;
    shard    text := '';         -- on a cluster, what pins a statement to the call's shard
    v_ord    int[];
    v_out    smallint[];
    v_recv   timestamptz[];      -- when each reading counts as received
    v_added  timestamptz;
    n_acc    int := 0;
    cnt      int;
    k        int;
    i        int;
    m        bigint;
    t        bigint;
    s_ts     bigint;
    s_in     bigint;
    s_out    bigint;
    v_seq    int;
    v_ok     boolean;
BEGIN
    IF n = 0 THEN
        RETURN '{}';
    END IF;
    IF cardinality(p_ts) <> n OR cardinality(p_in) <> n OR cardinality(p_out) <> n
       OR cardinality(p_sig) <> n OR cardinality(p_received) <> n OR cardinality(p_key_seq) <> n THEN
        RAISE EXCEPTION 'ingest_readings: arrays of different lengths' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    outcomes := array_fill(0::smallint, ARRAY[n]);
    ids := ARRAY(SELECT DISTINCT u FROM unnest(p_meters) u ORDER BY u);

    -- On a cluster every meter of the call lives in one shard (the store
    -- groups a batch by shard), and every statement names the call's
    -- meters, so that it runs on that shard alone; a call whose meters
    -- span shards fails, since a delegated call may not reach another
    -- shard. On one database that filter would only mislead the planner
    -- into the fleet-wide timestamp index.
    IF cluster THEN
        shard := ' AND r.meter_id = ANY($6)';
    END IF;

    -- 1. Lock the meters, in id order: the lock key changes take too
    --    (store/keys.go), by the same statement on meters, so that on a
    --    cluster it is held on the node that holds the meters.
    IF n <= 2 THEN
        FOREACH m IN ARRAY ids LOOP
            PERFORM pg_advisory_xact_lock(id) FROM meters WHERE id = m;
        END LOOP;
        rep := ids; -- one or two readings: one at a time is cheaper
    ELSE
        PERFORM pg_advisory_xact_lock(id) FROM meters WHERE id = ANY(ids) ORDER BY id;
    END IF;

    -- 2. Decide the readings in one statement, each against its meter's
    --    key and its stored neighbours in time. Every statement of the
    --    call takes a fresh snapshot (READ COMMITTED), so it sees what the
    --    lock's previous holders committed, key changes included.
    --
    --    A meter with one reading in the call gets its outcome here. A
    --    meter with several is decided here only when all of them are
    --    stored: when each is new, in order with its stored neighbours
    --    and with the call's next reading of the meter in time, and no two
    --    share a timestamp. Then the meter's
    --    stored and new readings together are in order, and adding them
    --    one by one in any order stores each. Any other meter with several
    --    readings gets outcome 0 here and is decided one reading at a
    --    time in step 4. Statements are run by EXECUTE so that each call
    --    is planned for its own arrays: a plan cached for the session,
    --    made for arrays of unknown size, is many times slower.
    IF n > 2 THEN
        EXECUTE format($q$
            SELECT array_agg(x.ord ORDER BY x.ord),
                   array_agg(CASE WHEN x.cnt = 1 THEN x.outcome
                                  WHEN x.all_stored THEN 1
                                  ELSE 0 END::smallint ORDER BY x.ord),
                   array_agg(x.received ORDER BY x.ord),
                   coalesce(array_agg(DISTINCT x.m) FILTER (WHERE x.cnt > 1 AND NOT x.all_stored), '{}')
            FROM (
                SELECT d.*,
                    count(*) OVER (PARTITION BY d.m) AS cnt,
                    bool_and(d.outcome = 1 AND d.same_ts = 1
                             AND (d.ni IS NULL OR (d.i <= d.ni AND d.o <= d.no)))
                        OVER (PARTITION BY d.m) AS all_stored
                FROM (
                    SELECT u.ord::int AS ord, u.m, u.i, u.o,
                        greatest(to_timestamp(u.r::double precision / 1000), mk.added_at) AS received,
                        CASE
                            WHEN mt.id IS NULL THEN 6
                            WHEN mt.key_seq <> u.k THEN 5
                            WHEN mt.revoked_at IS NOT NULL THEN 7
                            WHEN p.timestamp = u.t THEN
                                CASE WHEN p.wh_in = u.i AND p.wh_out = u.o THEN 2 ELSE 3 END
                            WHEN u.i < p.wh_in OR u.o < p.wh_out OR u.i > nx.wh_in OR u.o > nx.wh_out THEN 4
                            ELSE 1
                        END AS outcome,
                        count(*) OVER (PARTITION BY u.m, u.t) AS same_ts,
                        lead(u.i) OVER w AS ni, lead(u.o) OVER w AS no
                    FROM unnest($1, $2, $3, $4, $5, $7) WITH ORDINALITY AS u (m, t, i, o, k, r, ord)
                    LEFT JOIN meters mt ON mt.id = u.m AND mt.id = ANY($6)
                    LEFT JOIN meter_keys mk ON mk.meter_id = u.m AND mk.seq = u.k AND mk.meter_id = ANY($6)
                    LEFT JOIN LATERAL (
                        SELECT r.timestamp, r.wh_in, r.wh_out FROM readings r
                        WHERE r.meter_id = u.m AND r.timestamp <= u.t %1$s
                        ORDER BY r.meter_id DESC, r.timestamp DESC LIMIT 1) p ON true
                    LEFT JOIN LATERAL (
                        SELECT r.wh_in, r.wh_out FROM readings r
                        WHERE r.meter_id = u.m AND r.timestamp > u.t %1$s
                        ORDER BY r.meter_id, r.timestamp LIMIT 1) nx ON true
                    WINDOW w AS (PARTITION BY u.m ORDER BY u.t)
                ) d
            ) x$q$, shard)
        INTO v_ord, v_out, v_recv, rep
        USING p_meters, p_ts, p_in, p_out, p_key_seq, ids, p_received;
        -- v_ord is 1 .. n: the outcomes and times come in the call's order.
        FOR k IN 1 .. n LOOP
            outcomes[v_ord[k]] := v_out[k];
            IF v_out[k] = 1 THEN
                n_acc := n_acc + 1;
            END IF;
        END LOOP;

        -- 3. Insert the readings decided stored, from the call's arrays
        --    alone: a cluster routes each row to the call's one shard, and
        --    plans that far more cheaply than a join. No reading is
        --    recorded as received before its key was added (a server whose
        --    clock is behind): step 2 took the later of the two.
        IF n_acc > 0 THEN
            EXECUTE $q$
                INSERT INTO readings (meter_id, timestamp, wh_in, wh_out, signature, received_at, key_seq)
                SELECT u.m, u.t, u.i, u.o, u.s, u.r, u.k
                FROM unnest($1, $2, $3, $4, $5, $6, $7, $8) AS u (m, t, i, o, s, r, k, oc)
                WHERE u.oc = 1$q$
            USING p_meters, p_ts, p_in, p_out, p_sig, v_recv, p_key_seq, outcomes;
            GET DIAGNOSTICS cnt = ROW_COUNT;
            IF cnt <> n_acc THEN
                RAISE EXCEPTION 'ingest_readings: inserted % of % readings', cnt, n_acc;
            END IF;
        END IF;
    END IF;

    -- 4. Calls of one or two readings, and meters left undecided by step
    --    2: one reading at a time, in order, each probe seeing the readings
    --    inserted before it.
    IF cardinality(rep) > 0 THEN
        FOR i IN 1 .. n LOOP
            m := p_meters[i];
            CONTINUE WHEN m <> ALL(rep);
            t := p_ts[i];
            SELECT mt.key_seq, mt.revoked_at IS NULL, mk.added_at INTO v_seq, v_ok, v_added
            FROM meters mt JOIN meter_keys mk ON mk.meter_id = mt.id AND mk.seq = mt.key_seq
            WHERE mt.id = m AND mk.meter_id = m;
            IF NOT FOUND THEN
                outcomes[i] := 6;
                CONTINUE;
            END IF;
            IF v_seq <> p_key_seq[i] THEN
                outcomes[i] := 5;
                CONTINUE;
            END IF;
            IF NOT v_ok THEN
                outcomes[i] := 7;
                CONTINUE;
            END IF;
            SELECT r.timestamp, r.wh_in, r.wh_out INTO s_ts, s_in, s_out
            FROM readings r
            WHERE r.meter_id = m AND r.timestamp <= t
            ORDER BY r.meter_id DESC, r.timestamp DESC LIMIT 1;
            IF FOUND THEN
                IF s_ts = t THEN
                    outcomes[i] := CASE WHEN s_in = p_in[i] AND s_out = p_out[i] THEN 2 ELSE 3 END;
                    CONTINUE;
                END IF;
                IF p_in[i] < s_in OR p_out[i] < s_out THEN
                    outcomes[i] := 4;
                    CONTINUE;
                END IF;
            END IF;
            SELECT r.wh_in, r.wh_out INTO s_in, s_out
            FROM readings r
            WHERE r.meter_id = m AND r.timestamp > t
            ORDER BY r.meter_id, r.timestamp LIMIT 1;
            IF FOUND AND (p_in[i] > s_in OR p_out[i] > s_out) THEN
                outcomes[i] := 4;
                CONTINUE;
            END IF;
            INSERT INTO readings (meter_id, timestamp, wh_in, wh_out, signature, received_at, key_seq)
            VALUES (m, t, p_in[i], p_out[i], p_sig[i], greatest(to_timestamp(p_received[i]::double precision / 1000), v_added), p_key_seq[i]);
            outcomes[i] := 1;
        END LOOP;
    END IF;

    -- A reading of a meter that does not exist fails the whole call: the
    -- statement's transaction rolls back, inserts made before included.
    IF 6 = ANY(outcomes) THEN
        RAISE EXCEPTION 'ingest_readings: meter % does not exist', p_meters[array_position(outcomes, 6::smallint)]
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    -- 5. Queue the readings stored for the rollups (store/rollups.go), in
    --    the call's transaction, so that each is rolled up exactly once.
    --    The queue is co-located with readings on a cluster: these rows
    --    go to the call's one shard.
    IF 1 = ANY(outcomes) THEN
        EXECUTE $q$
            INSERT INTO rollup_queue (meter_id, timestamp, wh_in, wh_out)
            SELECT u.m, u.t, u.i, u.o
            FROM unnest($1, $2, $3, $4, $5) AS u (m, t, i, o, oc)
            WHERE u.oc = 1$q$
        USING p_meters, p_ts, p_in, p_out, outcomes;
    END IF;
    RETURN outcomes;
END
$fn$;
-- +goose StatementEnd
