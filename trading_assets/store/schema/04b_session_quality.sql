-- One row per session of a data_quality run: the share of the tradable universe that failed quality
-- and whether the session is HALTED for trading (a systemic data fault: domain/session_health.py).
CREATE TABLE IF NOT EXISTS session_quality (
    date              DATE    NOT NULL PRIMARY KEY,
    symbols           BIGINT  NOT NULL,   -- universe symbols with a row, benchmark and NOT_LISTED excluded
    failing           BIGINT  NOT NULL,   -- of them, failing quality
    failing_share     DOUBLE  NOT NULL,
    max_failing_share DOUBLE  NOT NULL,   -- the limit it was compared with
    halted            BOOLEAN NOT NULL,   -- failing_share > max_failing_share
    top_codes         VARCHAR,            -- JSON {code: failing rows}, the most frequent
    examples          VARCHAR[],          -- some failing symbols (sorted)
    run_id            VARCHAR
);
