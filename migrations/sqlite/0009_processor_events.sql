-- Inbound processor events (Stripe webhooks) already applied, per processor account: an event
-- delivered again (Stripe retries, replays) is acknowledged without being applied twice.
-- Times are unix milliseconds.
CREATE TABLE processor_events (
    account_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    payment_id TEXT,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (account_id, event_id)
);
