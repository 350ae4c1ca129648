-- How many processor accounts a merchant has ever had (retired ones still serve their
-- payments): a merchant with none needs no account lookup on each shopper request.
ALTER TABLE merchants ADD COLUMN processor_accounts BIGINT NOT NULL DEFAULT 0;
UPDATE merchants SET processor_accounts =
    (SELECT COUNT(*) FROM processor_accounts a WHERE a.merchant_id = merchants.id);
