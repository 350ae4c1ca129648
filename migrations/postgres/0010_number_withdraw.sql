-- A konbini / Pay-easy number the shopper withdrew (to pay at another store or by another
-- method) is 'cancelled' and, like an abandoned carrier payment, no longer holds the
-- checkout's one live slot. A card 'cancelled' (a merchant 取消) still does.
DROP INDEX payments_one_live;
CREATE UNIQUE INDEX payments_one_live ON payments (checkout_id)
    WHERE status NOT IN ('failed', 'declined', 'timed_out')
      AND NOT (status = 'cancelled' AND method IN ('docomo', 'au', 'softbank', 'konbini', 'payeasy'));
