-- Orders decided at session `date` (owned by that session's partition). Their paper fills happen at
-- the open of the next session and live in `fills` (owned by the fill session's partition), so a
-- rerun of either session replaces only its own rows. `order_blotter` joins the two.
CREATE TABLE IF NOT EXISTS orders (
    order_id        VARCHAR PRIMARY KEY,  -- hash of (date, symbol, side, quantity, cycle inputs)
    date            DATE    NOT NULL,
    symbol          VARCHAR NOT NULL,
    side            VARCHAR NOT NULL,     -- BUY | SELL
    quantity        DOUBLE  NOT NULL,     -- shares, > 0
    reference_price DOUBLE,               -- close at decision time
    mode            VARCHAR NOT NULL,     -- paper | live
    cycle_id        VARCHAR,
    expected_volume DOUBLE,               -- ADV in shares at decision time (cost model, execution schedule)
    sigma_daily     DOUBLE,               -- daily volatility at decision time (cost model: market impact)
    run_id          VARCHAR
);
