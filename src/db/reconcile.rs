//! Payments the sweeps look at again: those waiting at a processor whose webhook never came,
//! and number issues the institution never answered.

use crate::db::payments::{PaymentRow, COLS};
use crate::db::Db;
use crate::on_db;

/// Payments of `methods` in `status`, served by a processor account (not the sandbox), last
/// changed before `updated_before`; oldest first, at most `limit`.
pub async fn waiting_at_processors(
    db: &Db,
    methods: &[&str],
    status: &str,
    updated_before: i64,
    limit: i64,
) -> Result<Vec<PaymentRow>, sqlx::Error> {
    in_status(db, methods, status, updated_before, limit, true).await
}

/// Payments of `methods` in `status` on any connector, the sandbox included (a crash between
/// the pending write and the call strands a payment there too), last changed before
/// `updated_before`; oldest first, at most `limit`.
pub async fn stuck_issuing(
    db: &Db,
    methods: &[&str],
    status: &str,
    updated_before: i64,
    limit: i64,
) -> Result<Vec<PaymentRow>, sqlx::Error> {
    in_status(db, methods, status, updated_before, limit, false).await
}

async fn in_status(
    db: &Db,
    methods: &[&str],
    status: &str,
    updated_before: i64,
    limit: i64,
    processors_only: bool,
) -> Result<Vec<PaymentRow>, sqlx::Error> {
    // Method codes are our own constants; quotes are stripped all the same.
    let list = methods
        .iter()
        .map(|m| format!("'{}'", m.replace('\'', "")))
        .collect::<Vec<_>>()
        .join(", ");
    let processors = if processors_only {
        "AND connector <> 'sandbox' "
    } else {
        ""
    };
    let sql = format!(
        "SELECT {COLS} FROM payments WHERE status = $1 AND method IN ({list}) \
         {processors}AND updated_at < $2 ORDER BY updated_at LIMIT $3"
    );
    on_db!(db, c => sqlx::query_as(&sql).bind(status).bind(updated_before).bind(limit).fetch_all(c).await)
}
