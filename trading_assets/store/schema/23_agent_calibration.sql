-- The Meta-Brain's reliability factor per (session, agent) when settings.meta.calibrate (domain/calibration.py):
-- factor = min(1, max(0, ic_mean) / calibration_full_ic) over the agent's last calibration_window daily rank ICs
-- of its mu known at the session (0 before calibration_min_sessions); the Meta-Brain used confidence x factor.
CREATE TABLE IF NOT EXISTS agent_calibration (
    date    DATE    NOT NULL,
    agent   VARCHAR NOT NULL,
    ic_n    INTEGER,
    ic_mean DOUBLE,
    ic_t    DOUBLE,
    factor  DOUBLE  NOT NULL,
    run_id  VARCHAR,
    PRIMARY KEY (date, agent)
);
