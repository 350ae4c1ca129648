//! Inbound processor webhook events already applied (KOMOJU, Stripe), per processor account,
//! so a redelivered or duplicated event changes nothing the second time.

use crate::db::{Db, Tx};
use crate::{exec_tx, on_db};

/// Whether the account's event was recorded already.
pub async fn seen(db: &Db, account_id: &str, event_id: &str) -> Result<bool, sqlx::Error> {
    let row: Option<String> = on_db!(db, c => sqlx::query_scalar(
        "SELECT event_id FROM processor_events WHERE account_id = $1 AND event_id = $2",
    )
    .bind(account_id)
    .bind(event_id)
    .fetch_optional(c)
    .await)?;
    Ok(row.is_some())
}

/// Records an event as received; `false` if it was recorded before (a duplicate).
pub async fn record(
    tx: &mut Tx,
    account_id: &str,
    event_id: &str,
    kind: &str,
    now: i64,
) -> Result<bool, sqlx::Error> {
    record_with(tx, account_id, event_id, kind, None, "received", now).await
}

/// Records an event with its payment and outcome; `false` if it was recorded before.
pub async fn record_with(
    tx: &mut Tx,
    account_id: &str,
    event_id: &str,
    kind: &str,
    payment_id: Option<&str>,
    outcome: &str,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let n = exec_tx!(tx, c => sqlx::query(
        "INSERT INTO processor_events (account_id, event_id, type, payment_id, outcome, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (account_id, event_id) DO NOTHING",
    )
    .bind(account_id)
    .bind(event_id)
    .bind(kind)
    .bind(payment_id)
    .bind(outcome)
    .bind(now)
    .execute(c)
    .await)?;
    Ok(n == 1)
}

/// The payment an event was applied to and what came of it.
pub async fn set_outcome(
    tx: &mut Tx,
    account_id: &str,
    event_id: &str,
    payment_id: &str,
    outcome: &str,
) -> Result<(), sqlx::Error> {
    exec_tx!(tx, c => sqlx::query(
        "UPDATE processor_events SET payment_id = $1, outcome = $2 \
         WHERE account_id = $3 AND event_id = $4",
    )
    .bind(payment_id)
    .bind(outcome)
    .bind(account_id)
    .bind(event_id)
    .execute(c)
    .await)?;
    Ok(())
}
