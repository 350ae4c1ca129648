//! A [`Scope`] as a SQL condition, so a scoped query reads only what the caller may see.

use crate::db::{Db, Decoded};
use crate::domain::scope::Scope;
use crate::on_db;

/// The condition "`col` (a merchant id column) is inside the scope bound at `$k` (kind) and
/// `$k+1` (value)" — bind [`Scope::sql_parts`] in that order. One text for both databases.
pub fn visible(col: &str, k: usize) -> String {
    let v = k + 1;
    format!(
        "(${k} = 'all' OR (${k} = 'merchant' AND {col} = ${v}) \
         OR (${k} = 'owner' AND {col} IN (SELECT so.id FROM merchants so WHERE so.owner_id = ${v})))"
    )
}

/// The same condition written for one scope with its value at `$k`, for dynamic queries that
/// number their own placeholders (`db::search`): `None` for every merchant (no condition).
/// Separate texts per kind keep the merchant-first indexes usable.
pub fn condition(scope: &Scope, col: &str, k: usize) -> Option<(String, String)> {
    match scope {
        Scope::All => None,
        Scope::Merchant(m) => Some((format!(" AND {col} = ${k}"), m.clone())),
        Scope::Owner(o) => Some((
            format!(" AND {col} IN (SELECT so.id FROM merchants so WHERE so.owner_id = ${k})"),
            o.clone(),
        )),
    }
}

/// The row `id` of `table` (its columns `cols`) if its merchant (the column `merchant_col`)
/// is inside `scope`; `None` otherwise, as for an unknown id, so a caller outside the scope
/// learns nothing.
pub(crate) async fn row_in<T: Decoded>(
    db: &Db,
    table: &str,
    cols: &str,
    merchant_col: &str,
    scope: &Scope,
    id: &str,
) -> Result<Option<T>, sqlx::Error> {
    let (kind, value) = scope.sql_parts();
    let sql = format!(
        "SELECT {cols} FROM {table} WHERE id = $1 AND {}",
        visible(merchant_col, 2)
    );
    on_db!(db, c => sqlx::query_as(&sql)
        .bind(id)
        .bind(kind)
        .bind(value)
        .fetch_optional(c)
        .await)
}
