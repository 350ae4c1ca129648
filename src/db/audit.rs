//! The console audit log (`console_audit`): append-only, read newest first.

use crate::db::Db;
use crate::domain::scope::Scope;
use crate::{exec_tx, on_db};

/// One audit record to write.
pub struct Entry<'a> {
    pub user_id: Option<&'a str>,
    pub email: &'a str,
    pub merchant_id: Option<&'a str>,
    pub action: &'a str,
    pub target: &'a str,
    pub detail: &'a str,
    pub ip: &'a str,
}

pub async fn insert(db: &Db, e: &Entry<'_>, now: i64) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    exec_tx!(&mut tx, c => sqlx::query(
        "INSERT INTO console_audit (at, user_id, email, merchant_id, action, target, detail, ip) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(now)
    .bind(e.user_id)
    .bind(e.email)
    .bind(e.merchant_id)
    .bind(e.action)
    .bind(e.target)
    .bind(e.detail)
    .bind(e.ip)
    .execute(c)
    .await)?;
    tx.commit().await
}

#[derive(Debug, sqlx::FromRow)]
pub struct AuditRow {
    pub id: i64,
    pub at: i64,
    pub email: String,
    pub merchant_id: Option<String>,
    pub action: String,
    pub target: String,
    pub detail: String,
    pub ip: String,
}

/// The newest entries, before `before_id` when paging (keyset on id); limited to `scope`.
pub async fn list(
    db: &Db,
    scope: &Scope,
    before_id: Option<i64>,
    limit: i64,
) -> Result<Vec<AuditRow>, sqlx::Error> {
    let (kind, value) = scope.sql_parts();
    let vis = crate::db::scope::visible("merchant_id", 1);
    let sql = format!(
        "SELECT id, at, email, merchant_id, action, target, detail, ip FROM console_audit \
         WHERE {vis} AND id < $3 ORDER BY id DESC LIMIT $4"
    );
    on_db!(db, c => sqlx::query_as(&sql)
    .bind(kind)
    .bind(value)
    .bind(before_id.unwrap_or(i64::MAX))
    .bind(limit)
    .fetch_all(c)
    .await)
}
