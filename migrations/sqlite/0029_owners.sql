-- Owners and tenants (テナントオプション, issue 18): an owner (a mall, a university, a head office)
-- holds several tenant merchants. Owner staff are console users bound to the owner (with the
-- usual admin / general roles) and see every tenant; owner API keys act for any tenant.
CREATE TABLE owners (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created_at INTEGER NOT NULL
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
    created_at INTEGER NOT NULL
);
CREATE INDEX owner_api_keys_owner ON owner_api_keys (owner_id);

-- A console user belongs to exactly one of: nothing (operators), a merchant, an owner.
-- SQLite cannot change a CHECK, so the table is rebuilt inside the migration's transaction
-- (sqlx 0.8 runs every SQLite migration in one, where `PRAGMA foreign_keys` cannot be turned
-- off). The rows that reference users (sessions, saved searches, enrolment links) are set aside
-- and put back around the swap, so no foreign key is ever broken, not even for a moment.
CREATE TEMP TABLE keep_sessions AS SELECT * FROM console_sessions;
CREATE TEMP TABLE keep_searches AS SELECT * FROM console_saved_searches;
CREATE TEMP TABLE keep_invites AS SELECT * FROM console_invites;
DELETE FROM console_sessions;
DELETE FROM console_saved_searches;
DELETE FROM console_invites;
CREATE TABLE console_users_new (
    id TEXT PRIMARY KEY,
    -- NULL for operators and owner staff.
    merchant_id TEXT REFERENCES merchants (id),
    -- Set for owner staff only: they see every tenant of the owner.
    owner_id TEXT REFERENCES owners (id),
    email TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL CHECK (role IN ('admin', 'general', 'operator')),
    password_hash TEXT NOT NULL,
    totp_secret TEXT NOT NULL,
    totp_enrolled_at INTEGER,
    totp_last_step INTEGER NOT NULL DEFAULT 0,
    failed_logins INTEGER NOT NULL DEFAULT 0,
    locked_until INTEGER,
    created_at INTEGER NOT NULL,
    disabled_at INTEGER,
    last_sign_in_at INTEGER,
    CHECK ((role = 'operator' AND merchant_id IS NULL AND owner_id IS NULL)
        OR (role <> 'operator' AND ((merchant_id IS NULL) <> (owner_id IS NULL))))
);
INSERT INTO console_users_new (id, merchant_id, owner_id, email, role, password_hash,
    totp_secret, totp_enrolled_at, totp_last_step, failed_logins, locked_until, created_at,
    disabled_at, last_sign_in_at)
SELECT id, merchant_id, NULL, email, role, password_hash, totp_secret, totp_enrolled_at,
    totp_last_step, failed_logins, locked_until, created_at, disabled_at, last_sign_in_at
FROM console_users;
DROP TABLE console_users;
ALTER TABLE console_users_new RENAME TO console_users;
INSERT INTO console_sessions SELECT * FROM keep_sessions;
INSERT INTO console_saved_searches SELECT * FROM keep_searches;
INSERT INTO console_invites SELECT * FROM keep_invites;
DROP TABLE keep_sessions;
DROP TABLE keep_searches;
DROP TABLE keep_invites;
