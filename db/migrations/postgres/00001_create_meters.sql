-- +goose Up
CREATE TABLE meters (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username      TEXT        NOT NULL,
    public_key    BYTEA       NOT NULL,
    fingerprint   BYTEA       NOT NULL,
    algorithm     TEXT        NOT NULL,
    registered_at TIMESTAMPTZ NOT NULL,
    CONSTRAINT meters_username_key UNIQUE (username),
    CONSTRAINT meters_fingerprint_key UNIQUE (fingerprint),
    CONSTRAINT meters_fingerprint_len CHECK (octet_length(fingerprint) = 32)
);

-- +goose Down
DROP TABLE meters;
