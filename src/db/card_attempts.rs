//! Failed card attempts (card-testing defence): counted per checkout and per client address.

use crate::db::Db;
use crate::{exec_tx, on_db};

/// Failed attempts on the checkout (ever) and from the address since `since_ms`.
pub async fn failures(
    db: &Db,
    checkout_id: &str,
    ip: &str,
    since_ms: i64,
) -> Result<(i64, i64), sqlx::Error> {
    on_db!(db, c => sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM card_attempts WHERE checkout_id = $1 AND outcome = 'failed'), \
                (SELECT COUNT(*) FROM card_attempts WHERE client_ip = $2 AND outcome = 'failed' AND created_at > $3)",
    )
    .bind(checkout_id)
    .bind(ip)
    .bind(since_ms)
    .fetch_one(c)
    .await)
}

/// Records one failed attempt.
pub async fn record_failure(
    db: &Db,
    checkout_id: &str,
    ip: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    exec_tx!(&mut tx, c => sqlx::query(
        "INSERT INTO card_attempts (checkout_id, client_ip, outcome, created_at) VALUES ($1, $2, 'failed', $3)",
    )
    .bind(checkout_id)
    .bind(ip)
    .bind(now)
    .execute(c)
    .await)?;
    tx.commit().await
}
