-- The book per session: NAV, returns, drawdown, exposures and the risk engine's state.
CREATE TABLE IF NOT EXISTS portfolio (
    date           DATE PRIMARY KEY,
    nav            DOUBLE NOT NULL,
    cash           DOUBLE NOT NULL,
    gross_exposure DOUBLE,
    net_exposure   DOUBLE,
    leverage       DOUBLE,
    daily_return   DOUBLE,
    drawdown       DOUBLE,
    peak_nav       DOUBLE,
    trading_state  VARCHAR,
    recovery_phase INTEGER,           -- 0: not recovering; p >= 1: factor recovery_phases[p-1]
    recovery_sessions INTEGER,        -- sessions spent in the current recovery phase (entry session = 1)
    cvar_95        DOUBLE,
    n_positions    INTEGER,
    sector_exposure VARCHAR,          -- JSON {sector: weight}
    tail_prob      DOUBLE,            -- P(one-day loss > risk.tail_loss_threshold) of the approved book: EVT (tail_method evt) or Student-t
    approved_gross DOUBLE,            -- gross weight of the book the gate approved (at the decision close)
    warnings       VARCHAR,           -- JSON list of the session's warnings
    run_id         VARCHAR
);
