-- One row per (training session, model variant): what model_training did at a cadence session (issue #12).
-- status TRAINED: model_version names the artifact file (artifact_path relative to the data folder,
-- artifact_sha256 its content hash, checked before every use); NOT_TRAINED: reason says why (too little
-- history); the variant is then silent until a later training session.
CREATE TABLE IF NOT EXISTS model_training_runs (
    date            DATE    NOT NULL,   -- the training session t (models trained after its close serve t onward)
    agent           VARCHAR NOT NULL,   -- the variant's agent name (family for the initial champion)
    family          VARCHAR NOT NULL,
    status          VARCHAR NOT NULL,   -- TRAINED | NOT_TRAINED
    reason          VARCHAR,
    model_version   VARCHAR,            -- sha256(family, variant, params, label window, purge, feature_version, data)[:16]
    artifact_path   VARCHAR,            -- relative to the data folder: models/<family>/<agent>/<version>.model
    artifact_sha256 VARCHAR,
    params          VARCHAR,            -- JSON of the variant's hyperparameters (and window_years)
    window_years    INTEGER,            -- 0 = expanding
    first_label_date DATE,              -- first decision date used
    last_label_date DATE,               -- last decision date used (<= t - horizon - purge_extra)
    purge_sessions  INTEGER,            -- horizon + purge_extra
    train_rows      BIGINT,
    train_sessions  INTEGER,
    thin_every      INTEGER,            -- every k-th session kept (1 = all)
    feature_version VARCHAR,
    is_rank_ic      DOUBLE,             -- mean per-session rank IC on the training rows (in sample)
    val_rank_ic     DOUBLE,             -- the previous version's out-of-sample rank IC over the sessions it served
    val_sessions    INTEGER,
    fit_seconds     DOUBLE,
    mlflow_run_id   VARCHAR,
    run_id          VARCHAR,
    PRIMARY KEY (date, agent)
);
