-- Console payments operations (issue 19).

-- Saved payment searches of the console (issue 19): per user, named, the list's query string
-- (filters and sort, never a cursor). A user sees and deletes only their own.
CREATE TABLE console_saved_searches (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES console_users (id),
    name TEXT NOT NULL,
    query TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (user_id, name)
);

-- Refund requests (返金依頼) for konbini / Pay-easy / online-banking payments: the shop pays the
-- refund into the shopper's bank account, which the shopper gives on a signed page. `account`
-- is the account as JSON, sealed with the master key when one is set (it is read back by staff).
CREATE TABLE refund_requests (
    id TEXT PRIMARY KEY,
    merchant_id TEXT NOT NULL REFERENCES merchants (id),
    payment_id TEXT NOT NULL REFERENCES payments (id),
    amount BIGINT NOT NULL,
    status TEXT NOT NULL,
    account TEXT,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX refund_requests_payment ON refund_requests (payment_id, created_at);
