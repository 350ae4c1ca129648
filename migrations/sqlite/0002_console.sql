-- Merchant console (管理画面): staff accounts, server-side sessions, audit log, and the indexes
-- behind keyset pagination of the payments list (one per sortable column, merchant first).

CREATE TABLE console_users (
    id TEXT PRIMARY KEY,
    -- NULL for operators, who see every merchant.
    merchant_id TEXT REFERENCES merchants (id),
    email TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL CHECK (role IN ('admin', 'general', 'operator')),
    password_hash TEXT NOT NULL,
    totp_secret TEXT NOT NULL,
    -- Set by the first accepted code: until then login shows the enrolment QR code.
    totp_enrolled_at INTEGER,
    -- Last accepted TOTP time step: a code is accepted once (no replay within its window).
    totp_last_step INTEGER NOT NULL DEFAULT 0,
    failed_logins INTEGER NOT NULL DEFAULT 0,
    locked_until INTEGER,
    created_at INTEGER NOT NULL,
    CHECK ((role = 'operator') = (merchant_id IS NULL))
);

-- The cookie holds a random id; only its SHA-256 is stored, so a database leak gives no sessions.
CREATE TABLE console_sessions (
    id_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES console_users (id),
    -- 'totp' after the password step, 'full' after the second factor.
    stage TEXT NOT NULL CHECK (stage IN ('totp', 'full')),
    created_at INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    ip TEXT NOT NULL DEFAULT ''
);
CREATE INDEX console_sessions_user ON console_sessions (user_id);

CREATE TABLE console_audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    user_id TEXT,
    email TEXT NOT NULL,
    merchant_id TEXT,
    action TEXT NOT NULL,
    target TEXT NOT NULL DEFAULT '',
    detail TEXT NOT NULL DEFAULT '',
    ip TEXT NOT NULL DEFAULT ''
);
CREATE INDEX console_audit_merchant ON console_audit (merchant_id, id);

-- Keyset pagination: (merchant, sort key, id) for each sortable column. Nullable keys are
-- sorted through COALESCE so NULLs have a place in the order; queries use the same expression.
CREATE INDEX payments_m_order ON payments (merchant_id, order_id, id);
CREATE INDEX payments_m_id ON payments (merchant_id, id);
CREATE INDEX payments_m_method ON payments (merchant_id, method, id);
CREATE INDEX payments_m_inst ON payments (merchant_id, COALESCE(institution, ''), id);
CREATE INDEX payments_m_status ON payments (merchant_id, status, id);
CREATE INDEX payments_m_created ON payments (merchant_id, created_at, id);
CREATE INDEX payments_m_deadline ON payments (merchant_id, COALESCE(deadline_at, 0), id);
CREATE INDEX payments_m_paid ON payments (merchant_id, COALESCE(paid_at, 0), id);
CREATE INDEX payments_m_amount ON payments (merchant_id, amount, id);
-- Common filters ordered by the default sort.
CREATE INDEX payments_m_status_created ON payments (merchant_id, status, created_at, id);
CREATE INDEX payments_m_method_created ON payments (merchant_id, method, created_at, id);
-- Operators list every merchant's payments.
CREATE INDEX payments_created_id ON payments (created_at, id);
