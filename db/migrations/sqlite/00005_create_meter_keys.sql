-- +goose Up
-- Key lifecycle; see the PostgreSQL migration of the same number.
ALTER TABLE meters ADD COLUMN revoked_at DATETIME;

CREATE TABLE meter_keys (
    fingerprint BLOB     NOT NULL UNIQUE CHECK (length(fingerprint) = 32),
    meter_id    INTEGER  NOT NULL REFERENCES meters (id),
    public_key  BLOB     NOT NULL,
    algorithm   TEXT     NOT NULL,
    added_at    DATETIME NOT NULL,
    retired_at  DATETIME
);
CREATE INDEX meter_keys_meter_idx ON meter_keys (meter_id, added_at);

CREATE TABLE meter_key_events (
    id              INTEGER  PRIMARY KEY,
    meter_id        INTEGER  NOT NULL REFERENCES meters (id),
    action          TEXT     NOT NULL CHECK (action IN ('register', 'revoke', 'replace')),
    old_fingerprint BLOB,
    new_fingerprint BLOB,
    reason          TEXT     NOT NULL DEFAULT '',
    at              DATETIME NOT NULL
);
CREATE INDEX meter_key_events_meter_idx ON meter_key_events (meter_id, id);

INSERT INTO meter_keys (fingerprint, meter_id, public_key, algorithm, added_at)
SELECT fingerprint, id, public_key, algorithm, registered_at FROM meters;
INSERT INTO meter_key_events (meter_id, action, new_fingerprint, at)
SELECT id, 'register', fingerprint, registered_at FROM meters;

-- +goose Down
DROP TABLE meter_key_events;
DROP TABLE meter_keys;
ALTER TABLE meters DROP COLUMN revoked_at;
