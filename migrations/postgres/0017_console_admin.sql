-- Console user administration (issue 19): disabled accounts, the last sign-in, and one-time
-- enrolment links. An enrolment link sets the password and the TOTP secret together, so no
-- account ever has a password without a confirmed second factor (issue 20 finding: until the
-- first sign-in the password alone showed the TOTP secret).

-- Set while an account may not sign in; its sessions are deleted when it is set.
ALTER TABLE console_users ADD COLUMN disabled_at BIGINT;
-- Time of the last completed sign-in (both factors), shown in the user list.
ALTER TABLE console_users ADD COLUMN last_sign_in_at BIGINT;

-- An enrolment link: for a new user (user_id NULL, the user is created on use) or for an
-- existing user whose TOTP was reset (user_id set; password and TOTP are replaced on use).
-- Only the SHA-256 of the link's token is stored. Single use: used_at is set in the same
-- transaction that creates or updates the user, conditional on it being NULL and unexpired.
CREATE TABLE console_invites (
    id TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    user_id TEXT REFERENCES console_users (id),
    merchant_id TEXT REFERENCES merchants (id),
    email TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('admin', 'general', 'operator')),
    -- The TOTP secret the link enrols, sealed under the master key when one is configured.
    totp_secret TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT,
    revoked_at BIGINT,
    CHECK ((role = 'operator') = (merchant_id IS NULL))
);
CREATE INDEX console_invites_merchant ON console_invites (merchant_id, created_at);
