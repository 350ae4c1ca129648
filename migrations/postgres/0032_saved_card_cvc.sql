-- Saved cards (issue 14, item 6): whether a shopper paying with a saved card re-enters its
-- security code (CVC) in the processor's field. On by default: the safer choice, since a
-- saved card is otherwise paid by anyone holding the checkout link of that customer.
ALTER TABLE merchants ADD COLUMN saved_card_cvc BIGINT NOT NULL DEFAULT 1;
