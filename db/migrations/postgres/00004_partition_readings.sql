-- +goose Up
-- readings becomes a table partitioned by RANGE on timestamp (the meter's
-- clock, Unix milliseconds), one partition per calendar month (UTC), named
-- readings_pYYYY_MM. Retention then drops whole partitions instead of
-- deleting rows, and the indexes of the months being written stay small.
-- readings_default catches a reading for which no partition exists (say a
-- meter whose clock is years behind), so none is ever refused; the server
-- moves such rows into a month's partition when it creates that month.
--
-- The primary key (meter_id, timestamp) includes the partition key, as
-- PostgreSQL requires, so it stays the conflict target of ingest.
ALTER TABLE readings RENAME TO readings_unpartitioned;
ALTER TABLE readings_unpartitioned RENAME CONSTRAINT readings_pkey TO readings_unpartitioned_pkey;
ALTER INDEX readings_timestamp_idx RENAME TO readings_unpartitioned_timestamp_idx;

CREATE TABLE readings (
    meter_id    BIGINT      NOT NULL REFERENCES meters (id),
    timestamp   BIGINT      NOT NULL,
    wh_in       BIGINT      NOT NULL CHECK (wh_in >= 0),
    wh_out      BIGINT      NOT NULL CHECK (wh_out >= 0),
    signature   BYTEA       NOT NULL,
    received_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (meter_id, timestamp)
) PARTITION BY RANGE (timestamp);
CREATE INDEX readings_timestamp_idx ON readings (timestamp);
CREATE TABLE readings_default PARTITION OF readings DEFAULT;

-- A partition for every month that holds rows, and for this month and the
-- next two; then the rows, each into its month.
-- +goose StatementBegin
DO $$
DECLARE
    m timestamp; -- the first instant of a month, UTC
BEGIN
    FOR m IN
        SELECT DISTINCT date_trunc('month', to_timestamp(timestamp / 1000.0) AT TIME ZONE 'UTC')
        FROM readings_unpartitioned
        UNION
        SELECT date_trunc('month', now() AT TIME ZONE 'UTC') + make_interval(months => g)
        FROM generate_series(0, 2) g
    LOOP
        EXECUTE format('CREATE TABLE %I PARTITION OF readings FOR VALUES FROM (%s) TO (%s)',
            'readings_p' || to_char(m, 'YYYY_MM'),
            (extract(epoch FROM m) * 1000)::bigint,
            (extract(epoch FROM m + interval '1 month') * 1000)::bigint);
    END LOOP;
END
$$;
-- +goose StatementEnd

INSERT INTO readings (meter_id, timestamp, wh_in, wh_out, signature, received_at)
SELECT meter_id, timestamp, wh_in, wh_out, signature, received_at FROM readings_unpartitioned;
DROP TABLE readings_unpartitioned;

-- +goose Down
-- Back to one plain table with every row, whatever partition held it.
ALTER TABLE readings RENAME TO readings_partitioned;
ALTER TABLE readings_partitioned RENAME CONSTRAINT readings_pkey TO readings_partitioned_pkey;
ALTER INDEX readings_timestamp_idx RENAME TO readings_partitioned_timestamp_idx;
CREATE TABLE readings (
    meter_id    BIGINT      NOT NULL REFERENCES meters (id),
    timestamp   BIGINT      NOT NULL,
    wh_in       BIGINT      NOT NULL CHECK (wh_in >= 0),
    wh_out      BIGINT      NOT NULL CHECK (wh_out >= 0),
    signature   BYTEA       NOT NULL,
    received_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (meter_id, timestamp)
);
INSERT INTO readings (meter_id, timestamp, wh_in, wh_out, signature, received_at)
SELECT meter_id, timestamp, wh_in, wh_out, signature, received_at FROM readings_partitioned;
CREATE INDEX readings_timestamp_idx ON readings (timestamp);
DROP TABLE readings_partitioned;
