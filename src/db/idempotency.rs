//! `Idempotency-Key`s of the HTTP API (`idempotency_keys`): a claim per (merchant, key), then
//! the stored response.

use crate::db::Db;
use crate::{exec_tx, on_db};

/// Deletes the merchant's keys created before `before`, then claims `key` at `now` unless it
/// exists (`INSERT … ON CONFLICT DO NOTHING`). True when this call claimed it.
pub async fn prune_and_claim(
    db: &Db,
    merchant_id: &str,
    key: &str,
    request_hash: &str,
    before: i64,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let mut tx = db.begin().await?;
    exec_tx!(&mut tx, c => sqlx::query(
        "DELETE FROM idempotency_keys WHERE merchant_id = $1 AND created_at < $2",
    )
    .bind(merchant_id)
    .bind(before)
    .execute(c)
    .await)?;
    let inserted = exec_tx!(&mut tx, c => sqlx::query(
        "INSERT INTO idempotency_keys (merchant_id, key, request_hash, status, created_at) \
         VALUES ($1, $2, $3, 'in_progress', $4) ON CONFLICT (merchant_id, key) DO NOTHING",
    )
    .bind(merchant_id)
    .bind(key)
    .bind(request_hash)
    .bind(now)
    .execute(c)
    .await)?;
    tx.commit().await?;
    Ok(inserted == 1)
}

/// A stored key: the request it was first used with and, once done, the response.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct KeyRow {
    pub request_hash: String,
    /// Done: the response is stored (otherwise the first request is still in progress).
    #[sqlx(try_from = "String")]
    pub done: Done,
    pub response_status: Option<i64>,
    pub response_body: Option<String>,
    pub created_at: i64,
}

/// The `status` column: `in_progress` or `done`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Done(pub bool);

impl TryFrom<String> for Done {
    type Error = crate::domain::BadCode;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        match s.as_str() {
            "done" => Ok(Done(true)),
            "in_progress" => Ok(Done(false)),
            _ => Err(crate::domain::BadCode {
                kind: "idempotency key status",
                value: s,
            }),
        }
    }
}

pub async fn get(db: &Db, merchant_id: &str, key: &str) -> Result<Option<KeyRow>, sqlx::Error> {
    on_db!(db, c => sqlx::query_as(
        "SELECT request_hash, status AS done, response_status, response_body, created_at \
         FROM idempotency_keys WHERE merchant_id = $1 AND key = $2",
    )
    .bind(merchant_id)
    .bind(key)
    .fetch_optional(c)
    .await)
}

/// Takes over a stale claim (its first request presumably died): moves `created_at` from
/// `claimed_at` to `now`, only if nobody did since. True when taken.
pub async fn take_over(
    db: &Db,
    merchant_id: &str,
    key: &str,
    claimed_at: i64,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let mut tx = db.begin().await?;
    let n = exec_tx!(&mut tx, c => sqlx::query(
        "UPDATE idempotency_keys SET created_at = $1 WHERE merchant_id = $2 AND key = $3 \
         AND status = 'in_progress' AND created_at = $4",
    )
    .bind(now)
    .bind(merchant_id)
    .bind(key)
    .bind(claimed_at)
    .execute(c)
    .await)?;
    tx.commit().await?;
    Ok(n == 1)
}

/// Releases an in-progress claim so the same request can be retried with the same key.
pub async fn release(db: &Db, merchant_id: &str, key: &str) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    exec_tx!(&mut tx, c => sqlx::query(
        "DELETE FROM idempotency_keys WHERE merchant_id = $1 AND key = $2 AND status = 'in_progress'",
    )
    .bind(merchant_id)
    .bind(key)
    .execute(c)
    .await)?;
    tx.commit().await
}

/// Stores the final response of the key's request.
pub async fn store_response(
    db: &Db,
    merchant_id: &str,
    key: &str,
    status: i64,
    body: &str,
) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    exec_tx!(&mut tx, c => sqlx::query(
        "UPDATE idempotency_keys SET status = 'done', response_status = $1, response_body = $2 \
         WHERE merchant_id = $3 AND key = $4",
    )
    .bind(status)
    .bind(body)
    .bind(merchant_id)
    .bind(key)
    .execute(c)
    .await)?;
    tx.commit().await
}
