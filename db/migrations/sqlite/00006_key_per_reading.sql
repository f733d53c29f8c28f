-- +goose Up
-- Keys numbered within each meter, and the key that signed every reading;
-- see the PostgreSQL migration of the same number.
ALTER TABLE meter_keys ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
UPDATE meter_keys SET seq = (
    SELECT n FROM (
        SELECT rowid AS r, row_number() OVER (PARTITION BY meter_id ORDER BY added_at, retired_at IS NULL, retired_at, rowid) AS n
        FROM meter_keys)
    WHERE r = meter_keys.rowid);
CREATE UNIQUE INDEX meter_keys_seq_idx ON meter_keys (meter_id, seq);
DROP INDEX meter_keys_meter_idx;

ALTER TABLE meters ADD COLUMN key_seq INTEGER NOT NULL DEFAULT 1;
UPDATE meters SET key_seq = (SELECT seq FROM meter_keys k WHERE k.fingerprint = meters.fingerprint)
WHERE EXISTS (SELECT 1 FROM meter_keys k WHERE k.fingerprint = meters.fingerprint);

CREATE TABLE key_fingerprints (
    fingerprint BLOB    PRIMARY KEY CHECK (length(fingerprint) = 32),
    meter_id    INTEGER NOT NULL,
    seq         INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO key_fingerprints (fingerprint, meter_id, seq) SELECT fingerprint, meter_id, seq FROM meter_keys;

CREATE TABLE meter_usernames (
    username TEXT    PRIMARY KEY,
    meter_id INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO meter_usernames (username, meter_id) SELECT username, id FROM meters;

ALTER TABLE readings ADD COLUMN key_seq INTEGER NOT NULL DEFAULT 1;
UPDATE readings SET key_seq = coalesce((
    SELECT k.seq FROM meter_keys k
    WHERE k.meter_id = readings.meter_id
        AND readings.received_at >= k.added_at AND (k.retired_at IS NULL OR readings.received_at < k.retired_at)
    ORDER BY k.seq DESC LIMIT 1), 1)
WHERE EXISTS (SELECT 1 FROM meter_keys k WHERE k.meter_id = readings.meter_id AND k.seq > 1);

-- +goose Down
DROP INDEX meter_keys_seq_idx;
CREATE INDEX meter_keys_meter_idx ON meter_keys (meter_id, added_at);
ALTER TABLE meter_keys DROP COLUMN seq;
ALTER TABLE readings DROP COLUMN key_seq;
DROP TABLE meter_usernames;
DROP TABLE key_fingerprints;
ALTER TABLE meters DROP COLUMN key_seq;
