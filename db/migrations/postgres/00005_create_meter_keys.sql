-- +goose Up
-- Key lifecycle. meters keeps each meter's current key; revoked_at is set
-- when that key is revoked and the meter then has no usable key until one
-- replaces it.
ALTER TABLE meters ADD COLUMN revoked_at TIMESTAMPTZ;

-- meter_keys holds every key a meter has ever had and is never pruned: its
-- primary key is what stops a retired key from being registered again, by
-- any meter, and its intervals [added_at, retired_at) tell which key signed
-- a stored reading.
CREATE TABLE meter_keys (
    fingerprint BYTEA       PRIMARY KEY CHECK (octet_length(fingerprint) = 32),
    meter_id    BIGINT      NOT NULL REFERENCES meters (id),
    public_key  BYTEA       NOT NULL,
    algorithm   TEXT        NOT NULL,
    added_at    TIMESTAMPTZ NOT NULL,
    retired_at  TIMESTAMPTZ
);
CREATE INDEX meter_keys_meter_idx ON meter_keys (meter_id, added_at);

-- meter_key_events is the audit trail: one row per registration, revocation
-- and replacement, with who-knows-why in reason.
CREATE TABLE meter_key_events (
    id              BIGINT GENERATED ALWAYS AS IDENTITY,
    meter_id        BIGINT      NOT NULL REFERENCES meters (id),
    action          TEXT        NOT NULL CHECK (action IN ('register', 'revoke', 'replace')),
    old_fingerprint BYTEA,
    new_fingerprint BYTEA,
    reason          TEXT        NOT NULL DEFAULT '',
    at              TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (meter_id, id)
);
CREATE INDEX meter_key_events_at_idx ON meter_key_events (at);

INSERT INTO meter_keys (fingerprint, meter_id, public_key, algorithm, added_at)
SELECT fingerprint, id, public_key, algorithm, registered_at FROM meters;
INSERT INTO meter_key_events (meter_id, action, new_fingerprint, at)
SELECT id, 'register', fingerprint, registered_at FROM meters;

-- +goose Down
DROP TABLE meter_key_events;
DROP TABLE meter_keys;
ALTER TABLE meters DROP COLUMN revoked_at;
