//! Owners (テナントオプション): the `owners` table, tenants (`merchants.owner_id`) and owner API
//! keys (`owner_api_keys`, only the SHA-256 hex of each secret stored).

use crate::db::merchants::MerchantRow;
use crate::db::{scope, Db};
use crate::domain::scope::Scope;
use crate::domain::ApiKeyStatus;
use crate::{args, exec_tx, on_db};

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct OwnerRow {
    pub id: String,
    pub name: String,
    pub created_at: i64,
    /// How many merchants it holds.
    pub tenants: i64,
}

const COLS: &str = "o.id, o.name, o.created_at, \
(SELECT COUNT(*) FROM merchants t WHERE t.owner_id = o.id) AS tenants";

pub async fn insert(db: &Db, id: &str, name: &str, now: i64) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    exec_tx!(&mut tx, c => sqlx::query(
        "INSERT INTO owners (id, name, created_at) VALUES ($1, $2, $3)",
    )
    .bind(id)
    .bind(name)
    .bind(now)
    .execute(c)
    .await)?;
    tx.commit().await
}

pub async fn get(db: &Db, id: &str) -> Result<Option<OwnerRow>, sqlx::Error> {
    let sql = format!("SELECT {COLS} FROM owners o WHERE o.id = $1");
    on_db!(db, c => sqlx::query_as(&sql).bind(id).fetch_optional(c).await)
}

pub async fn list(db: &Db) -> Result<Vec<OwnerRow>, sqlx::Error> {
    let sql = format!("SELECT {COLS} FROM owners o ORDER BY o.created_at, o.id");
    on_db!(db, c => sqlx::query_as(&sql).fetch_all(c).await)
}

/// Puts a merchant under an owner (`Some`) or makes it independent (`None`); false when
/// there is no such merchant.
pub async fn set_owner(
    db: &Db,
    merchant_id: &str,
    owner_id: Option<&str>,
) -> Result<bool, sqlx::Error> {
    let mut tx = db.begin().await?;
    let n = exec_tx!(&mut tx, c => sqlx::query("UPDATE merchants SET owner_id = $1 WHERE id = $2")
        .bind(owner_id)
        .bind(merchant_id)
        .execute(c)
        .await)?;
    tx.commit().await?;
    Ok(n == 1)
}

/// The merchant `id` if it is inside `scope`; `None` for an unknown merchant and for one
/// outside the scope alike (no existence leak).
pub async fn merchant_in_scope(
    db: &Db,
    s: &Scope,
    id: &str,
) -> Result<Option<MerchantRow>, sqlx::Error> {
    // `m`: the merchant columns are written for that alias.
    scope::row_in(db, "merchants m", crate::db::merchants::COLS, "m.id", s, id).await
}

/// The merchants inside `scope` (for a merchant picker), by id.
pub async fn merchants_in_scope(db: &Db, s: &Scope) -> Result<Vec<MerchantRow>, sqlx::Error> {
    let (kind, value) = s.sql_parts();
    let cols = crate::db::merchants::COLS;
    let sql = format!(
        "SELECT {cols} FROM merchants m WHERE {} ORDER BY m.id",
        scope::visible("m.id", 1)
    );
    on_db!(db, c => sqlx::query_as(&sql)
        .bind(kind)
        .bind(value)
        .fetch_all(c)
        .await)
}

pub async fn insert_key(
    db: &Db,
    id: &str,
    owner_id: &str,
    key_hash: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    db.write_exec(
        "INSERT INTO owner_api_keys (id, owner_id, key_hash, status, created_at) VALUES ($1, $2, $3, $4, $5)",
        args![id, owner_id, key_hash, ApiKeyStatus::Active.code(), now],
    )
    .await
    .map(|_| ())
}

/// Retires an active owner key; false when the owner has no such active key.
pub async fn retire_key(db: &Db, owner_id: &str, key_id: &str) -> Result<bool, sqlx::Error> {
    let n = db
        .write_exec(
            "UPDATE owner_api_keys SET status = $1 WHERE owner_id = $2 AND id = $3 AND status = $4",
            args![
                ApiKeyStatus::Retired.code(),
                owner_id,
                key_id,
                ApiKeyStatus::Active.code()
            ],
        )
        .await?;
    Ok(n == 1)
}

/// The owner id of the active owner key with this hash.
pub async fn active_key_owner(db: &Db, key_hash: &str) -> Result<Option<String>, sqlx::Error> {
    on_db!(db, c => sqlx::query_scalar(
        "SELECT owner_id FROM owner_api_keys WHERE key_hash = $1 AND status = $2",
    )
    .bind(key_hash)
    .bind(ApiKeyStatus::Active.code())
    .fetch_optional(c)
    .await)
}
