-- Messages to shoppers (docs/messages.md): payment instructions, deadline reminders, receipts,
-- refund and cancellation notices by e-mail or SMS. Rows are written in the same transaction
-- as the payment event that causes them, and a worker sends them (an outbox, like
-- notifications).

-- Per-merchant message settings; a merchant without a row gets the defaults below.
CREATE TABLE message_settings (
    merchant_id TEXT PRIMARY KEY REFERENCES merchants (id),
    -- Display name of the From address (default: the shop name).
    sender_name TEXT,
    -- Reply-To address: shoppers' replies go to the shop, never to the server's From.
    reply_to TEXT,
    -- Hours before a konbini / Pay-easy deadline to remind the shopper: 0 (off), 24 or 48.
    reminder_hours BIGINT NOT NULL DEFAULT 24,
    -- 1: e-mail a receipt when a payment completes or is captured.
    receipts BIGINT NOT NULL DEFAULT 1,
    -- 1: also send instructions and reminders by SMS when the link carries a mobile number.
    sms BIGINT NOT NULL DEFAULT 0,
    updated_at BIGINT NOT NULL
);

CREATE TABLE messages (
    id TEXT PRIMARY KEY,
    merchant_id TEXT NOT NULL REFERENCES merchants (id),
    payment_id TEXT NOT NULL REFERENCES payments (id),
    -- instructions | reminder | receipt | refund | cancellation
    kind TEXT NOT NULL,
    -- email | sms
    channel TEXT NOT NULL,
    recipient TEXT NOT NULL,
    -- ja | en: the checkout's language when the message was queued.
    lang TEXT NOT NULL,
    -- link (the signed link's address), form (given on the number page), staff (a resend)
    source TEXT NOT NULL,
    -- pending | sent | failed (permanent refusal or retries used up) | cancelled (a reminder
    -- whose payment was paid or closed first)
    status TEXT NOT NULL DEFAULT 'pending',
    attempts BIGINT NOT NULL DEFAULT 0,
    send_at BIGINT NOT NULL,
    lease_owner TEXT,
    lease_until BIGINT,
    -- The last SMTP / gateway reply that was not a success (never the message text).
    last_error TEXT,
    created_at BIGINT NOT NULL,
    sent_at BIGINT
);
CREATE INDEX messages_due ON messages (status, send_at);
CREATE INDEX messages_payment ON messages (payment_id, created_at);
