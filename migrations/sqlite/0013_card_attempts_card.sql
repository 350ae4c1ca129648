-- Card-testing defence keyed on the card too: a keyed hash (HMAC-SHA256 with the server
-- secret) of the card number, never the number. Empty when the card is not known to us (cards
-- typed into a processor's script, or a failure before the number was read).
ALTER TABLE card_attempts ADD COLUMN card_key TEXT NOT NULL DEFAULT '';
CREATE INDEX card_attempts_card ON card_attempts (card_key, created_at);
