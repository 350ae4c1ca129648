-- Which wallet brands a merchant offers (issue 15): `all` (the default: every brand we support,
-- also ones added later), or comma-separated brand codes (`paypay,aupay`), never empty.
ALTER TABLE merchants ADD COLUMN wallet_brands TEXT NOT NULL DEFAULT 'all';
