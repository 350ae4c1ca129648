//! Console sessions (`console_sessions`), stored by the SHA-256 of their id only.

use crate::db::Db;
use crate::{exec_tx, on_db};

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct SessionRow {
    pub user_id: String,
    pub stage: String,
    pub last_seen: i64,
}

pub async fn insert(
    db: &Db,
    id_hash: &str,
    user_id: &str,
    stage: &str,
    ip: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    exec_tx!(&mut tx, c => sqlx::query(
        "INSERT INTO console_sessions (id_hash, user_id, stage, created_at, last_seen, ip) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id_hash)
    .bind(user_id)
    .bind(stage)
    .bind(now)
    .bind(now)
    .bind(ip)
    .execute(c)
    .await)?;
    tx.commit().await
}

pub async fn delete(db: &Db, id_hash: &str) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    exec_tx!(&mut tx, c => sqlx::query("DELETE FROM console_sessions WHERE id_hash = $1")
        .bind(id_hash)
        .execute(c)
        .await)?;
    tx.commit().await
}

pub async fn get(db: &Db, id_hash: &str) -> Result<Option<SessionRow>, sqlx::Error> {
    on_db!(db, c => sqlx::query_as(
        "SELECT user_id, stage, last_seen FROM console_sessions WHERE id_hash = $1",
    )
    .bind(id_hash)
    .fetch_optional(c)
    .await)
}

/// Records activity at `now` (the idle timeout counts from the last one).
pub async fn touch(db: &Db, id_hash: &str, now: i64) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    exec_tx!(&mut tx, c => sqlx::query("UPDATE console_sessions SET last_seen = $1 WHERE id_hash = $2")
        .bind(now)
        .bind(id_hash)
        .execute(c)
        .await)?;
    tx.commit().await
}
