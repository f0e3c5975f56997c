-- Child orders of the execution algorithms (domain/execution_algos.py): one row per (parent order, slot)
-- of the fill session, owned by the fill session's partition like `fills` (which keeps one row per parent).
CREATE TABLE IF NOT EXISTS executions (
    order_id         VARCHAR NOT NULL,  -- the parent order
    slot             INTEGER NOT NULL,  -- 0 .. slices-1 (market_on_open: 0, the open)
    date             DATE    NOT NULL,  -- fill session
    symbol           VARCHAR NOT NULL,
    side             VARCHAR NOT NULL,
    start_minute     INTEGER NOT NULL,  -- minutes after the open at which the slot starts
    planned_quantity DOUBLE  NOT NULL,  -- the schedule before the participation cap
    cap_quantity     DOUBLE,            -- floor(cap x expected slot volume); NULL = no cap
    quantity         DOUBLE  NOT NULL,  -- shares executed (0 when the cap left nothing)
    slot_price       DOUBLE  NOT NULL,  -- the seeded day path's price of the slot
    price            DOUBLE,            -- fill price after costs (NULL when 0 shares)
    cost             DOUBLE  NOT NULL,  -- slippage / impact cost
    commission       DOUBLE  NOT NULL,  -- the child's share of the parent's commission
    run_id           VARCHAR,
    PRIMARY KEY (order_id, slot)
);
