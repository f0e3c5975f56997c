-- Holdings marked at each session's close (after that session's fills).
CREATE TABLE IF NOT EXISTS positions (
    date         DATE    NOT NULL,
    symbol       VARCHAR NOT NULL,
    quantity     DOUBLE  NOT NULL,
    avg_cost     DOUBLE,
    close        DOUBLE,
    market_value DOUBLE,
    weight       DOUBLE,
    unrealized_pnl DOUBLE,
    run_id       VARCHAR,
    PRIMARY KEY (date, symbol)
);
