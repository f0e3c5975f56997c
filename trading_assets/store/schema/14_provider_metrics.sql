-- Append-only log of every provider attempt; the router's bandit learns from it.
CREATE TABLE IF NOT EXISTS provider_metrics (
    ts                TIMESTAMP NOT NULL,
    run_id            VARCHAR,
    provider          VARCHAR NOT NULL,
    window_start      DATE,
    window_end        DATE,
    symbols_requested INTEGER,
    symbols_served    INTEGER,
    rows              INTEGER,
    success           BOOLEAN NOT NULL,
    failure_reason    VARCHAR,
    latency_ms        DOUBLE,
    quality           DOUBLE,         -- share of served rows passing basic sanity, in [0, 1]
    unserved          VARCHAR[]       -- on the router's summary row (provider = 'router'): symbols no provider served
);
