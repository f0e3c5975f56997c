-- The book against its benchmarks, one row per session (formulas: domain/evaluation/performance.py).
-- Fractions of NAV unless stated; returns are simple daily decimals.
CREATE TABLE IF NOT EXISTS performance (
    date                DATE PRIMARY KEY,
    nav                 DOUBLE NOT NULL,
    nav_prev            DOUBLE NOT NULL,   -- NAV at the previous close (initial capital on the first session)
    net_return          DOUBLE,            -- NAV_t / NAV_{t-1} - 1
    gross_return        DOUBLE,            -- net_return + cost_fraction (before commission and slippage)
    commission          DOUBLE,            -- dollars, fills of the session
    slippage            DOUBLE,            -- dollars, fills of the session
    costs               DOUBLE,            -- commission + slippage, dollars
    commission_fraction DOUBLE,            -- commission / NAV_{t-1}
    slippage_fraction   DOUBLE,
    cost_fraction       DOUBLE,
    traded_notional     DOUBLE,            -- dollars, sum |quantity * fill price|
    turnover            DOUBLE,            -- traded_notional / NAV_{t-1}
    gross_exposure      DOUBLE,            -- sum |MV| / NAV
    net_exposure        DOUBLE,            -- sum MV / NAV
    benchmark           VARCHAR,           -- the benchmark symbol (settings.benchmark)
    benchmark_return    DOUBLE,            -- its adj_close_t / adj_close_{t-1} - 1 (NULL: no bar)
    ew_return           DOUBLE,            -- equal-weight universe, rebalanced daily (adj close to close)
    ew_count            INTEGER,           -- names in ew_return
    cum_return          DOUBLE,            -- book, since its first session
    cum_gross_return    DOUBLE,
    benchmark_cum_return DOUBLE,
    ew_cum_return       DOUBLE,
    drawdown            DOUBLE,            -- 1 - level / running peak (book, net)
    run_id              VARCHAR
);
-- Risk/return metrics per (session, series, horizon): series book | book_gross | benchmark | equal_weight;
-- horizon inception | rolling_63 | rolling_252. Relative metrics against the benchmark (beta, ...) and
-- the equal weight (beta_ew, ...). NULL where undefined (too few sessions, zero dispersion).
CREATE TABLE IF NOT EXISTS performance_metrics (
    date              DATE    NOT NULL,
    series            VARCHAR NOT NULL,
    horizon           VARCHAR NOT NULL,
    n_sessions        INTEGER,
    cum_return        DOUBLE,
    cagr              DOUBLE,
    volatility        DOUBLE,
    sharpe            DOUBLE,
    sortino           DOUBLE,
    max_drawdown      DOUBLE,            -- positive fraction
    dd_peak_date      DATE,              -- since inception only
    dd_trough_date    DATE,
    dd_recovery_date  DATE,              -- NULL: not recovered as of date
    calmar            DOUBLE,
    beta              DOUBLE,
    alpha             DOUBLE,            -- annualized
    tracking_error    DOUBLE,            -- annualized
    information_ratio DOUBLE,
    beta_ew           DOUBLE,
    alpha_ew          DOUBLE,
    tracking_error_ew DOUBLE,
    information_ratio_ew DOUBLE,
    run_id            VARCHAR,
    PRIMARY KEY (date, series, horizon)
);
-- PnL of each session by GICS sector and by the final decision of the session before (dimension
-- sector | decision); sums to NAV_t - NAV_{t-1} in each dimension.
CREATE TABLE IF NOT EXISTS performance_attribution (
    date         DATE    NOT NULL,
    dimension    VARCHAR NOT NULL,
    bucket       VARCHAR NOT NULL,
    pnl          DOUBLE,               -- dollars
    contribution DOUBLE,               -- pnl / NAV_{t-1}
    n_symbols    INTEGER,
    run_id       VARCHAR,
    PRIMARY KEY (date, dimension, bucket)
);
