//! Payment requests by SMS and/or e-mail (`payment_requests`): the order's checkout, the short
//! code and where it was sent.

use crate::db::{Db, Tx};
use crate::domain::RequestStatus;
use crate::{exec_tx, on_db};

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct RequestRow {
    pub id: String,
    pub merchant_id: String,
    pub checkout_id: String,
    pub order_id: String,
    /// Stored '' when the request went by e-mail only: read it with [`RequestRow::phone`].
    #[sqlx(rename = "phone")]
    pub stored_phone: String,
    pub email: Option<String>,
    pub amount: i64,
    pub item_name: String,
    pub code: String,
    pub link_fields: String,
    /// Stored: `open` or `cancelled` only (the rest is read from the checkout).
    #[sqlx(try_from = "String")]
    pub status: RequestStatus,
    pub expires_at: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

const COLS: &str = "id, merchant_id, checkout_id, order_id, phone, email, amount, item_name, \
code, link_fields, status, expires_at, created_at, updated_at";

impl RequestRow {
    /// The mobile number the SMS went to; `None` for an e-mail-only request.
    pub fn phone(&self) -> Option<&str> {
        Some(self.stored_phone.as_str()).filter(|p| !p.is_empty())
    }
}

/// A request to insert (`open`).
pub struct NewRequest<'a> {
    pub id: &'a str,
    pub merchant_id: &'a str,
    pub checkout_id: &'a str,
    pub order_id: &'a str,
    pub phone: Option<&'a str>,
    pub email: Option<&'a str>,
    pub amount: i64,
    pub item_name: &'a str,
    pub code: &'a str,
    /// The link's order fields as JSON.
    pub link_fields: &'a str,
    pub expires_at: i64,
}

pub async fn insert(tx: &mut Tx, r: &NewRequest<'_>, now: i64) -> Result<(), sqlx::Error> {
    exec_tx!(tx, c => sqlx::query(
        "INSERT INTO payment_requests (id, merchant_id, checkout_id, order_id, phone, email, amount, \
         item_name, code, link_fields, status, expires_at, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
    )
    .bind(r.id)
    .bind(r.merchant_id)
    .bind(r.checkout_id)
    .bind(r.order_id)
    .bind(r.phone.unwrap_or(""))
    .bind(r.email)
    .bind(r.amount)
    .bind(r.item_name)
    .bind(r.code)
    .bind(r.link_fields)
    .bind(RequestStatus::Open.code())
    .bind(r.expires_at)
    .bind(now)
    .bind(now)
    .execute(c)
    .await)?;
    Ok(())
}

/// The merchant's request (other merchants' requests look missing).
pub async fn get(db: &Db, merchant_id: &str, id: &str) -> Result<Option<RequestRow>, sqlx::Error> {
    let sql = format!("SELECT {COLS} FROM payment_requests WHERE id = $1 AND merchant_id = $2");
    on_db!(db, c => sqlx::query_as(&sql).bind(id).bind(merchant_id).fetch_optional(c).await)
}

pub async fn by_code(db: &Db, code: &str) -> Result<Option<RequestRow>, sqlx::Error> {
    let sql = format!("SELECT {COLS} FROM payment_requests WHERE code = $1");
    on_db!(db, c => sqlx::query_as(&sql).bind(code).fetch_optional(c).await)
}

/// Cancels an open request.
pub async fn cancel(tx: &mut Tx, id: &str, now: i64) -> Result<(), sqlx::Error> {
    exec_tx!(tx, c => sqlx::query(
        "UPDATE payment_requests SET status = $1, updated_at = $2 WHERE id = $3 AND status = $4",
    )
    .bind(RequestStatus::Cancelled.code())
    .bind(now)
    .bind(id)
    .bind(RequestStatus::Open.code())
    .execute(c)
    .await)?;
    Ok(())
}

/// The merchant's requests, newest first, at most `limit` (the console's list).
pub async fn list(db: &Db, merchant_id: &str, limit: i64) -> Result<Vec<RequestRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLS} FROM payment_requests WHERE merchant_id = $1 \
         ORDER BY created_at DESC, id DESC LIMIT $2"
    );
    on_db!(db, c => sqlx::query_as(&sql).bind(merchant_id).bind(limit).fetch_all(c).await)
}
