-- Daily bars exactly as the provider delivered them (never altered; defects are flagged in data_quality_log).
-- open/high/low/close: as delivered (split-adjusted for Yahoo and the local S&P file, raw for synthetic).
-- adj_close: the provider's split- and dividend-adjusted close (= close when the provider has none).
CREATE TABLE IF NOT EXISTS price_history (
    date         DATE    NOT NULL,
    symbol       VARCHAR NOT NULL,
    open         DOUBLE,
    high         DOUBLE,
    low          DOUBLE,
    close        DOUBLE,
    adj_close    DOUBLE,
    volume       DOUBLE,
    duplicate_count INTEGER NOT NULL DEFAULT 0, -- extra copies of this (date, symbol) the provider sent (first kept)
    provider     VARCHAR NOT NULL,   -- which provider served this row (yfinance, local, synthetic)
    is_synthetic BOOLEAN NOT NULL,
    run_id       VARCHAR,
    ingested_at  TIMESTAMP,
    PRIMARY KEY (date, symbol)
);
