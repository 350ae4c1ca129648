-- Reusable payment numbers (リピート / スタンダードカード・ジョイントカード, issue 18 item 1): one
-- registered bill the customer pays at any konbini again and again until it is retired or its
-- validity ends. Each store payment is an ordinary konbini payment (own id, events, notifications)
-- linked here in repeat_number_payments.
CREATE TABLE repeat_numbers (
    id TEXT PRIMARY KEY,
    merchant_id TEXT NOT NULL REFERENCES merchants (id),
    -- The merchant's customer reference (会員番号 etc.); each payment's order id is
    -- "{reference}#{seq}".
    reference TEXT NOT NULL,
    -- What the bill is for, printed on the card and used as each payment's item name.
    name TEXT NOT NULL,
    customer_name TEXT,
    -- Fixed amount in yen, or NULL when the amount is decided at the store (top-ups).
    amount INTEGER CHECK (amount IS NULL OR amount > 0),
    -- The number the customer gives at the store (unique across merchants).
    number TEXT NOT NULL UNIQUE,
    connector TEXT NOT NULL,
    connector_ref TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'active',
    valid_until INTEGER NOT NULL,
    -- Store payments so far: the next payment's sequence number comes from here.
    payments_count INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    retired_at INTEGER
);
CREATE INDEX repeat_numbers_merchant_created ON repeat_numbers (merchant_id, created_at DESC, id DESC);

CREATE TABLE repeat_number_payments (
    payment_id TEXT PRIMARY KEY REFERENCES payments (id),
    repeat_number_id TEXT NOT NULL REFERENCES repeat_numbers (id),
    seq INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (repeat_number_id, seq)
);
