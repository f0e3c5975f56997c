-- Paper fills: an order of session t fills at the open of session t+1 with slippage and commission.
CREATE TABLE IF NOT EXISTS fills (
    order_id      VARCHAR PRIMARY KEY,
    date          DATE    NOT NULL,   -- fill session (t+1)
    order_date    DATE    NOT NULL,   -- decision session (t)
    symbol        VARCHAR NOT NULL,
    side          VARCHAR NOT NULL,
    quantity      DOUBLE  NOT NULL,   -- shares filled, > 0
    price         DOUBLE,             -- open(t+1) * (1 +/- slippage); NULL when CANCELLED (nothing traded)
    commission    DOUBLE  NOT NULL,
    slippage_cost DOUBLE  NOT NULL,
    status        VARCHAR NOT NULL,   -- FILLED | CANCELLED (no open price: reason in audit)
    reason        VARCHAR,            -- why a fill was CANCELLED (NULL when FILLED)
    run_id        VARCHAR
);
-- Warehouses created before cancelled fills stored NULL: drop the old NOT NULL and turn their NaN
-- prices into NULL (both idempotent).
ALTER TABLE fills ALTER COLUMN price DROP NOT NULL;
UPDATE fills SET price = NULL WHERE isnan(price);
