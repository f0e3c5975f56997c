-- The FINAL decision per (session, symbol), after the risk gate: the one answer a user reads.
CREATE TABLE IF NOT EXISTS risk_decisions (
    date              DATE    NOT NULL,
    symbol            VARCHAR NOT NULL,
    decision          VARCHAR NOT NULL,  -- EXECUTE_BUY | EXECUTE_SELL | HOLD | REJECT
    reason_codes      VARCHAR[] NOT NULL,
    current_weight    DOUBLE,
    target_weight_raw DOUBLE,
    approved_weight   DOUBLE,
    order_quantity    DOUBLE,            -- signed shares (+ buy, - sell)
    adjustments       VARCHAR,           -- JSON: each scaling applied and its factor
    trading_state     VARCHAR,           -- ACTIVE | REDUCING | HALTED
    cycle_id          VARCHAR,
    pre_risk_decision VARCHAR,           -- the Meta-Brain's decision (NULL: no decision row, held name)
    mu_hat            DOUBLE,
    sigma_hat         DOUBLE,
    close             DOUBLE,            -- raw close of the session used for sizing (NULL: none)
    sector            VARCHAR,
    run_id            VARCHAR,
    PRIMARY KEY (date, symbol)
);
