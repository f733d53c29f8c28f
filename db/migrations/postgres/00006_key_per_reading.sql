-- +goose Up
-- Every key a meter has had gets a sequence number within the meter, and
-- every reading names the key that signed it (readings.key_seq), so that a
-- reading is attributed to its key by what was stored, not by when it
-- arrived. meters.key_seq is the meter's current key.
ALTER TABLE meter_keys ADD COLUMN seq INTEGER;
UPDATE meter_keys k SET seq = n.seq
FROM (SELECT fingerprint, row_number() OVER (PARTITION BY meter_id ORDER BY added_at, retired_at NULLS LAST) AS seq
      FROM meter_keys) n
WHERE n.fingerprint = k.fingerprint;
ALTER TABLE meter_keys ALTER COLUMN seq SET NOT NULL;

ALTER TABLE meters ADD COLUMN key_seq INTEGER NOT NULL DEFAULT 1;
UPDATE meters m SET key_seq = k.seq FROM meter_keys k WHERE k.fingerprint = m.fingerprint;
ALTER TABLE meters ALTER COLUMN key_seq DROP DEFAULT;

-- Keys and usernames are unique over every meter, for ever, through tables
-- keyed by them: they are what a lookup by key or by username reads, and
-- they stay unique when meters are distributed by id (docs/scaling.md).
CREATE TABLE key_fingerprints (
    fingerprint BYTEA   PRIMARY KEY CHECK (octet_length(fingerprint) = 32),
    meter_id    BIGINT  NOT NULL,
    seq         INTEGER NOT NULL
);
INSERT INTO key_fingerprints (fingerprint, meter_id, seq) SELECT fingerprint, meter_id, seq FROM meter_keys;

CREATE TABLE meter_usernames (
    username TEXT   PRIMARY KEY,
    meter_id BIGINT NOT NULL
);
INSERT INTO meter_usernames (username, meter_id) SELECT username, id FROM meters;

-- meter_keys is now each meter's history, keyed by meter.
ALTER TABLE meter_keys DROP CONSTRAINT meter_keys_pkey;
ALTER TABLE meter_keys ADD PRIMARY KEY (meter_id, seq);
DROP INDEX meter_keys_meter_idx;

-- Readings stored before keys were numbered take the key that was the
-- meter's when they arrived.
ALTER TABLE readings ADD COLUMN key_seq INTEGER NOT NULL DEFAULT 1;
UPDATE readings r SET key_seq = k.seq
FROM meter_keys k
WHERE k.meter_id = r.meter_id AND k.seq > 1
    AND r.received_at >= k.added_at AND (k.retired_at IS NULL OR r.received_at < k.retired_at);
ALTER TABLE readings ALTER COLUMN key_seq DROP DEFAULT;

-- +goose Down
ALTER TABLE readings DROP COLUMN key_seq;
ALTER TABLE meter_keys DROP CONSTRAINT meter_keys_pkey;
ALTER TABLE meter_keys ADD PRIMARY KEY (fingerprint);
CREATE INDEX meter_keys_meter_idx ON meter_keys (meter_id, added_at);
ALTER TABLE meter_keys DROP COLUMN seq;
DROP TABLE meter_usernames;
DROP TABLE key_fingerprints;
ALTER TABLE meters DROP COLUMN key_seq;
