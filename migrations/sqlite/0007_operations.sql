-- Card actions (capture, cancel, refund) in flight. An operation is claimed (committed) before
-- the connector is called, with its id as the idempotency key, and finished in the transaction
-- that records the outcome. At most one pending operation per payment: two concurrent refunds
-- cannot both reach the processor. Times are unix milliseconds.
CREATE TABLE payment_operations (
    id TEXT PRIMARY KEY,
    payment_id TEXT NOT NULL REFERENCES payments (id),
    kind TEXT NOT NULL CHECK (kind IN ('capture', 'cancel', 'refund')),
    amount INTEGER,
    actor TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done', 'failed')),
    error TEXT,
    created_at INTEGER NOT NULL,
    finished_at INTEGER
);
CREATE UNIQUE INDEX payment_operations_one_pending ON payment_operations (payment_id)
    WHERE status = 'pending';
CREATE INDEX payment_operations_pending_age ON payment_operations (status, created_at);
