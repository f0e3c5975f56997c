-- One row per session: the cycle summary JSON (DESIGN section 1) and what produced it.
CREATE TABLE IF NOT EXISTS cycle_meta (
    date             DATE PRIMARY KEY,
    cycle_id         VARCHAR NOT NULL,
    run_id           VARCHAR,
    window_start     DATE,
    window_end       DATE,
    settings_hash    VARCHAR,
    feature_version  VARCHAR,
    summary          VARCHAR NOT NULL,  -- JSON (deterministic part: no timestamps or run ids)
    duration_seconds DOUBLE,            -- wall time of the run up to this summary
    created_at       TIMESTAMP
);
