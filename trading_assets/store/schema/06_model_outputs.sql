-- One row per (session, symbol, agent). mu, sigma: expected return and volatility over the
-- agents' horizon (one session, as decimals); confidence in [0, 1].
CREATE TABLE IF NOT EXISTS model_outputs (
    date          DATE    NOT NULL,
    symbol        VARCHAR NOT NULL,
    agent         VARCHAR NOT NULL,
    mu            DOUBLE,
    sigma         DOUBLE,
    confidence    DOUBLE,
    explanation   VARCHAR,
    agent_version VARCHAR,
    state         VARCHAR,        -- a categorical state the agent reports (the regime agent: risk_on | neutral | risk_off)
    score         DOUBLE,         -- a trained model's raw score (null for the heuristic agents)
    role          VARCHAR,        -- heuristic | champion | shadow (shadows never reach the Meta-Brain)
    model_version VARCHAR,        -- the trained model version that produced the row (model_training_runs)
    run_id        VARCHAR,
    PRIMARY KEY (date, symbol, agent)
);
