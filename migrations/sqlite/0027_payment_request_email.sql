-- Payment requests by e-mail (docs/console.md, docs/api.md): a request is sent by SMS, by
-- e-mail, or both. `phone` stays NOT NULL (SQLite cannot relax it without rebuilding a table
-- that sms_messages references); an e-mail-only request stores '' there, which the db layer
-- reads as "no phone".
ALTER TABLE payment_requests ADD COLUMN email TEXT;

-- A payment request's e-mail goes through the message outbox before any payment exists: a
-- message belongs to a payment or to a payment request. Nothing references `messages`, so it is
-- rebuilt with `payment_id` nullable (SQLite's documented way to change a column).
CREATE TABLE messages_new (
    id TEXT PRIMARY KEY,
    merchant_id TEXT NOT NULL REFERENCES merchants (id),
    payment_id TEXT REFERENCES payments (id),
    payment_request_id TEXT REFERENCES payment_requests (id),
    kind TEXT NOT NULL,
    channel TEXT NOT NULL,
    recipient TEXT NOT NULL,
    lang TEXT NOT NULL,
    source TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    send_at INTEGER NOT NULL,
    lease_owner TEXT,
    lease_until INTEGER,
    last_error TEXT,
    created_at INTEGER NOT NULL,
    sent_at INTEGER,
    CHECK ((payment_id IS NULL) <> (payment_request_id IS NULL))
);
INSERT INTO messages_new (id, merchant_id, payment_id, payment_request_id, kind, channel,
    recipient, lang, source, status, attempts, send_at, lease_owner, lease_until, last_error,
    created_at, sent_at)
SELECT id, merchant_id, payment_id, NULL, kind, channel, recipient, lang, source, status,
    attempts, send_at, lease_owner, lease_until, last_error, created_at, sent_at
FROM messages;
DROP TABLE messages;
ALTER TABLE messages_new RENAME TO messages;
CREATE INDEX messages_due ON messages (status, send_at);
CREATE INDEX messages_payment ON messages (payment_id, created_at);
CREATE INDEX messages_request ON messages (payment_request_id, created_at);
