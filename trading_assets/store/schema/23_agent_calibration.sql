-- The Meta-Brain's reliability factor per (session, agent) when settings.meta.calibrate (domain/calibration.py):
-- computed at the calibration session as_of = the latest model cadence session <= date, over the agent's last
-- calibration_window daily rank ICs known at as_of (ic_n, ic_mean, ic_t); ic_shrunk = ic_mean x max(0, 1 - 1/ic_t^2);
-- factor = min(1, ic_shrunk / calibration_full_ic) (0 before calibration_min_sessions); the Meta-Brain used
-- confidence x factor. A later run reads the factors of a calibration session before its window from its own row.
CREATE TABLE IF NOT EXISTS agent_calibration (
    date      DATE    NOT NULL,
    agent     VARCHAR NOT NULL,
    as_of     DATE,
    ic_n      INTEGER,
    ic_mean   DOUBLE,
    ic_t      DOUBLE,
    ic_shrunk DOUBLE,
    factor    DOUBLE  NOT NULL,
    method    VARCHAR,  -- the calibration's parameters (defs/calibration.method): stored factors are reused only under the same
    run_id    VARCHAR,
    PRIMARY KEY (date, agent)
);
