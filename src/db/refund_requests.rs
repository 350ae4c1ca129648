//! Refund requests (`refund_requests`): the rows and their guarded status changes. Each change
//! is made only from the status the caller saw, in the caller's transaction, so the payment
//! event and its notification commit with it.

use crate::db::{Db, Tx};
use crate::domain::scope::Scope;
use crate::{exec_tx, on_db, on_tx};

const COLS: &str =
    "id, merchant_id, payment_id, amount, status, account, created_by, created_at, updated_at";

/// A stored refund request; `status` is decoded by the flow (`domain::refund_request`).
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct RefundRequestRow {
    pub id: String,
    pub merchant_id: String,
    pub payment_id: String,
    pub amount: i64,
    pub status: String,
    /// The sealed (or, without a master key, clear) account JSON.
    pub account: Option<String>,
    pub created_by: String,
    pub created_at: i64,
    pub updated_at: i64,
}

pub struct NewRefundRequest<'a> {
    pub id: &'a str,
    pub merchant_id: &'a str,
    pub payment_id: &'a str,
    pub amount: i64,
    pub status: &'a str,
    pub created_by: &'a str,
}

pub async fn insert(tx: &mut Tx, r: &NewRefundRequest<'_>, now: i64) -> Result<(), sqlx::Error> {
    exec_tx!(tx, c => sqlx::query(
        "INSERT INTO refund_requests (id, merchant_id, payment_id, amount, status, created_by, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
    )
    .bind(r.id)
    .bind(r.merchant_id)
    .bind(r.payment_id)
    .bind(r.amount)
    .bind(r.status)
    .bind(r.created_by)
    .bind(now)
    .execute(c)
    .await)?;
    Ok(())
}

pub async fn get(db: &Db, id: &str) -> Result<Option<RefundRequestRow>, sqlx::Error> {
    let sql = format!("SELECT {COLS} FROM refund_requests WHERE id = $1");
    on_db!(db, c => sqlx::query_as(&sql).bind(id).fetch_optional(c).await)
}

/// The refund request `id` if its merchant is inside `scope` (else `None`, as for an unknown id).
pub async fn get_in(
    db: &Db,
    scope: &Scope,
    id: &str,
) -> Result<Option<RefundRequestRow>, sqlx::Error> {
    crate::db::scope::row_in(db, "refund_requests", COLS, "merchant_id", scope, id).await
}

/// The payment's requests, oldest first.
pub async fn of_payment(db: &Db, payment_id: &str) -> Result<Vec<RefundRequestRow>, sqlx::Error> {
    let sql =
        format!("SELECT {COLS} FROM refund_requests WHERE payment_id = $1 ORDER BY created_at, id");
    on_db!(db, c => sqlx::query_as(&sql).bind(payment_id).fetch_all(c).await)
}

/// The payment's requests in the caller's transaction (to sum what is already promised).
pub async fn of_payment_tx(
    tx: &mut Tx,
    payment_id: &str,
) -> Result<Vec<RefundRequestRow>, sqlx::Error> {
    let sql =
        format!("SELECT {COLS} FROM refund_requests WHERE payment_id = $1 ORDER BY created_at, id");
    on_tx!(tx, c => sqlx::query_as(&sql).bind(payment_id).fetch_all(c).await)
}

/// Moves the request from `from` to `to` (and sets the account when given). `false` when it
/// was no longer in `from`: nothing changed.
pub async fn set_status(
    tx: &mut Tx,
    id: &str,
    from: &str,
    to: &str,
    account: Option<&str>,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let n = exec_tx!(tx, c => sqlx::query(
        "UPDATE refund_requests SET status = $1, account = COALESCE($2, account), updated_at = $3 \
         WHERE id = $4 AND status = $5",
    )
    .bind(to)
    .bind(account)
    .bind(now)
    .bind(id)
    .bind(from)
    .execute(c)
    .await)?;
    Ok(n == 1)
}
