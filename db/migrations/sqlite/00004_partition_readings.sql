-- +goose Up
-- SQLite has no partitioning: the embedded store is one process on one
-- file, and its readings table stays as it is. This migration exists so
-- that both stores share version numbers.
SELECT 1;

-- +goose Down
SELECT 1;
