-- Themes uploaded in the console (issue 19): a merchant's logo and colours, stored here (not on
-- local disk) so every instance serves them. `name` is `u-<primary><accent><hash>`; the hash
-- covers merchant, colours and logo, so the public URLs under /themes/<name>/ never change
-- content. `logo_fp` is the feature-phone GIF made from the logo at upload.
CREATE TABLE theme_uploads (
    name TEXT PRIMARY KEY,
    merchant_id TEXT NOT NULL REFERENCES merchants (id),
    logo BYTEA NOT NULL,
    logo_type TEXT NOT NULL,
    logo_fp BYTEA NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX theme_uploads_merchant ON theme_uploads (merchant_id, created_at);
