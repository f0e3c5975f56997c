-- Incremental feature state (domain/features/incremental.py): per symbol, the state after session
-- as_of -- its usable-bar count, last usable bar, the first of its TRAILING_BARS trailing bars and the
-- value of every recursion (EMA, Wilder, EWMA; one DOUBLE column r_<key> each, added by the features
-- asset) -- so the next session's features follow from it and the trailing bars. state_version: the
-- feature version, TRAILING_BARS, the state revision and the history start it is valid for;
-- inputs_digest: a digest of the symbol's bars, quality exclusions and corporate actions (provider and
-- inferred) up to as_of (store/feature_state.py), compared before a state is used.
CREATE TABLE IF NOT EXISTS feature_state (
    as_of          DATE    NOT NULL,
    symbol         VARCHAR NOT NULL,
    state_version  VARCHAR NOT NULL,
    inputs_digest  UBIGINT NOT NULL,
    history_rows   BIGINT  NOT NULL,
    last_bar       DATE    NOT NULL,
    tail_start     DATE    NOT NULL,
    computed_at    TIMESTAMP,
    run_id         VARCHAR,
    PRIMARY KEY (as_of, symbol)
);
