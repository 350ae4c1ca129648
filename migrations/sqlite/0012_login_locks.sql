-- Console sign-in failures and locks per account AND client address (issue 20): a lock keyed by
-- the address alone would let one NAT'd office lock everyone out, keyed by the account alone
-- would let anyone anywhere lock a known user out. Unknown e-mails get rows too, so a lock
-- tells nothing about which accounts exist. The account is the SHA-256 of the normalised
-- e-mail: a password typed into the e-mail field is not kept in clear.
CREATE TABLE console_login_locks (
    account TEXT NOT NULL,
    ip TEXT NOT NULL,
    failures INTEGER NOT NULL DEFAULT 0,
    locked_until INTEGER,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (account, ip)
);
