-- The Meta-Brain's pre-risk view per (session, symbol).
CREATE TABLE IF NOT EXISTS decisions (
    date              DATE    NOT NULL,
    symbol            VARCHAR NOT NULL,
    mu_hat            DOUBLE,
    sigma_hat         DOUBLE,
    disagreement      DOUBLE,     -- Var_k(mu_k)
    mu_hat_adj        DOUBLE,     -- mu_hat * exp(-beta * disagreement)
    z_score           DOUBLE,
    kelly_fraction    DOUBLE,
    target_weight_raw DOUBLE,
    pre_risk_decision VARCHAR NOT NULL,
    reason_codes      VARCHAR[] NOT NULL,
    n_agents          INTEGER,
    regime            VARCHAR,    -- risk_on | neutral | risk_off (from the regime agent)
    cycle_id          VARCHAR,
    run_id            VARCHAR,
    PRIMARY KEY (date, symbol)
);
