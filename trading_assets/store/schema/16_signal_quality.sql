-- How well every forecasting source ranked what happened (domain/evaluation/ic.py; docs/EVALUATION.md):
-- one row per (label date, source, horizon), owned by the partition of known_at (when the labels of
-- `date` became known: date + 1 + horizon sessions). The rolling columns of a row use only the rows of
-- label dates <= date, all known by known_at.
CREATE TABLE IF NOT EXISTS signal_quality (
    date              DATE    NOT NULL,  -- label date s: the session the scores were known at
    source            VARCHAR NOT NULL,  -- agent name (model_outputs.agent), 'meta_brain' or 'risk_gate'
    horizon           INTEGER NOT NULL,  -- label horizon in sessions (1 or 5)
    known_at          DATE    NOT NULL,  -- s + 1 + horizon: the partition that writes the row
    kind              VARCHAR NOT NULL,  -- agent | meta_brain | risk_gate
    role              VARCHAR,           -- model_outputs.role when the table has it (heuristic | champion | shadow)
    score_column      VARCHAR NOT NULL,  -- what was scored: model_outputs.mu | decisions.mu_hat_adj | risk_decisions.approved_weight
    label             VARCHAR NOT NULL,  -- the label column scored against (excess_return)
    n                 BIGINT  NOT NULL,  -- (score, label) pairs
    universe_n        BIGINT  NOT NULL,  -- valid labels of the date (benchmark excluded)
    coverage          DOUBLE,            -- n / universe_n
    ic                DOUBLE,            -- Pearson
    rank_ic           DOUBLE,            -- Spearman (average ranks)
    hit_n             BIGINT  NOT NULL,  -- pairs with a non-zero score
    hit_rate          DOUBLE,            -- share of non-zero scores whose label has their sign
    top_n             BIGINT  NOT NULL,
    bottom_n          BIGINT  NOT NULL,
    spread            DOUBLE,            -- mean label of the top quintile - the bottom quintile's
    n_rank_ic_21      BIGINT,
    ic_mean_21        DOUBLE,
    ic_ir_21          DOUBLE,
    ic_t_21           DOUBLE,
    rank_ic_mean_21   DOUBLE,
    rank_ic_ir_21     DOUBLE,
    rank_ic_t_21      DOUBLE,
    hit_rate_mean_21  DOUBLE,
    spread_mean_21    DOUBLE,
    n_rank_ic_63      BIGINT,
    ic_mean_63        DOUBLE,
    ic_ir_63          DOUBLE,
    ic_t_63           DOUBLE,
    rank_ic_mean_63   DOUBLE,
    rank_ic_ir_63     DOUBLE,
    rank_ic_t_63      DOUBLE,
    hit_rate_mean_63  DOUBLE,
    spread_mean_63    DOUBLE,
    n_rank_ic_252     BIGINT,
    ic_mean_252       DOUBLE,
    ic_ir_252         DOUBLE,
    ic_t_252          DOUBLE,
    rank_ic_mean_252  DOUBLE,
    rank_ic_ir_252    DOUBLE,
    rank_ic_t_252     DOUBLE,
    hit_rate_mean_252 DOUBLE,
    spread_mean_252   DOUBLE,
    run_id            VARCHAR,
    PRIMARY KEY (date, source, horizon)
);
