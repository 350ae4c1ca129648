//! Reusable payment numbers (`repeat_numbers`) and the store payments taken on them
//! (`repeat_number_payments`).

use crate::db::{Db, Tx};
use crate::domain::repeat::RepeatStatus;
use crate::domain::scope::Scope;
use crate::{exec_tx, on_db, on_tx};

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct RepeatRow {
    pub id: String,
    pub merchant_id: String,
    pub reference: String,
    pub name: String,
    pub customer_name: Option<String>,
    /// Fixed amount, or `None` when decided at the store.
    pub amount: Option<i64>,
    pub number: String,
    pub connector: String,
    pub connector_ref: String,
    #[sqlx(try_from = "String")]
    pub status: RepeatStatus,
    pub valid_until: i64,
    pub payments_count: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub retired_at: Option<i64>,
}

const COLS: &str = "id, merchant_id, reference, name, customer_name, amount, number, connector, \
connector_ref, status, valid_until, payments_count, created_at, updated_at, retired_at";

/// A number to insert (`active`).
pub struct NewRepeat<'a> {
    pub id: &'a str,
    pub merchant_id: &'a str,
    pub reference: &'a str,
    pub name: &'a str,
    pub customer_name: Option<&'a str>,
    pub amount: Option<i64>,
    pub number: &'a str,
    pub connector: &'a str,
    pub connector_ref: &'a str,
    pub valid_until: i64,
}

pub async fn insert(db: &Db, r: &NewRepeat<'_>, now: i64) -> Result<RepeatRow, sqlx::Error> {
    let sql = format!(
        "INSERT INTO repeat_numbers (id, merchant_id, reference, name, customer_name, amount, \
         number, connector, connector_ref, status, valid_until, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING {COLS}"
    );
    let mut tx = db.begin().await?;
    let row = on_tx!(&mut tx, c => sqlx::query_as(&sql)
        .bind(r.id)
        .bind(r.merchant_id)
        .bind(r.reference)
        .bind(r.name)
        .bind(r.customer_name)
        .bind(r.amount)
        .bind(r.number)
        .bind(r.connector)
        .bind(r.connector_ref)
        .bind(RepeatStatus::Active.code())
        .bind(r.valid_until)
        .bind(now)
        .bind(now)
        .fetch_one(c)
        .await)?;
    tx.commit().await?;
    Ok(row)
}

/// The merchant's number (another merchant's number looks missing).
pub async fn get(db: &Db, merchant_id: &str, id: &str) -> Result<Option<RepeatRow>, sqlx::Error> {
    let sql = format!("SELECT {COLS} FROM repeat_numbers WHERE id = $1 AND merchant_id = $2");
    on_db!(db, c => sqlx::query_as(&sql).bind(id).bind(merchant_id).fetch_optional(c).await)
}

/// The repeat number `id` if its merchant is inside `scope` (else `None`, as for an unknown id).
pub async fn get_in(db: &Db, scope: &Scope, id: &str) -> Result<Option<RepeatRow>, sqlx::Error> {
    crate::db::scope::row_in(db, "repeat_numbers", COLS, "merchant_id", scope, id).await
}

/// Any merchant's number (the CLI, which has no merchant scope).
pub async fn get_any(db: &Db, id: &str) -> Result<Option<RepeatRow>, sqlx::Error> {
    let sql = format!("SELECT {COLS} FROM repeat_numbers WHERE id = $1");
    on_db!(db, c => sqlx::query_as(&sql).bind(id).fetch_optional(c).await)
}

/// A merchant's numbers (every merchant's for `None`: operators), newest first, at most `limit`.
pub async fn list(db: &Db, scope: &Scope, limit: i64) -> Result<Vec<RepeatRow>, sqlx::Error> {
    let (kind, value) = scope.sql_parts();
    let vis = crate::db::scope::visible("merchant_id", 1);
    let sql = format!(
        "SELECT {COLS} FROM repeat_numbers WHERE {vis} \
         ORDER BY created_at DESC, id DESC LIMIT $3"
    );
    on_db!(db, c => sqlx::query_as(&sql)
        .bind(kind)
        .bind(value)
        .bind(limit)
        .fetch_all(c)
        .await)
}

/// Retires an active number. Returns false when it was retired already.
pub async fn retire(db: &Db, id: &str, now: i64) -> Result<bool, sqlx::Error> {
    let mut tx = db.begin().await?;
    let n = exec_tx!(&mut tx, c => sqlx::query(
        "UPDATE repeat_numbers SET status = $1, retired_at = $2, updated_at = $3 \
         WHERE id = $4 AND status = $5",
    )
    .bind(RepeatStatus::Retired.code())
    .bind(now)
    .bind(now)
    .bind(id)
    .bind(RepeatStatus::Active.code())
    .execute(c)
    .await)?;
    tx.commit().await?;
    Ok(n == 1)
}

/// Claims the sequence number of one more store payment, inside the payment's transaction:
/// only while the number is active and valid at `now`, so a payment racing a retirement either
/// commits before it or is refused. `None` when the number cannot take a payment.
pub async fn claim_payment(tx: &mut Tx, id: &str, now: i64) -> Result<Option<i64>, sqlx::Error> {
    on_tx!(tx, c => sqlx::query_scalar(
        "UPDATE repeat_numbers SET payments_count = payments_count + 1, updated_at = $1 \
         WHERE id = $2 AND status = $3 AND valid_until >= $4 RETURNING payments_count",
    )
    .bind(now)
    .bind(id)
    .bind(RepeatStatus::Active.code())
    .bind(now)
    .fetch_optional(c)
    .await)
}

/// Links a store payment to its number.
pub async fn link_payment(
    tx: &mut Tx,
    repeat_id: &str,
    payment_id: &str,
    seq: i64,
    now: i64,
) -> Result<(), sqlx::Error> {
    exec_tx!(tx, c => sqlx::query(
        "INSERT INTO repeat_number_payments (payment_id, repeat_number_id, seq, created_at) \
         VALUES ($1, $2, $3, $4)",
    )
    .bind(payment_id)
    .bind(repeat_id)
    .bind(seq)
    .bind(now)
    .execute(c)
    .await)?;
    Ok(())
}

/// The payment ids of a number's store payments, newest first, at most `limit`.
pub async fn payment_ids(db: &Db, repeat_id: &str, limit: i64) -> Result<Vec<String>, sqlx::Error> {
    on_db!(db, c => sqlx::query_scalar(
        "SELECT payment_id FROM repeat_number_payments WHERE repeat_number_id = $1 \
         ORDER BY seq DESC LIMIT $2",
    )
    .bind(repeat_id)
    .bind(limit)
    .fetch_all(c)
    .await)
}
