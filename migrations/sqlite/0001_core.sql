-- Core schema: merchants, signing keys, checkouts, payments, their event log and the outbox.
-- Money is integer yen (INTEGER = 64-bit), times are unix milliseconds.

CREATE TABLE server_settings (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE merchants (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    mode TEXT NOT NULL CHECK (mode IN ('test', 'live')),
    status TEXT NOT NULL DEFAULT 'active',
    methods TEXT NOT NULL,
    konbini_chains TEXT NOT NULL,
    return_origins TEXT NOT NULL,
    callback_url TEXT,
    -- Standard Webhooks secrets, newest first, space-separated (two during rotation).
    webhook_secrets TEXT NOT NULL DEFAULT '',
    -- 'standard' (signed JSON) or 'compat' (form post with a SHA-256 hash field).
    notify_format TEXT NOT NULL DEFAULT 'standard',
    -- 'active', or 'disabled' after the endpoint answered 410 Gone.
    callback_status TEXT NOT NULL DEFAULT 'active',
    theme TEXT NOT NULL,
    konbini_days INTEGER NOT NULL DEFAULT 7,
    capture_mode TEXT NOT NULL DEFAULT 'auto',
    card_options TEXT NOT NULL DEFAULT 'lump',
    created_at INTEGER NOT NULL
);

CREATE TABLE signing_keys (
    id TEXT PRIMARY KEY,
    merchant_id TEXT NOT NULL REFERENCES merchants (id),
    secret TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'active',
    created_at INTEGER NOT NULL
);
CREATE INDEX signing_keys_merchant ON signing_keys (merchant_id);

CREATE TABLE checkouts (
    id TEXT PRIMARY KEY,
    merchant_id TEXT NOT NULL REFERENCES merchants (id),
    order_id TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    amount INTEGER NOT NULL CHECK (amount > 0),
    item_name TEXT NOT NULL,
    shopper_name TEXT,
    shopper_kana TEXT,
    shopper_email TEXT,
    shopper_phone TEXT,
    methods TEXT NOT NULL,
    return_url TEXT NOT NULL,
    cancel_url TEXT,
    konbini_days INTEGER,
    lang TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'open',
    selected_method TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (merchant_id, order_id)
);

CREATE TABLE payments (
    id TEXT PRIMARY KEY,
    merchant_id TEXT NOT NULL REFERENCES merchants (id),
    checkout_id TEXT NOT NULL REFERENCES checkouts (id),
    order_id TEXT NOT NULL,
    method TEXT NOT NULL,
    institution TEXT,
    status TEXT NOT NULL,
    amount INTEGER NOT NULL,
    captured_amount INTEGER NOT NULL DEFAULT 0,
    refunded_amount INTEGER NOT NULL DEFAULT 0,
    fee INTEGER NOT NULL DEFAULT 0,
    deadline_at INTEGER,
    paid_at INTEGER,
    connector_ref TEXT,
    details TEXT NOT NULL DEFAULT '{}',
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
-- At most one live payment per checkout: the guard against double submission.
CREATE UNIQUE INDEX payments_one_live ON payments (checkout_id) WHERE status NOT IN ('failed', 'declined', 'timed_out');
CREATE INDEX payments_merchant_created ON payments (merchant_id, created_at DESC, id DESC);
CREATE INDEX payments_status_deadline ON payments (status, deadline_at);

-- Append-only: every state change of a payment is one row, written with the change.
CREATE TABLE payment_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    payment_id TEXT NOT NULL REFERENCES payments (id),
    type TEXT NOT NULL,
    from_status TEXT,
    to_status TEXT NOT NULL,
    amount INTEGER,
    data TEXT NOT NULL DEFAULT '{}',
    actor TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX payment_events_payment ON payment_events (payment_id, id);

-- Merchant notifications, written in the same transaction as the change they report.
CREATE TABLE outbox (
    id TEXT PRIMARY KEY,
    merchant_id TEXT NOT NULL REFERENCES merchants (id),
    payment_id TEXT,
    seq INTEGER NOT NULL,
    type TEXT NOT NULL,
    body TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    lease_owner TEXT,
    lease_until INTEGER,
    created_at INTEGER NOT NULL,
    delivered_at INTEGER
);
CREATE INDEX outbox_due ON outbox (status, next_attempt_at);
CREATE INDEX outbox_payment ON outbox (payment_id, seq);

CREATE TABLE delivery_attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL REFERENCES outbox (id),
    attempted_at INTEGER NOT NULL,
    status_code INTEGER,
    latency_ms INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    response_snippet TEXT NOT NULL DEFAULT ''
);
CREATE INDEX delivery_attempts_event ON delivery_attempts (event_id, id);

-- Card attempts per checkout and client address: the card-testing (クレジットマスター) defence.
CREATE TABLE card_attempts (
    checkout_id TEXT NOT NULL,
    client_ip TEXT NOT NULL,
    outcome TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX card_attempts_checkout ON card_attempts (checkout_id, outcome);
CREATE INDEX card_attempts_ip ON card_attempts (client_ip, created_at);
