-- Corporate actions inferred from prices (domain/quality.py "Held moves"): a jump with no recorded
-- action whose new level held for the confirming sessions. date = the confirming session, the first
-- that knows the action (its partition writes the row); ex_date = the session of the move. Readers
-- apply an action from ex_date on, and only where date (known_at) <= the session they compute.
CREATE TABLE IF NOT EXISTS inferred_actions (
    date                DATE    NOT NULL,   -- known at (the last confirming session)
    symbol              VARCHAR NOT NULL,
    ex_date             DATE    NOT NULL,
    action              VARCHAR NOT NULL,   -- 'split' (a split-like ratio) | 'level_shift'
    ratio               DOUBLE  NOT NULL,   -- close(ex_date) / previous close (the split ratio when split-like)
    price_factor        DOUBLE  NOT NULL,   -- = ratio, as corporate_actions.price_factor
    move_return         DOUBLE,             -- log return of the move
    confirming_sessions DATE[],
    provenance          VARCHAR NOT NULL,   -- 'inferred'
    run_id              VARCHAR,
    PRIMARY KEY (date, symbol, ex_date)
);
