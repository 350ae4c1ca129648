-- Carrier billing and bank net: the merchant's continuous-billing switch, subscriptions
-- (継続課金), and lookups the redirect flows need.

-- 継続課金 is off until the merchant enables it (CLI: merchant set --carrier-continuous true).
ALTER TABLE merchants ADD COLUMN carrier_continuous INTEGER NOT NULL DEFAULT 0;

-- A shopper who backs out on the carrier page (status 'cancelled') may pay again with another
-- method, so such a payment no longer holds the checkout's one live slot. Card 'cancelled'
-- (a merchant 取消) still does.
DROP INDEX payments_one_live;
CREATE UNIQUE INDEX payments_one_live ON payments (checkout_id)
    WHERE status NOT IN ('failed', 'declined', 'timed_out')
      AND NOT (status = 'cancelled' AND method IN ('docomo', 'au', 'softbank'));

-- The sandbox bank/carrier pages find their payment by the connector session id.
CREATE INDEX payments_connector_ref ON payments (connector_ref);

CREATE TABLE subscriptions (
    id TEXT PRIMARY KEY,
    merchant_id TEXT NOT NULL REFERENCES merchants (id),
    -- The first (agreement) payment; monthly charges are payments of their own.
    payment_id TEXT NOT NULL REFERENCES payments (id),
    carrier TEXT NOT NULL,
    amount INTEGER NOT NULL CHECK (amount > 0),
    status TEXT NOT NULL DEFAULT 'active',
    -- Monthly dates are computed from the first charge (charge_ms(first_charge_at, n)) so a
    -- 31st-of-month agreement returns to the 31st after a short month.
    first_charge_at INTEGER NOT NULL,
    charges INTEGER NOT NULL DEFAULT 1,
    next_charge_at INTEGER NOT NULL,
    subscription_ref TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX subscriptions_due ON subscriptions (status, next_charge_at);
CREATE INDEX subscriptions_merchant ON subscriptions (merchant_id, created_at);
