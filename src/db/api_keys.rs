//! API keys (`api_keys`): only the SHA-256 hex of each secret is stored.

use crate::db::Db;
use crate::domain::ApiKeyStatus;
use crate::{args, on_db};

pub async fn insert(
    db: &Db,
    id: &str,
    merchant_id: &str,
    key_hash: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    db.write_exec(
        "INSERT INTO api_keys (id, merchant_id, key_hash, status, created_at) VALUES ($1, $2, $3, $4, $5)",
        args![id, merchant_id, key_hash, ApiKeyStatus::Active.code(), now],
    )
    .await
    .map(|_| ())
}

/// Retires an active key; false when the merchant has no such active key.
pub async fn retire(db: &Db, merchant_id: &str, key_id: &str) -> Result<bool, sqlx::Error> {
    let n = db
        .write_exec(
            "UPDATE api_keys SET status = $1 WHERE merchant_id = $2 AND id = $3 AND status = $4",
            args![
                ApiKeyStatus::Retired.code(),
                merchant_id,
                key_id,
                ApiKeyStatus::Active.code()
            ],
        )
        .await?;
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
