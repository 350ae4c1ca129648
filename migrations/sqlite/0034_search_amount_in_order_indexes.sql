-- Console / API payment search (issue 21): a wide 決済金額 range (db/search.rs, AmountPlan::Wide)
-- is read in the list's order, newest first, on the index of the other filters, checking each
-- payment's amount. With the amount in that index the check is made on the index entry, and only
-- the page's payments are read from the table (1,000,000 payments: status + dates + 5,000–6,000
-- yen read ~2,500 table rows for 51; now 51). Same number of indexes, each entry 8 bytes wider;
-- amount never changes after a payment is created, so no update writes these entries more often.
-- IF NOT EXISTS: an operator may build them CONCURRENTLY first (docs/deployment.md).
CREATE INDEX IF NOT EXISTS payments_m_created_amount ON payments (merchant_id, created_at, id, amount);
CREATE INDEX IF NOT EXISTS payments_m_status_created_amount ON payments (merchant_id, status, created_at, id, amount);
CREATE INDEX IF NOT EXISTS payments_m_method_created_amount ON payments (merchant_id, method, created_at, id, amount);
DROP INDEX IF EXISTS payments_m_created;
DROP INDEX IF EXISTS payments_m_status_created;
DROP INDEX IF EXISTS payments_m_method_created;
