//! SMS messages (`sms_messages`): each send is recorded `queued`, then `sent` or `failed`.

use crate::db::{Db, Tx};
use crate::domain::SmsStatus;
use crate::{exec_tx, on_db, on_tx};

/// One recorded SMS.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct SmsRow {
    pub id: String,
    pub merchant_id: String,
    pub payment_request_id: Option<String>,
    pub phone: String,
    pub body: String,
    pub provider: String,
    #[sqlx(try_from = "String")]
    pub status: SmsStatus,
    pub provider_ref: Option<String>,
    pub error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

const COLS: &str = "id, merchant_id, payment_request_id, phone, body, provider, status, \
provider_ref, error, created_at, updated_at";

/// How many messages the merchant sent after `since`, and when the oldest of them was.
pub async fn sent_since(
    db: &Db,
    merchant_id: &str,
    since: i64,
) -> Result<(i64, Option<i64>), sqlx::Error> {
    on_db!(db, c => sqlx::query_as(
        "SELECT COUNT(*), MIN(created_at) FROM sms_messages WHERE merchant_id = $1 AND created_at > $2",
    )
    .bind(merchant_id)
    .bind(since)
    .fetch_one(c)
    .await)
}

/// [`sent_since`] inside a transaction. On PostgreSQL the merchant row is locked first, so
/// concurrent senders (on any instance) count one after another; SQLite has one writer anyway.
pub async fn lock_and_count_since(
    tx: &mut Tx,
    merchant_id: &str,
    since: i64,
) -> Result<(i64, Option<i64>), sqlx::Error> {
    if matches!(tx, Tx::Postgres(_)) {
        exec_tx!(tx, c => sqlx::query("SELECT id FROM merchants WHERE id = $1 FOR UPDATE")
            .bind(merchant_id)
            .execute(c)
            .await)?;
    }
    on_tx!(tx, c => sqlx::query_as(
        "SELECT COUNT(*), MIN(created_at) FROM sms_messages WHERE merchant_id = $1 AND created_at > $2",
    )
    .bind(merchant_id)
    .bind(since)
    .fetch_one(c)
    .await)
}

/// A message to record as `queued`.
pub struct NewMessage<'a> {
    pub id: &'a str,
    pub merchant_id: &'a str,
    pub request_id: Option<&'a str>,
    pub phone: &'a str,
    pub body: &'a str,
    pub provider: &'a str,
}

pub async fn insert_queued(tx: &mut Tx, m: &NewMessage<'_>, now: i64) -> Result<(), sqlx::Error> {
    exec_tx!(tx, c => sqlx::query(
        "INSERT INTO sms_messages (id, merchant_id, payment_request_id, phone, body, provider, status, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(m.id)
    .bind(m.merchant_id)
    .bind(m.request_id)
    .bind(m.phone)
    .bind(m.body)
    .bind(m.provider)
    .bind(SmsStatus::Queued.code())
    .bind(now)
    .bind(now)
    .execute(c)
    .await)?;
    Ok(())
}

/// Records the provider's answer.
pub async fn set_outcome(
    db: &Db,
    id: &str,
    status: SmsStatus,
    provider_ref: Option<&str>,
    error: Option<&str>,
    now: i64,
) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    exec_tx!(&mut tx, c => sqlx::query(
        "UPDATE sms_messages SET status = $1, provider_ref = $2, error = $3, updated_at = $4 WHERE id = $5",
    )
    .bind(status.code())
    .bind(provider_ref)
    .bind(error)
    .bind(now)
    .bind(id)
    .execute(c)
    .await)?;
    tx.commit().await
}

pub async fn get(db: &Db, id: &str) -> Result<Option<SmsRow>, sqlx::Error> {
    let sql = format!("SELECT {COLS} FROM sms_messages WHERE id = $1");
    on_db!(db, c => sqlx::query_as(&sql).bind(id).fetch_optional(c).await)
}

/// A merchant's messages, newest first (at most `limit`).
pub async fn list(db: &Db, merchant_id: &str, limit: i64) -> Result<Vec<SmsRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLS} FROM sms_messages WHERE merchant_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2"
    );
    on_db!(db, c => sqlx::query_as(&sql).bind(merchant_id).bind(limit).fetch_all(c).await)
}

/// The messages of one payment request, oldest first.
pub async fn of_request(db: &Db, request_id: &str) -> Result<Vec<SmsRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLS} FROM sms_messages WHERE payment_request_id = $1 ORDER BY created_at, id"
    );
    on_db!(db, c => sqlx::query_as(&sql).bind(request_id).fetch_all(c).await)
}
