-- +goose Up
CREATE TABLE meters (
    id            INTEGER  PRIMARY KEY,
    username      TEXT     NOT NULL UNIQUE,
    public_key    BLOB     NOT NULL,
    fingerprint   BLOB     NOT NULL UNIQUE CHECK (length(fingerprint) = 32),
    algorithm     TEXT     NOT NULL,
    registered_at DATETIME NOT NULL
);

-- +goose Down
DROP TABLE meters;
