//! Payments waiting at a processor, for the reconciliation sweep that asks the processor about
//! the ones whose webhook never came.

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
    let list = methods
        .iter()
        .map(|m| format!("'{}'", m.replace('\'', "")))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "SELECT {COLS} FROM payments WHERE status = $1 AND method IN ({list}) \
         AND connector <> 'sandbox' AND updated_at < $2 ORDER BY updated_at LIMIT $3"
    );
    on_db!(db, c => sqlx::query_as(&sql).bind(status).bind(updated_before).bind(limit).fetch_all(c).await)
}
