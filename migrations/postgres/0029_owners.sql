-- Owners and tenants (テナントオプション, issue 18): an owner (a mall, a university, a head office)
-- holds several tenant merchants. Owner staff are console users bound to the owner (with the
-- usual admin / general roles) and see every tenant; owner API keys act for any tenant.
CREATE TABLE owners (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- NULL: an independent merchant (no owner).
ALTER TABLE merchants ADD COLUMN owner_id TEXT REFERENCES owners (id);
CREATE INDEX merchants_owner ON merchants (owner_id, id);

-- Owner-level API keys: only the SHA-256 hex of each secret is stored, as for api_keys.
CREATE TABLE owner_api_keys (
    id TEXT PRIMARY KEY,
    owner_id TEXT NOT NULL REFERENCES owners (id),
    key_hash TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'retired')),
    created_at BIGINT NOT NULL
);
CREATE INDEX owner_api_keys_owner ON owner_api_keys (owner_id);

-- A console user belongs to exactly one of: nothing (operators), a merchant, an owner.
-- Set for owner staff only: they see every tenant of the owner.
ALTER TABLE console_users ADD COLUMN owner_id TEXT REFERENCES owners (id);
ALTER TABLE console_users DROP CONSTRAINT console_users_check;
ALTER TABLE console_users ADD CONSTRAINT console_users_home CHECK (
    (role = 'operator' AND merchant_id IS NULL AND owner_id IS NULL)
    OR (role <> 'operator' AND ((merchant_id IS NULL) <> (owner_id IS NULL))));
