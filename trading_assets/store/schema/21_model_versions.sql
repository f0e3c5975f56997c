-- Which model version served which session, point in time (written by agent_outputs with the scores):
-- explain names it, and a rerun of the session uses the same one (the version serving t is the latest
-- TRAINED model_training_runs row with date <= t).
CREATE TABLE IF NOT EXISTS model_versions (
    date          DATE    NOT NULL,
    agent         VARCHAR NOT NULL,
    family        VARCHAR NOT NULL,
    role          VARCHAR NOT NULL,   -- champion (reaches the Meta-Brain) | shadow (scored and evaluated only)
    model_version VARCHAR,            -- null: no trained model yet (NOT_TRAINED)
    train_date    DATE,
    run_id        VARCHAR,
    PRIMARY KEY (date, agent)
);
