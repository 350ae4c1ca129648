-- The delivery claim (db/outbox.rs) walks pending events in due order and, for each, checks
-- that no earlier event of the same payment is still pending. Partial indexes over pending
-- rows only let it read the first due rows in order and stop at the batch size, and make each
-- per-payment check one index probe; before, the claim read and checked every pending row
-- before sorting (issue 21: PostgreSQL delivery fell to ~200 events/s behind a backlog).
-- IF NOT EXISTS: an operator may build them CONCURRENTLY first (docs/deployment.md).
CREATE INDEX IF NOT EXISTS outbox_pending_due ON outbox (next_attempt_at, created_at) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS outbox_pending_payment ON outbox (payment_id, seq) WHERE status = 'pending';
