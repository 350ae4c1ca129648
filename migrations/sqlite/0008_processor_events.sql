-- Inbound processor webhook events (KOMOJU first) that were applied, so a redelivered or
-- duplicated event changes nothing the second time. Keyed by the account that received it and
-- the processor's own event id. Times are unix milliseconds.
CREATE TABLE processor_events (
    account_id TEXT NOT NULL REFERENCES processor_accounts (id),
    event_id TEXT NOT NULL,
    type TEXT NOT NULL,
    payment_id TEXT,
    outcome TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (account_id, event_id)
);
