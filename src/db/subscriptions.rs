//! Continuous-billing agreements (継続課金): the subscriptions table.

use crate::db::payments::PaymentRow;
use crate::db::{Db, Tx};
use crate::domain::carrier::{charge_ms, Carrier, SubscriptionStatus};
use crate::domain::scope::Scope;
use crate::util::random_id;
use crate::{exec_tx, on_db};

/// Records a continuous-billing agreement made with the payment `p`; returns its id.
pub async fn insert(
    tx: &mut Tx,
    p: &PaymentRow,
    c: Carrier,
    sub_ref: &str,
    now: i64,
) -> Result<String, sqlx::Error> {
    let id = random_id("sub", 16);
    exec_tx!(tx, conn => sqlx::query(
        "INSERT INTO subscriptions (id, merchant_id, payment_id, carrier, amount, status, \
         first_charge_at, charges, next_charge_at, subscription_ref, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, 1, $8, $9, $10, $11)",
    )
    .bind(&id)
    .bind(&p.merchant_id)
    .bind(&p.id)
    .bind(c.code())
    .bind(p.amount)
    .bind(SubscriptionStatus::Active.code())
    .bind(now)
    .bind(charge_ms(now, 1))
    .bind(sub_ref)
    .bind(now)
    .bind(now)
    .execute(conn)
    .await)?;
    Ok(id)
}

#[derive(Clone, Debug, sqlx::FromRow, serde::Serialize)]
pub struct SubscriptionRow {
    pub id: String,
    pub merchant_id: String,
    pub payment_id: String,
    pub carrier: String,
    pub amount: i64,
    pub status: String,
    pub first_charge_at: i64,
    pub charges: i64,
    pub next_charge_at: i64,
    pub subscription_ref: String,
}

const SUB_COLS: &str = "id, merchant_id, payment_id, carrier, amount, status, first_charge_at, \
charges, next_charge_at, subscription_ref";

pub async fn get(db: &Db, id: &str) -> Result<Option<SubscriptionRow>, sqlx::Error> {
    let sql = format!("SELECT {SUB_COLS} FROM subscriptions WHERE id = $1");
    on_db!(db, c => sqlx::query_as(&sql).bind(id).fetch_optional(c).await)
}

/// The agreement `id` if its merchant is inside `scope` (else `None`, as for an unknown id).
pub async fn get_in(
    db: &Db,
    scope: &Scope,
    id: &str,
) -> Result<Option<SubscriptionRow>, sqlx::Error> {
    crate::db::scope::row_in(db, "subscriptions", SUB_COLS, "merchant_id", scope, id).await
}

/// Active agreements whose next charge is due at `now_ms` (oldest first, at most 200).
pub async fn due(db: &Db, now_ms: i64) -> Result<Vec<SubscriptionRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {SUB_COLS} FROM subscriptions WHERE status = $1 AND next_charge_at <= $2 \
         ORDER BY next_charge_at LIMIT 200"
    );
    on_db!(db, c => sqlx::query_as(&sql)
        .bind(SubscriptionStatus::Active.code())
        .bind(now_ms)
        .fetch_all(c)
        .await)
}

/// Claims the next monthly charge: counts it and moves the due date, only if nobody else has
/// (the agreement is still active with `charges` charges). `false` when another claimed it.
pub async fn claim_charge(
    tx: &mut Tx,
    id: &str,
    charges: i64,
    next_charge_at: i64,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let n = exec_tx!(tx, x => sqlx::query(
        "UPDATE subscriptions SET charges = $1, next_charge_at = $2, updated_at = $3 \
         WHERE id = $4 AND status = 'active' AND charges = $5",
    )
    .bind(charges + 1)
    .bind(next_charge_at)
    .bind(now)
    .bind(id)
    .bind(charges)
    .execute(x)
    .await)?;
    Ok(n == 1)
}

/// Marks an active agreement cancelled; `false` when it was not active.
pub async fn cancel(tx: &mut Tx, id: &str, now: i64) -> Result<bool, sqlx::Error> {
    let n = exec_tx!(tx, x => sqlx::query(
        "UPDATE subscriptions SET status = $1, updated_at = $2 WHERE id = $3 AND status = $4",
    )
    .bind(SubscriptionStatus::Cancelled.code())
    .bind(now)
    .bind(id)
    .bind(SubscriptionStatus::Active.code())
    .execute(x)
    .await)?;
    Ok(n == 1)
}

/// Agreements of one merchant (or of all, for operators), newest first, at most `limit`.
pub async fn list(db: &Db, scope: &Scope, limit: i64) -> Result<Vec<SubscriptionRow>, sqlx::Error> {
    let (kind, value) = scope.sql_parts();
    let vis = crate::db::scope::visible("merchant_id", 1);
    let sql = format!(
        "SELECT {SUB_COLS} FROM subscriptions WHERE {vis} \
         ORDER BY first_charge_at DESC, id LIMIT $3"
    );
    on_db!(db, c => sqlx::query_as(&sql)
        .bind(kind)
        .bind(value)
        .bind(limit)
        .fetch_all(c)
        .await)
}
