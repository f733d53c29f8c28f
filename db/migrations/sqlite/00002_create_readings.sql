-- +goose Up
-- timestamp is the meter's own clock in Unix milliseconds, exactly as signed.
CREATE TABLE readings (
    meter_id    INTEGER  NOT NULL REFERENCES meters (id),
    timestamp   INTEGER  NOT NULL,
    wh_in       INTEGER  NOT NULL CHECK (wh_in >= 0),
    wh_out      INTEGER  NOT NULL CHECK (wh_out >= 0),
    signature   BLOB     NOT NULL,
    received_at DATETIME NOT NULL,
    PRIMARY KEY (meter_id, timestamp)
) WITHOUT ROWID;

-- +goose Down
DROP TABLE readings;
