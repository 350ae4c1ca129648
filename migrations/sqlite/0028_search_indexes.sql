-- Console / API payment search at millions of payments (issue 21): indexes whose column order
-- lets a filter and the list's order (newest first) be one index seek, whatever the planner's
-- statistics. See docs/console.md ("Query plans").
--
-- 取引ID (exact) + newest first: with only (merchant_id, order_id, id) both planners may walk the
-- created_at index of the whole merchant looking for the order.
CREATE INDEX payments_m_order_created ON payments (merchant_id, order_id, created_at, id);
-- Operators searching every merchant by status.
CREATE INDEX payments_status_created ON payments (status, created_at, id);
-- The same keys as payments_m_created (merchant_id, created_at, id), which both planners scan in
-- either direction: one index less to write on every payment insert and status change.
DROP INDEX payments_merchant_created;
