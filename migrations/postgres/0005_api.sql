-- Server-to-server API (API keys, idempotency) and SMS payment requests.
-- Times are unix milliseconds.

-- API keys: only the SHA-256 hex of the secret is stored; the secret is shown once.
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    merchant_id TEXT NOT NULL REFERENCES merchants (id),
    key_hash TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'retired')),
    created_at BIGINT NOT NULL
);
CREATE INDEX api_keys_merchant ON api_keys (merchant_id);

-- One row per (merchant, Idempotency-Key): claimed with INSERT ... ON CONFLICT DO NOTHING,
-- then holding the response to replay. Kept at least 24 hours.
CREATE TABLE idempotency_keys (
    merchant_id TEXT NOT NULL REFERENCES merchants (id),
    key TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('in_progress', 'done')),
    response_status BIGINT,
    response_body TEXT,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (merchant_id, key)
);
CREATE INDEX idempotency_keys_age ON idempotency_keys (merchant_id, created_at);

-- The SMS text template per merchant: placeholders {shop}, {amount}, {item}, {url}.
ALTER TABLE merchants ADD COLUMN sms_template TEXT NOT NULL DEFAULT '{shop}: {amount}円のお支払いはこちら {url}';

-- A payment request sent to a phone: the order's link fields (re-signed on every visit of the
-- short URL) and the short code.
CREATE TABLE payment_requests (
    id TEXT PRIMARY KEY,
    merchant_id TEXT NOT NULL REFERENCES merchants (id),
    checkout_id TEXT NOT NULL REFERENCES checkouts (id),
    order_id TEXT NOT NULL,
    phone TEXT NOT NULL,
    amount BIGINT NOT NULL,
    item_name TEXT NOT NULL,
    code TEXT NOT NULL UNIQUE,
    -- The signed link's fields other than merchant_id, key_id, expires_at and signature (JSON).
    link_fields TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'cancelled')),
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX payment_requests_merchant ON payment_requests (merchant_id, created_at);

-- Every SMS sent (or attempted), with its delivery state: the rate limit counts these.
CREATE TABLE sms_messages (
    id TEXT PRIMARY KEY,
    merchant_id TEXT NOT NULL REFERENCES merchants (id),
    payment_request_id TEXT REFERENCES payment_requests (id),
    phone TEXT NOT NULL,
    body TEXT NOT NULL,
    provider TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('queued', 'sent', 'failed')),
    provider_ref TEXT,
    error TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX sms_messages_merchant ON sms_messages (merchant_id, created_at);
CREATE INDEX sms_messages_request ON sms_messages (payment_request_id, created_at);
