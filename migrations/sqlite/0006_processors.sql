-- Live mode: processor accounts (which processor backs which of a merchant's methods, with
-- credentials sealed under the master key) and the connector that served each payment.
-- Times are unix milliseconds.

CREATE TABLE processor_accounts (
    id TEXT PRIMARY KEY,
    merchant_id TEXT NOT NULL REFERENCES merchants (id),
    processor TEXT NOT NULL CHECK (processor IN ('stripe', 'komoju')),
    -- Live accounts back live merchants; test accounts (processor test keys) back test mode.
    mode TEXT NOT NULL CHECK (mode IN ('test', 'live')),
    -- Comma-separated method codes this account serves for the merchant.
    methods TEXT NOT NULL,
    -- 'sealed:v1:<key id>:...' (AES-256-GCM under the master key); never stored in clear.
    credentials TEXT NOT NULL,
    webhook_secret TEXT,
    -- What staff see instead of the credentials: the secret key's last four characters.
    fingerprint TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'retired')),
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX processor_accounts_merchant ON processor_accounts (merchant_id, status);

-- 'sandbox' or a processor account id. Existing payments all went through the sandbox.
ALTER TABLE payments ADD COLUMN connector TEXT NOT NULL DEFAULT 'sandbox';
