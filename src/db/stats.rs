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
    depth_where(db, table, "status = 'pending'").await
}

/// `table` and `filter` are constants of this module, never input.
async fn depth_where(db: &Db, table: &str, filter: &str) -> Result<Depth, sqlx::Error> {
    // `status` leads an index on these tables, so this reads only the waiting rows.
    let sql = format!("SELECT COUNT(*), MIN(created_at) FROM {table} WHERE {filter}");
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

/// Shopper messages not yet sent on one channel: e-mail and SMS fail for different reasons
/// (an SMTP relay, an SMS provider), so each has its own gauge.
pub async fn message_depth_on(
    db: &Db,
    channel: crate::domain::message::Channel,
) -> Result<Depth, sqlx::Error> {
    let filter = match channel {
        crate::domain::message::Channel::Email => "status = 'pending' AND channel = 'email'",
        crate::domain::message::Channel::Sms => "status = 'pending' AND channel = 'sms'",
    };
    depth_where(db, "messages", filter).await
}

/// SMS payment requests recorded but not yet handed to the provider (`sms_messages`).
pub async fn sms_request_depth(db: &Db) -> Result<Depth, sqlx::Error> {
    depth_where(db, "sms_messages", "status = 'queued'").await
}
