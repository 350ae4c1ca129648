-- Card data waiting for a 3-D Secure challenge (issue 20 item 4), shared by every instance so
-- the one-time code may be posted to any of them. The card (number, expiry, code, holder,
-- option) is sealed with AES-256-GCM (`sealed:v1:…`, bound to the payment id); never in clear.
-- The row is deleted when it is taken for the authorization (before the authorization is sent,
-- PCI DSS 3.3.1: no security code after authorization), when the challenge fails or is
-- cancelled, and once `expires_at` passes.
CREATE TABLE pending_cards (
    payment_id TEXT PRIMARY KEY REFERENCES payments (id) ON DELETE CASCADE,
    sealed TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX pending_cards_expiry ON pending_cards (expires_at);
