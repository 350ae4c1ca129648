-- Bank transfer (銀行振込) is a number-family method: a withdrawn ('cancelled') transfer
-- account releases the checkout like a withdrawn konbini / Pay-easy number. A number is now
-- written as 'issuing' before the institution is called; one whose issue failed
-- ('issue_failed') releases the checkout too.
DROP INDEX payments_one_live;
CREATE UNIQUE INDEX payments_one_live ON payments (checkout_id)
    WHERE status NOT IN ('failed', 'declined', 'timed_out', 'issue_failed')
      AND NOT (status = 'cancelled' AND method IN ('docomo', 'au', 'softbank', 'konbini', 'payeasy', 'bank_transfer'));
