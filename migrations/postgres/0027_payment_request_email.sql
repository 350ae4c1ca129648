-- Payment requests by e-mail (docs/console.md, docs/api.md): a request is sent by SMS, by
-- e-mail, or both. An e-mail-only request stores '' in `phone` (as on SQLite, which cannot
-- relax the column), read by the db layer as "no phone".
ALTER TABLE payment_requests ADD COLUMN email TEXT;

-- A payment request's e-mail goes through the message outbox before any payment exists: a
-- message belongs to a payment or to a payment request.
ALTER TABLE messages ALTER COLUMN payment_id DROP NOT NULL;
ALTER TABLE messages ADD COLUMN payment_request_id TEXT REFERENCES payment_requests (id);
ALTER TABLE messages ADD CONSTRAINT messages_one_subject
    CHECK ((payment_id IS NULL) <> (payment_request_id IS NULL));
CREATE INDEX messages_request ON messages (payment_request_id, created_at);
