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
    recovery_phase INTEGER,
    cvar_95        DOUBLE,
    n_positions    INTEGER,
    sector_exposure VARCHAR,          -- JSON {sector: weight}
    run_id         VARCHAR
);
