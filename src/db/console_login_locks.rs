//! Console sign-in failures and locks (`console_login_locks`), keyed by account + client address.

use crate::db::Db;
use crate::{exec_tx, on_tx};

/// Counts a failure for (`account`, `ip`) in one statement: only while that pair is not locked
/// at `now`, and the `max_failures`th sets `locked_until` to `lock_until` (and resets the
/// count). Concurrent failures are serialized by the row lock (the upsert takes it). Returns
/// `None` when the pair was already locked, else its `locked_until` after the update.
pub async fn record_failure(
    db: &Db,
    account: &str,
    ip: &str,
    max_failures: i64,
    lock_until: i64,
    now: i64,
) -> Result<Option<Option<i64>>, sqlx::Error> {
    // The first failure inserts the row; with max_failures <= 1 it already locks.
    let (first_failures, first_lock) = if max_failures <= 1 {
        (0_i64, Some(lock_until))
    } else {
        (1_i64, None)
    };
    let mut tx = db.begin().await?;
    let row: Option<(Option<i64>,)> = on_tx!(&mut tx, c => sqlx::query_as(
        "INSERT INTO console_login_locks (account, ip, failures, locked_until, updated_at) \
         VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (account, ip) DO UPDATE SET \
           failures = CASE WHEN console_login_locks.failures + 1 >= $6 THEN 0 \
                      ELSE console_login_locks.failures + 1 END, \
           locked_until = CASE WHEN console_login_locks.failures + 1 >= $6 THEN $7 \
                          ELSE console_login_locks.locked_until END, \
           updated_at = $5 \
         WHERE console_login_locks.locked_until IS NULL OR console_login_locks.locked_until <= $5 \
         RETURNING locked_until",
    )
    .bind(account)
    .bind(ip)
    .bind(first_failures)
    .bind(first_lock)
    .bind(now)
    .bind(max_failures)
    .bind(lock_until)
    .fetch_optional(c)
    .await)?;
    tx.commit().await?;
    Ok(row.map(|(t,)| t))
}

/// True if (`account`, `ip`) is locked at `now`, judged by a write in the same order as
/// [`record_failure`]: a success evaluated after the locking failure sees the lock.
pub async fn locked_now(db: &Db, account: &str, ip: &str, now: i64) -> Result<bool, sqlx::Error> {
    let mut tx = db.begin().await?;
    let n = exec_tx!(&mut tx, c => sqlx::query(
        "UPDATE console_login_locks SET failures = failures \
         WHERE account = $1 AND ip = $2 AND locked_until IS NOT NULL AND locked_until > $3",
    )
    .bind(account)
    .bind(ip)
    .bind(now)
    .execute(c)
    .await)?;
    tx.commit().await?;
    Ok(n == 1)
}
