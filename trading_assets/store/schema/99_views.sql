CREATE OR REPLACE VIEW order_blotter AS
SELECT o.*, f.date AS fill_date, f.price AS fill_price, f.commission, f.slippage_cost,
       COALESCE(f.status, 'PENDING') AS status
FROM orders o LEFT JOIN fills f USING (order_id);
