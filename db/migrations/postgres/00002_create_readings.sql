-- +goose Up
-- timestamp is the meter's own clock in Unix milliseconds, exactly as signed.
CREATE TABLE readings (
    meter_id    BIGINT      NOT NULL REFERENCES meters (id),
    timestamp   BIGINT      NOT NULL,
    wh_in       BIGINT      NOT NULL CHECK (wh_in >= 0),
    wh_out      BIGINT      NOT NULL CHECK (wh_out >= 0),
    signature   BYTEA       NOT NULL,
    received_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (meter_id, timestamp)
);

-- +goose Down
DROP TABLE readings;
