-- +goose Up
-- The server's own signing keys; see the PostgreSQL migration of the same
-- number.
CREATE TABLE server_keys (
    name       TEXT     PRIMARY KEY,
    pem        TEXT     NOT NULL,
    created_at DATETIME NOT NULL
);

-- +goose Down
DROP TABLE server_keys;
