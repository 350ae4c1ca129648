//! Payment operations in flight (capture, cancel, refund): the claim written before a connector
//! call and finished with its outcome. The unique index on pending operations is the guard
//! against two concurrent actions on one payment reaching the processor.

use crate::db::{is_unique_violation, Db, Tx};
use crate::util::random_id;
use crate::{args, on_db};

/// What an operation does at the connector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpKind {
    Capture,
    Cancel,
    Refund,
}

impl OpKind {
    pub fn code(self) -> &'static str {
        match self {
            OpKind::Capture => "capture",
            OpKind::Cancel => "cancel",
            OpKind::Refund => "refund",
        }
    }
    fn parse(s: &str) -> Option<OpKind> {
        match s {
            "capture" => Some(OpKind::Capture),
            "cancel" => Some(OpKind::Cancel),
            "refund" => Some(OpKind::Refund),
            _ => None,
        }
    }
}

/// A pending operation (for resuming one whose outcome was never recorded).
#[derive(Clone, Debug)]
pub struct Operation {
    /// Also the idempotency key sent to the connector.
    pub id: String,
    pub payment_id: String,
    pub kind: OpKind,
    pub amount: Option<i64>,
    pub actor: String,
    pub created_at: i64,
}

/// Claims the payment for one operation. `Ok(None)` when another operation on it is in flight.
pub async fn claim(
    db: &Db,
    payment_id: &str,
    kind: OpKind,
    amount: Option<i64>,
    actor: &str,
    now: i64,
) -> Result<Option<String>, sqlx::Error> {
    let id = random_id("op", 20);
    // One statement, atomic on its own: no BEGIN/COMMIT around it on PostgreSQL.
    let r = db
        .write_exec(
            "INSERT INTO payment_operations (id, payment_id, kind, amount, actor, status, created_at) \
             VALUES ($1, $2, $3, $4, $5, 'pending', $6)",
            args![&id, payment_id, kind.code(), amount, actor, now],
        )
        .await
        .map(|_| ());
    match r {
        Ok(()) => Ok(Some(id)),
        Err(e) if is_unique_violation(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Marks a pending operation done (in the transaction recording its outcome) or failed.
/// `false` when it was no longer pending: its outcome is already recorded, so the caller must
/// not record it again.
pub async fn finish(
    tx: &mut Tx,
    id: &str,
    error: Option<&str>,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let done: Option<(String,)> = tx
        .fetch_optional(FINISH_SQL, finish_args(id, error, now))
        .await?;
    Ok(done.is_some())
}

/// Announces the [`finish`] this transaction will ask for (the same arguments): on SQLite its
/// UPDATE travels with the transaction's next call to the writer instead of taking one of its
/// own (`Tx::read_ahead`). For a caller whose outcome does not depend on the order: whether
/// the finish runs before or after the payment's change in the same transaction, a finish
/// that finds the operation no longer pending is answered by rolling the whole back.
pub fn finish_ahead(tx: &mut Tx, id: &str, error: Option<&str>, now: i64) {
    tx.read_ahead(FINISH_SQL, finish_args(id, error, now));
}

const FINISH_SQL: &str = "UPDATE payment_operations SET status = $1, error = $2, finished_at = $3 \
WHERE id = $4 AND status = 'pending' RETURNING id";

fn finish_args(id: &str, error: Option<&str>, now: i64) -> Vec<crate::db::Arg> {
    args![
        if error.is_some() { "failed" } else { "done" },
        error,
        now,
        id
    ]
}

/// [`finish`] in a transaction of its own (a failed connector call records nothing else).
pub async fn fail(db: &Db, id: &str, error: &str, now: i64) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    finish(&mut tx, id, Some(error), now).await?;
    tx.commit().await
}

/// Operations still pending that were claimed before `cutoff_ms`: their outcome was never
/// recorded (a crash or a lost connection between the connector call and the commit).
pub async fn stale(db: &Db, cutoff_ms: i64) -> Result<Vec<Operation>, sqlx::Error> {
    let rows: Vec<(String, String, String, Option<i64>, String, i64)> = on_db!(db, c => sqlx::query_as(
        "SELECT id, payment_id, kind, amount, actor, created_at FROM payment_operations \
         WHERE status = 'pending' AND created_at < $1 ORDER BY created_at LIMIT 200",
    )
    .bind(cutoff_ms)
    .fetch_all(c)
    .await)?;
    rows.into_iter()
        .map(|(id, payment_id, kind, amount, actor, created_at)| {
            Ok(Operation {
                kind: OpKind::parse(&kind).ok_or_else(|| {
                    sqlx::Error::Decode(
                        format!("payment_operations {id}: bad kind {kind:?}").into(),
                    )
                })?,
                id,
                payment_id,
                amount,
                actor,
                created_at,
            })
        })
        .collect()
}
