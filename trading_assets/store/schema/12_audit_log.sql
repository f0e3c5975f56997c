-- Append-only: never UPDATE or DELETE. A rerun appends new entries under its own run_id.
CREATE TABLE IF NOT EXISTS audit_log (
    event_id   VARCHAR NOT NULL,
    ts         TIMESTAMP NOT NULL,
    run_id     VARCHAR,
    cycle_id   VARCHAR,
    event_type VARCHAR NOT NULL,   -- decision | order | fill | run_failure | cycle | ...
    date       DATE,
    symbol     VARCHAR,
    payload    VARCHAR NOT NULL    -- JSON
);
