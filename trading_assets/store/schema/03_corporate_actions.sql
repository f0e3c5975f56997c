-- Splits and dividends by ex-date. price_factor multiplies prices BEFORE the ex-date to make them
-- comparable with prices on/after it: split of ratio r (new shares per old) -> 1/r;
-- dividend d with previous close c -> 1 - d/c. Known at the ex-date, so point-in-time safe.
CREATE TABLE IF NOT EXISTS corporate_actions (
    date         DATE    NOT NULL,   -- ex-date
    symbol       VARCHAR NOT NULL,
    action       VARCHAR NOT NULL,   -- 'split' | 'dividend'
    value        DOUBLE  NOT NULL,   -- split ratio (new/old) or cash dividend per share
    price_factor DOUBLE,
    provider     VARCHAR NOT NULL,
    run_id       VARCHAR,
    PRIMARY KEY (date, symbol, action)
);
