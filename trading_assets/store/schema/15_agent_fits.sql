-- Fitted state of the statistical agents (garch, hmm_regime, evt_tail): one row per (grid session, agent,
-- symbol). fit_date = the grid session whose close ends the fit window (domain/calendar.cadence_session);
-- symbol = 'MARKET' for a market-level fit. params: JSON of the fitted parameters. A fit is reused while
-- its agent_version (the agent's own settings hash) matches; recomputing it gives the same row.
CREATE TABLE IF NOT EXISTS agent_fits (
    fit_date      DATE    NOT NULL,
    agent         VARCHAR NOT NULL,
    symbol        VARCHAR NOT NULL,
    params        VARCHAR,
    converged     BOOLEAN,
    n_obs         INTEGER,
    loglik        DOUBLE,
    message       VARCHAR,
    agent_version VARCHAR,
    run_id        VARCHAR,
    PRIMARY KEY (fit_date, agent, symbol)
);
