//! Sealed card data waiting for a 3-D Secure challenge (`pending_cards`), one row per payment,
//! so any instance can finish the challenge. This module only stores the sealed text; sealing
//! and opening are the card flow's (`flows::card_hold`).

use crate::db::{Db, Tx};
use crate::{exec_tx, on_db, on_tx};

/// Stores (or replaces) the sealed card of a payment until `expires_at`, in the caller's
/// transaction (the one that moves the payment into the challenge).
pub async fn put(
    tx: &mut Tx,
    payment_id: &str,
    sealed: &str,
    expires_at: i64,
    now: i64,
) -> Result<(), sqlx::Error> {
    exec_tx!(tx, c => sqlx::query(
        "INSERT INTO pending_cards (payment_id, sealed, expires_at, created_at) \
         VALUES ($1, $2, $3, $4) \
         ON CONFLICT (payment_id) DO UPDATE SET sealed = excluded.sealed, \
           expires_at = excluded.expires_at, created_at = excluded.created_at",
    )
    .bind(payment_id)
    .bind(sealed)
    .bind(expires_at)
    .bind(now)
    .execute(c)
    .await)?;
    Ok(())
}

/// True if the payment's card is held and not expired at `now`.
pub async fn held(db: &Db, payment_id: &str, now: i64) -> Result<bool, sqlx::Error> {
    let n: i64 = on_db!(db, c => sqlx::query_scalar(
        "SELECT COUNT(*) FROM pending_cards WHERE payment_id = $1 AND expires_at > $2",
    )
    .bind(payment_id)
    .bind(now)
    .fetch_one(c)
    .await)?;
    Ok(n > 0)
}

/// Deletes the payment's row and returns its sealed card if it had not expired at `now`. One
/// statement: of two instances taking the same card at once, only one gets it.
pub async fn take(db: &Db, payment_id: &str, now: i64) -> Result<Option<String>, sqlx::Error> {
    let mut tx = db.begin().await?;
    let row: Option<(String, i64)> = on_tx!(&mut tx, c => sqlx::query_as(
        "DELETE FROM pending_cards WHERE payment_id = $1 RETURNING sealed, expires_at",
    )
    .bind(payment_id)
    .fetch_optional(c)
    .await)?;
    tx.commit().await?;
    Ok(row.filter(|(_, exp)| *exp > now).map(|(s, _)| s))
}

/// Deletes the payment's row, if any (the challenge failed or was cancelled), in the caller's
/// transaction so it goes with the payment's change.
pub async fn delete(tx: &mut Tx, payment_id: &str) -> Result<u64, sqlx::Error> {
    exec_tx!(tx, c => sqlx::query("DELETE FROM pending_cards WHERE payment_id = $1")
        .bind(payment_id)
        .execute(c)
        .await)
}

/// Deletes every row expired at `now`; returns how many.
pub async fn purge_expired(db: &Db, now: i64) -> Result<u64, sqlx::Error> {
    let mut tx = db.begin().await?;
    let n = exec_tx!(&mut tx, c => sqlx::query("DELETE FROM pending_cards WHERE expires_at <= $1")
        .bind(now)
        .execute(c)
        .await)?;
    tx.commit().await?;
    Ok(n)
}
