-- +goose Up
-- Rollups: the fleet's energy per 5-minute bucket, kept as readings are
-- stored (store/rollups.go says how). The PostgreSQL migration of the same
-- number says what each table holds.
CREATE TABLE rollup_queue (
    meter_id  INTEGER NOT NULL,
    timestamp INTEGER NOT NULL,
    wh_in     INTEGER NOT NULL,
    wh_out    INTEGER NOT NULL
);

-- Every reading stored is queued in the transaction that stores it.
-- +goose StatementBegin
CREATE TRIGGER readings_rollup_queue AFTER INSERT ON readings
BEGIN
    INSERT INTO rollup_queue (meter_id, timestamp, wh_in, wh_out)
    VALUES (NEW.meter_id, NEW.timestamp, NEW.wh_in, NEW.wh_out);
END;
-- +goose StatementEnd

CREATE TABLE rollup_meters (
    meter_id  INTEGER PRIMARY KEY REFERENCES meters (id),
    timestamp INTEGER NOT NULL,
    wh_in     INTEGER NOT NULL,
    wh_out    INTEGER NOT NULL
);

CREATE TABLE rollup_spans (
    meter_id INTEGER NOT NULL REFERENCES meters (id),
    from_ts  INTEGER NOT NULL,
    to_ts    INTEGER NOT NULL,
    from_in  INTEGER NOT NULL,
    to_in    INTEGER NOT NULL,
    from_out INTEGER NOT NULL,
    to_out   INTEGER NOT NULL,
    PRIMARY KEY (meter_id, from_ts)
);
CREATE INDEX rollup_spans_to_ts ON rollup_spans (to_ts);

CREATE TABLE fleet_rollups (
    bucket   INTEGER PRIMARY KEY,
    in_high  INTEGER NOT NULL,
    in_low   INTEGER NOT NULL,
    out_high INTEGER NOT NULL,
    out_low  INTEGER NOT NULL
);

CREATE TABLE rollup_state (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    built       BOOLEAN NOT NULL,
    lease_owner TEXT    NOT NULL DEFAULT '',
    lease_until INTEGER NOT NULL DEFAULT 0
);
INSERT INTO rollup_state (id, built) SELECT 1, NOT EXISTS (SELECT 1 FROM readings);

-- +goose Down
DROP TRIGGER readings_rollup_queue;
DROP TABLE rollup_state;
DROP TABLE fleet_rollups;
DROP TABLE rollup_spans;
DROP TABLE rollup_meters;
DROP TABLE rollup_queue;
