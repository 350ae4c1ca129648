//! API keys (`api_keys`): only the SHA-256 hex of each secret is stored.

use crate::db::Db;
use crate::domain::ApiKeyStatus;
use crate::{exec_tx, on_db};

pub async fn insert(
    db: &Db,
    id: &str,
    merchant_id: &str,
    key_hash: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    exec_tx!(&mut tx, c => sqlx::query(
        "INSERT INTO api_keys (id, merchant_id, key_hash, status, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id)
    .bind(merchant_id)
    .bind(key_hash)
    .bind(ApiKeyStatus::Active.code())
    .bind(now)
    .execute(c)
    .await)?;
    tx.commit().await
}

/// Retires an active key; false when the merchant has no such active key.
pub async fn retire(db: &Db, merchant_id: &str, key_id: &str) -> Result<bool, sqlx::Error> {
    let mut tx = db.begin().await?;
    let n = exec_tx!(&mut tx, c => sqlx::query(
        "UPDATE api_keys SET status = $1 WHERE merchant_id = $2 AND id = $3 AND status = $4",
    )
    .bind(ApiKeyStatus::Retired.code())
    .bind(merchant_id)
    .bind(key_id)
    .bind(ApiKeyStatus::Active.code())
    .execute(c)
    .await)?;
    tx.commit().await?;
    Ok(n == 1)
}

/// The merchant id of the active key with this hash.
pub async fn active_merchant(db: &Db, key_hash: &str) -> Result<Option<String>, sqlx::Error> {
    on_db!(db, c => sqlx::query_scalar(
        "SELECT merchant_id FROM api_keys WHERE key_hash = $1 AND status = $2",
    )
    .bind(key_hash)
    .bind(ApiKeyStatus::Active.code())
    .fetch_optional(c)
    .await)
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct KeyRow {
    pub id: String,
    #[sqlx(try_from = "String")]
    pub status: ApiKeyStatus,
    pub created_at: i64,
}

/// A merchant's keys, newest first.
pub async fn list(db: &Db, merchant_id: &str) -> Result<Vec<KeyRow>, sqlx::Error> {
    on_db!(db, c => sqlx::query_as(
        "SELECT id, status, created_at FROM api_keys WHERE merchant_id = $1 ORDER BY created_at DESC, id DESC",
    )
    .bind(merchant_id)
    .fetch_all(c)
    .await)
}
