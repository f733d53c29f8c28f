-- +goose Up
-- Fleet-wide reporting asks "which readings fall in this recent window",
-- across all meters; the primary key (meter_id, timestamp) cannot answer
-- that without scanning every meter. Readings arrive in roughly timestamp
-- order, so this index grows at its right edge and costs little on insert.
CREATE INDEX readings_timestamp_idx ON readings (timestamp);

-- +goose Down
DROP INDEX readings_timestamp_idx;
