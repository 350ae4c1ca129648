-- Saved cards (card on file) at a processor that keeps cards (Stripe): the link's signed
-- customer_id names the merchant's customer; with the shopper's consent the card is saved at
-- the processor, and only the processor's ids, brand, last 4 and expiry are kept here.
-- Times are unix milliseconds.
ALTER TABLE checkouts ADD COLUMN customer_ref TEXT;

-- The processor's customer (Stripe cus_…) of a merchant's customer, per processor account.
CREATE TABLE card_customers (
    merchant_id TEXT NOT NULL REFERENCES merchants (id),
    customer_ref TEXT NOT NULL,
    account_id TEXT NOT NULL REFERENCES processor_accounts (id),
    processor_customer TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (merchant_id, customer_ref, account_id)
);

CREATE TABLE saved_cards (
    id TEXT PRIMARY KEY,
    merchant_id TEXT NOT NULL REFERENCES merchants (id),
    customer_ref TEXT NOT NULL,
    account_id TEXT NOT NULL REFERENCES processor_accounts (id),
    processor_customer TEXT NOT NULL,
    -- The processor's payment method (Stripe pm_…), never the card number.
    processor_method TEXT NOT NULL,
    brand TEXT NOT NULL,
    last4 TEXT NOT NULL,
    exp_month BIGINT NOT NULL,
    exp_year BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (account_id, processor_method)
);
CREATE INDEX saved_cards_customer ON saved_cards (merchant_id, customer_ref);
