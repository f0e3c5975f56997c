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
    run_id        VARCHAR,
    PRIMARY KEY (date, symbol, agent)
);
