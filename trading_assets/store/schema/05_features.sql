-- Wide feature table: one column per catalog feature is added by the features asset
-- (ALTER TABLE ... ADD COLUMN IF NOT EXISTS), plus provenance.
CREATE TABLE IF NOT EXISTS features (
    date                DATE    NOT NULL,
    symbol              VARCHAR NOT NULL,
    history_rows        INTEGER,         -- bars of history the row was computed from
    quality_flagged     BOOLEAN,         -- this session's bar failed quality
    benchmark_available BOOLEAN,         -- beta/correlation features had the benchmark
    feature_version     VARCHAR,         -- hash of the catalog and its parameters
    computed_at         TIMESTAMP,
    run_id              VARCHAR,
    PRIMARY KEY (date, symbol)
);
