-- Konbini / Pay-easy sandbox: optional per-merchant auto-pay delay for demos (test mode only).
-- NULL = off; N = the expiry sweep marks awaiting konbini/Pay-easy payments older than N seconds
-- as paid (速報).
ALTER TABLE merchants ADD COLUMN sandbox_autopay_seconds INTEGER;
