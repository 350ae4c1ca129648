//! A [`Scope`] as a SQL condition, so a scoped query reads only what the caller may see.

use crate::domain::scope::Scope;

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
