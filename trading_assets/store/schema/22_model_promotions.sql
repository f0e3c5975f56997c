-- The champion of each family at each training session, and why (written by agent_outputs).
-- action: initial | keep | promote, and for a family that starts as a shadow (the deep ones): shadow
-- (no champion yet: every variant scored as a shadow) | enter (a variant beat the incumbent family's
-- champion) | demote (the incumbent's champion beat it: back to shadow). A challenger replaces the champion when the paired t-statistic of
-- its daily out-of-sample rank IC minus the champion's over the last promotion_window label sessions
-- known at t is >= promotion_t (settings.models).
CREATE TABLE IF NOT EXISTS model_promotions (
    date           DATE    NOT NULL,
    family         VARCHAR NOT NULL,
    champion       VARCHAR,           -- the agent that is champion from this session on (NULL: none, all shadows)
    previous       VARCHAR,
    action         VARCHAR NOT NULL,
    best_challenger VARCHAR,
    t_stat         DOUBLE,            -- the best challenger's paired t-statistic
    n_sessions     INTEGER,
    champion_ic    DOUBLE,            -- mean OOS rank IC over the paired sessions
    challenger_ic  DOUBLE,
    details        VARCHAR,           -- JSON: every challenger's t, n, mean IC
    run_id         VARCHAR,
    PRIMARY KEY (date, family)
);
