//! Read-only numbers for health and metrics: a database ping and queue depths.

use crate::db::Db;
use crate::on_db;

/// One round trip to the database (the readiness check).
pub async fn ping(db: &Db) -> Result<(), sqlx::Error> {
    let _: i64 =
        on_db!(db, c => sqlx::query_scalar("SELECT CAST(1 AS BIGINT)").fetch_one(c).await)?;
    Ok(())
}

/// Depth of a queue: rows waiting and the creation time of the oldest (unix ms).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Depth {
    pub pending: i64,
    pub oldest_created_at: Option<i64>,
}

async fn depth(db: &Db, table: &str) -> Result<Depth, sqlx::Error> {
    // `status` leads an index on both tables, so this reads only the pending rows.
    let sql = format!("SELECT COUNT(*), MIN(created_at) FROM {table} WHERE status = 'pending'");
    let (pending, oldest_created_at): (i64, Option<i64>) =
        on_db!(db, c => sqlx::query_as(&sql).fetch_one(c).await)?;
    Ok(Depth {
        pending,
        oldest_created_at,
    })
}

/// Merchant notifications not yet delivered (`outbox`).
pub async fn notification_depth(db: &Db) -> Result<Depth, sqlx::Error> {
    depth(db, "outbox").await
}

/// Shopper e-mail/SMS messages not yet sent (`messages`).
pub async fn message_depth(db: &Db) -> Result<Depth, sqlx::Error> {
    depth(db, "messages").await
}
