-- Fees, settlements (精算) and payouts (docs/settlements.md). Money is integer yen, times are
-- unix milliseconds, dates are Japan-time calendar dates (YYYY-MM-DD).

-- The operator's contract with a merchant: how often it is paid and what each payout costs.
-- A merchant without a row is not settled.
CREATE TABLE payout_terms (
    merchant_id TEXT PRIMARY KEY REFERENCES merchants (id),
    cycle TEXT NOT NULL,
    payout_delay_days BIGINT NOT NULL,
    settlement_fee BIGINT NOT NULL,
    goods_taxable BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Fees per merchant and method, tax excluded (税別): a fixed fee per collected payment and a
-- percentage in basis points (1 = 0.01 %).
CREATE TABLE fee_schedules (
    merchant_id TEXT NOT NULL REFERENCES merchants (id),
    method TEXT NOT NULL,
    fixed_fee BIGINT NOT NULL,
    rate_bp BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (merchant_id, method)
);

-- One settlement per merchant and payout period: the unique key makes the cut-off idempotent.
CREATE TABLE settlements (
    id TEXT PRIMARY KEY,
    merchant_id TEXT NOT NULL REFERENCES merchants (id),
    cycle TEXT NOT NULL,
    period_start TEXT NOT NULL,
    period_end TEXT NOT NULL,
    payout_date TEXT NOT NULL,
    payment_count BIGINT NOT NULL,
    gross BIGINT NOT NULL,
    refunds BIGINT NOT NULL,
    fees BIGINT NOT NULL,
    settlement_fee BIGINT NOT NULL,
    fee_tax BIGINT NOT NULL,
    stamp_duty BIGINT NOT NULL,
    net BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (merchant_id, period_start)
);
CREATE INDEX settlements_merchant ON settlements (merchant_id, period_start);

-- What a payment adds to or takes from a merchant's payouts, written in the transaction of the
-- payment change that causes it: `collected` (amount and fees), `refunded` (a refund, no fee
-- back), `reversed` (a collection undone: 速報取消, a captured sale cancelled; everything back).
-- Signed amounts; each entry joins one settlement at the cut-off of the period it falls in.
CREATE TABLE ledger_entries (
    id BIGSERIAL PRIMARY KEY,
    payment_id TEXT NOT NULL REFERENCES payments (id),
    merchant_id TEXT NOT NULL REFERENCES merchants (id),
    kind TEXT NOT NULL,
    amount BIGINT NOT NULL,
    fixed_fee BIGINT NOT NULL,
    rate_fee BIGINT NOT NULL,
    fee_tax BIGINT NOT NULL,
    stamp_duty BIGINT NOT NULL,
    settlement_id TEXT REFERENCES settlements (id),
    created_at BIGINT NOT NULL
);
CREATE INDEX ledger_entries_open ON ledger_entries (merchant_id, settlement_id, created_at);
CREATE INDEX ledger_entries_payment ON ledger_entries (payment_id, id);
CREATE INDEX ledger_entries_settlement ON ledger_entries (settlement_id, id);
