//! Uploaded theme assets (`theme_uploads`): written once per content hash, read by name for the
//! public asset URLs and by merchant for the console (a merchant only ever lists its own).

use crate::db::Db;
use crate::{exec_tx, on_db};

/// A new upload to store.
pub struct NewUpload<'a> {
    pub name: &'a str,
    pub merchant_id: &'a str,
    pub logo: &'a [u8],
    pub logo_type: &'a str,
    pub logo_fp: &'a [u8],
    pub created_by: &'a str,
}

#[derive(Debug, sqlx::FromRow)]
pub struct Asset {
    pub merchant_id: String,
    pub logo: Vec<u8>,
    pub logo_type: String,
    pub logo_fp: Vec<u8>,
}

/// Stores an upload; `false` if this merchant already uploaded the same content (same name).
pub async fn insert(db: &Db, u: &NewUpload<'_>, now: i64) -> Result<bool, sqlx::Error> {
    let mut tx = db.begin().await?;
    let n = exec_tx!(&mut tx, c => sqlx::query(
        "INSERT INTO theme_uploads (name, merchant_id, logo, logo_type, logo_fp, created_by, \
         created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (name) DO NOTHING",
    )
    .bind(u.name)
    .bind(u.merchant_id)
    .bind(u.logo)
    .bind(u.logo_type)
    .bind(u.logo_fp)
    .bind(u.created_by)
    .bind(now)
    .execute(c)
    .await)?;
    tx.commit().await?;
    Ok(n == 1)
}

/// The assets of the theme `name`, for its public URLs.
pub async fn get(db: &Db, name: &str) -> Result<Option<Asset>, sqlx::Error> {
    on_db!(db, c => sqlx::query_as(
        "SELECT merchant_id, logo, logo_type, logo_fp FROM theme_uploads WHERE name = $1",
    )
    .bind(name)
    .fetch_optional(c)
    .await)
}

/// Names of the merchant's uploaded themes, newest first.
pub async fn names(db: &Db, merchant_id: &str) -> Result<Vec<String>, sqlx::Error> {
    let rows: Vec<(String,)> = on_db!(db, c => sqlx::query_as(
        "SELECT name FROM theme_uploads WHERE merchant_id = $1 ORDER BY created_at DESC, name",
    )
    .bind(merchant_id)
    .fetch_all(c)
    .await)?;
    Ok(rows.into_iter().map(|(n,)| n).collect())
}
