-- One row per (session, symbol) of the universe: score in [0, 1] and the reason codes behind it.
CREATE TABLE IF NOT EXISTS data_quality_log (
    date         DATE    NOT NULL,
    symbol       VARCHAR NOT NULL,
    score        DOUBLE  NOT NULL,
    passed       BOOLEAN NOT NULL,
    reason_codes VARCHAR[] NOT NULL,
    details      VARCHAR,            -- JSON: the values that triggered each rule
    provider     VARCHAR,
    run_id       VARCHAR,
    PRIMARY KEY (date, symbol)
);
