//! Failed card attempts (card-testing defence): counted per checkout, per client address and
//! per card (a keyed hash of its number, never the number).

use crate::db::Db;
use crate::{exec_tx, on_db};

/// What one attempt is counted under.
#[derive(Clone, Copy, Debug)]
pub struct AttemptKey<'a> {
    pub checkout_id: &'a str,
    pub client_ip: &'a str,
    /// Keyed hash of the card number; `None` when the card is not known here.
    pub card_key: Option<&'a str>,
}

/// Failure counts for one attempt's keys.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Failures {
    /// On the checkout, ever.
    pub checkout: i64,
    /// From the client address since `since_ms`.
    pub address: i64,
    /// With the card since `since_ms` (0 when the card is not known).
    pub card: i64,
}

/// The failure counts for `key`.
pub async fn failures(
    db: &Db,
    key: &AttemptKey<'_>,
    since_ms: i64,
) -> Result<Failures, sqlx::Error> {
    let card = key.card_key.unwrap_or("");
    let (checkout, address, card): (i64, i64, i64) = on_db!(db, c => sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM card_attempts WHERE checkout_id = $1 AND outcome = 'failed'), \
                (SELECT COUNT(*) FROM card_attempts WHERE client_ip = $2 AND outcome = 'failed' AND created_at > $3), \
                (SELECT COUNT(*) FROM card_attempts WHERE card_key = $4 AND card_key <> '' AND outcome = 'failed' AND created_at > $3)",
    )
    .bind(key.checkout_id)
    .bind(key.client_ip)
    .bind(since_ms)
    .bind(card)
    .fetch_one(c)
    .await)?;
    Ok(Failures {
        checkout,
        address,
        card,
    })
}

/// Records one failed attempt.
pub async fn record_failure(db: &Db, key: &AttemptKey<'_>, now: i64) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    exec_tx!(&mut tx, c => sqlx::query(
        "INSERT INTO card_attempts (checkout_id, client_ip, card_key, outcome, created_at) \
         VALUES ($1, $2, $3, 'failed', $4)",
    )
    .bind(key.checkout_id)
    .bind(key.client_ip)
    .bind(key.card_key.unwrap_or(""))
    .bind(now)
    .execute(c)
    .await)?;
    tx.commit().await
}
