//! Payment search (the console list, its CSV download and the API list): optional filters,
//! sortable columns and keyset pagination (`(sort key, id) > cursor`, never OFFSET), served by
//! the indexes of migrations 0002 and 0028 so every page is an index seek at millions of
//! payments. The statement is written so that both planners pick that seek without statistics;
//! the query plan of each filter the console offers is listed in docs/console.md.

use crate::db::payments::{PaymentRow, COLS};
use crate::db::Db;
use crate::domain::scope::Scope;
use crate::on_db;

/// A sortable column of the list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortCol {
    OrderId,
    Id,
    Method,
    Institution,
    Status,
    Created,
    Deadline,
    Paid,
    Amount,
}

impl SortCol {
    pub const ALL: [SortCol; 9] = [
        SortCol::OrderId,
        SortCol::Id,
        SortCol::Method,
        SortCol::Institution,
        SortCol::Status,
        SortCol::Created,
        SortCol::Deadline,
        SortCol::Paid,
        SortCol::Amount,
    ];

    pub fn code(self) -> &'static str {
        match self {
            SortCol::OrderId => "order_id",
            SortCol::Id => "payment_id",
            SortCol::Method => "method",
            SortCol::Institution => "institution",
            SortCol::Status => "status",
            SortCol::Created => "created_at",
            SortCol::Deadline => "deadline_at",
            SortCol::Paid => "paid_at",
            SortCol::Amount => "amount",
        }
    }

    pub fn parse(s: &str) -> Option<SortCol> {
        SortCol::ALL.into_iter().find(|c| c.code() == s)
    }

    /// The SQL sort key; the same expression as in the index (NULLs folded by COALESCE).
    pub fn expr(self) -> &'static str {
        match self {
            SortCol::OrderId => "order_id",
            SortCol::Id => "id",
            SortCol::Method => "method",
            SortCol::Institution => "COALESCE(institution, '')",
            SortCol::Status => "status",
            SortCol::Created => "created_at",
            SortCol::Deadline => "COALESCE(deadline_at, 0)",
            SortCol::Paid => "COALESCE(paid_at, 0)",
            SortCol::Amount => "amount",
        }
    }

    pub fn key_of(self, p: &PaymentRow) -> Key {
        match self {
            SortCol::OrderId => Key::S(p.order_id.clone()),
            SortCol::Id => Key::S(p.id.clone()),
            SortCol::Method => Key::S(p.method.code().to_owned()),
            SortCol::Institution => Key::S(p.institution.clone().unwrap_or_default()),
            SortCol::Status => Key::S(p.status.code().to_owned()),
            SortCol::Created => Key::I(p.created_at),
            SortCol::Deadline => Key::I(p.deadline_at.unwrap_or(0)),
            SortCol::Paid => Key::I(p.paid_at.unwrap_or(0)),
            SortCol::Amount => Key::I(p.amount),
        }
    }
}

/// A sort-key value in a cursor.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum Key {
    I(i64),
    S(String),
}

/// Where the next page starts: after this sort key and payment id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cursor {
    pub key: Key,
    pub id: String,
}

/// Search conditions in stored terms (empty strings and `None`: any).
#[derive(Clone, Debug)]
pub struct PaymentSearch<'a> {
    /// Who is searching: the merchants they may see (always applied).
    pub scope: &'a Scope,
    /// One merchant inside the scope (the per-merchant filter); `None`: all of the scope.
    pub merchant_id: Option<&'a str>,
    pub order_id: &'a str,
    pub payment_id: &'a str,
    pub status: &'a str,
    /// Any of these method codes (empty: any method).
    pub methods: &'a [&'a str],
    /// Created at or after (unix ms).
    pub created_from: Option<i64>,
    /// Created before (unix ms).
    pub created_before: Option<i64>,
    pub amount_min: Option<i64>,
    pub amount_max: Option<i64>,
    pub sort: SortCol,
    pub desc: bool,
}

enum Bind {
    I(i64),
    S(String),
}

/// Appends a condition with one `?` placeholder, numbered after the binds so far.
fn cond(sql: &mut String, binds: &mut Vec<Bind>, text: &str, b: Bind) {
    binds.push(b);
    sql.push_str(&text.replace('?', &format!("${}", binds.len())));
}

/// An amount range matching at least this many payments of a merchant is "wide": the page is
/// then read in the sort's index order, filtering amounts (at most about `limit × rows /
/// WIDE_AMOUNT` rows read), instead of reading every matching amount and sorting them.
const WIDE_AMOUNT: i64 = 5_000;

/// How an amount range is planned.
#[derive(Clone, Copy, PartialEq, Eq)]
enum AmountPlan {
    /// No range, or the list is sorted by amount: nothing to steer.
    Free,
    /// Few matches: the range drives (`payments_m_amount`); status, method and dates are
    /// written so that no index matches them, so SQLite does not walk e.g. three months of a
    /// status instead of the few thousand payments in the range.
    Narrow,
    /// Many matches: the sort order's index drives. The created-order indexes end with the
    /// amount (migration 0034), so the range is checked on index entries and only the page's
    /// rows are read from the table. SQLite: written `+amount`, else it seeks
    /// `payments_m_amount` and sorts every match; it still reads `+amount` from the index entry
    /// before the row. PostgreSQL checks only a plain column on index entries (an expression is
    /// a filter on the table's row), and picks the ordered index by cost.
    Wide,
}

/// The `WHERE` conditions of a search (after `WHERE 1 = 1`), steered by `plan`. `keyset` is
/// `Some(desc)` when the statement also reads after a cursor on `created_at` on SQLite (see
/// [`select_page`]).
fn filters(
    f: &PaymentSearch<'_>,
    sql: &mut String,
    binds: &mut Vec<Bind>,
    plan: AmountPlan,
    postgres: bool,
    keyset: Option<bool>,
) {
    // `+col` (numbers) and `col || ''` (text; PostgreSQL has no unary plus on text) keep a
    // condition but hide it from index choice.
    let (amount, hide) = match plan {
        AmountPlan::Free => ("amount", false),
        AmountPlan::Narrow => ("amount", true),
        AmountPlan::Wide if postgres => ("amount", false),
        AmountPlan::Wide => ("+amount", false),
    };
    let (status, method, created) = if hide {
        ("status || ''", "method || ''", "+created_at")
    } else {
        ("status", "method", "created_at")
    };
    let mut cond = |sql: &mut String, text: &str, b: Bind| cond(sql, binds, text, b);
    if let Some((text, v)) = crate::db::scope::condition(f.scope, "merchant_id", 1) {
        cond(sql, &text.replace("$1", "?"), Bind::S(v));
    }
    if let Some(m) = f.merchant_id {
        cond(sql, " AND merchant_id = ?", Bind::S(m.to_owned()));
    }
    if !f.order_id.is_empty() {
        cond(sql, " AND order_id = ?", Bind::S(f.order_id.to_owned()));
    }
    if !f.payment_id.is_empty() {
        cond(sql, " AND id = ?", Bind::S(f.payment_id.to_owned()));
    }
    if !f.status.is_empty() {
        cond(
            sql,
            &format!(" AND {status} = ?"),
            Bind::S(f.status.to_owned()),
        );
    }
    for (i, m) in f.methods.iter().enumerate() {
        let open = if i == 0 {
            format!(" AND {method} IN (?")
        } else {
            ", ?".to_owned()
        };
        cond(sql, &open, Bind::S((*m).to_owned()));
        if i + 1 == f.methods.len() {
            sql.push(')');
        }
    }
    // After a cursor on `created_at`, SQLite seeks the date range's bound on the cursor's side
    // (`created_at < to`, newest first) rather than the cursor's row value, and walks the index
    // from that bound down to the cursor: the 200th page of a 100,000-row CSV export read
    // ~100,000 index entries (7–13 ms a page instead of 0.2, bench/README.md change 32). The
    // cursor came from a row inside the range, so the bound holds for every row it lets
    // through; hidden from index choice, it is still checked (a cursor edited by hand cannot
    // widen the range).
    let (from_col, before_col) = match keyset {
        Some(true) => (created, "+created_at"),
        Some(false) => ("+created_at", created),
        None => (created, created),
    };
    if let Some(t) = f.created_from {
        cond(sql, &format!(" AND {from_col} >= ?"), Bind::I(t));
    }
    if let Some(t) = f.created_before {
        cond(sql, &format!(" AND {before_col} < ?"), Bind::I(t));
    }
    if let Some(a) = f.amount_min {
        cond(sql, &format!(" AND {amount} >= ?"), Bind::I(a));
    }
    if let Some(a) = f.amount_max {
        cond(sql, &format!(" AND {amount} <= ?"), Bind::I(a));
    }
}

fn bind_all<'q, DB: sqlx::Database, O>(
    mut q: sqlx::query::QueryAs<'q, DB, O, <DB as sqlx::Database>::Arguments<'q>>,
    binds: &[Bind],
) -> sqlx::query::QueryAs<'q, DB, O, <DB as sqlx::Database>::Arguments<'q>>
where
    i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    for b in binds {
        q = match b {
            Bind::I(v) => q.bind(*v),
            Bind::S(v) => q.bind(v.clone()),
        };
    }
    q
}

/// How to plan the amount range: narrow when it matches fewer than [`WIDE_AMOUNT`] of the
/// merchant's payments (counted on the `(merchant_id, amount)` index alone, reading at most
/// that many entries) or is one exact amount, else wide.
async fn amount_plan(db: &Db, f: &PaymentSearch<'_>) -> Result<AmountPlan, sqlx::Error> {
    let (Some(m), true) = (
        f.merchant_id,
        f.amount_min.is_some() || f.amount_max.is_some(),
    ) else {
        return Ok(AmountPlan::Free);
    };
    if f.sort == SortCol::Amount {
        return Ok(AmountPlan::Free);
    }
    if f.amount_min.is_some() && f.amount_min == f.amount_max {
        return Ok(AmountPlan::Narrow);
    }
    let n: i64 = on_db!(db, c => sqlx::query_scalar(
        "SELECT COUNT(*) FROM (SELECT 1 FROM payments WHERE merchant_id = $1 \
         AND amount >= $2 AND amount <= $3 LIMIT $4) w")
        .bind(m)
        .bind(f.amount_min.unwrap_or(i64::MIN))
        .bind(f.amount_max.unwrap_or(i64::MAX))
        .bind(WIDE_AMOUNT)
        .fetch_one(c)
        .await)?;
    Ok(if n < WIDE_AMOUNT {
        AmountPlan::Narrow
    } else {
        AmountPlan::Wide
    })
}

/// Count and amount total of every payment the search matches (the bulk confirmation).
pub async fn totals(db: &Db, f: &PaymentSearch<'_>) -> Result<(i64, i64), sqlx::Error> {
    let mut sql =
        "SELECT COUNT(*), CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM payments WHERE 1 = 1"
            .to_owned();
    let mut binds: Vec<Bind> = Vec::new();
    filters(
        f,
        &mut sql,
        &mut binds,
        AmountPlan::Free,
        db.is_postgres(),
        None,
    );
    let (n, sum): (i64, i64) =
        on_db!(db, c => bind_all(sqlx::query_as(&sql), &binds).fetch_one(c).await)?;
    Ok((n, sum))
}

/// Which rows after the cursor a statement reads.
#[derive(Clone, Copy)]
enum After {
    /// No cursor: from the start.
    Start,
    /// `(key, id)` after the cursor's, as one row comparison (a plain column: both planners
    /// seek the index on it).
    Row,
    /// The rest of the cursor's tie: `key = cursor key AND id` after the cursor's id.
    TieRest,
    /// Keys strictly after the cursor's key.
    Beyond,
}

impl SortCol {
    /// Whether the sort key is an expression (NULLs folded by COALESCE). SQLite does not seek
    /// an expression index with a row comparison, and such keys have huge ties (every unpaid
    /// payment's `paid_at` is 0), so their cursor is read as two seeks: the tie's rest, then
    /// the keys beyond.
    fn is_expr(self) -> bool {
        matches!(
            self,
            SortCol::Institution | SortCol::Deadline | SortCol::Paid
        )
    }
}

/// The statement of one branch of a page: filters, the rows after the cursor, the order,
/// `limit + 1` rows (the extra one tells whether a next page exists).
fn select_page(
    f: &PaymentSearch<'_>,
    cursor: Option<(&Cursor, After)>,
    limit: i64,
    plan: AmountPlan,
    postgres: bool,
    binds: &mut Vec<Bind>,
) -> String {
    let mut sql = format!("SELECT {COLS} FROM payments WHERE 1 = 1");
    // PostgreSQL seeks the row value and the range bound together; only SQLite needs steering.
    let keyset = match cursor {
        Some((_, After::Row)) if f.sort == SortCol::Created && !postgres => Some(f.desc),
        _ => None,
    };
    filters(f, &mut sql, binds, plan, postgres, keyset);
    let mut cond = |sql: &mut String, text: &str, b: Bind| cond(sql, binds, text, b);
    let expr = f.sort.expr();
    let (op, dir) = if f.desc { ("<", "DESC") } else { (">", "ASC") };
    if let Some((c, part)) = cursor {
        let key = || match &c.key {
            Key::I(v) => Bind::I(*v),
            Key::S(v) => Bind::S(v.clone()),
        };
        match part {
            After::Start => {}
            After::Row => {
                cond(&mut sql, &format!(" AND ({expr}, id) {op} (?"), key());
                cond(&mut sql, ", ?)", Bind::S(c.id.clone()));
            }
            After::TieRest => {
                cond(&mut sql, &format!(" AND {expr} = ?"), key());
                cond(&mut sql, &format!(" AND id {op} ?"), Bind::S(c.id.clone()));
            }
            After::Beyond => cond(&mut sql, &format!(" AND {expr} {op} ?"), key()),
        }
    }
    match cursor {
        // The key is fixed within the tie: ordering by id alone lets the planner read the
        // index in order (ordering by the expression too makes SQLite sort the whole tie).
        Some((_, After::TieRest)) => sql.push_str(&format!(" ORDER BY id {dir}")),
        _ => sql.push_str(&format!(" ORDER BY {expr} {dir}, id {dir}")),
    }
    cond(&mut sql, " LIMIT ?", Bind::I(limit + 1));
    sql
}

/// One page of results (`limit` rows) after `after`, and the cursor of the next page if any.
pub async fn page(
    db: &Db,
    f: &PaymentSearch<'_>,
    after: Option<&Cursor>,
    limit: i64,
) -> Result<(Vec<PaymentRow>, Option<Cursor>), sqlx::Error> {
    // Edges check a cursor against the sort (console::search::Filter::cursor); one whose key
    // has another type here starts from the beginning rather than comparing across types.
    let after = after.filter(|c| matches!(c.key, Key::I(_)) == f.sort.is_int());
    let plan = amount_plan(db, f).await?;
    let parts: &[After] = match after {
        None => &[After::Start],
        Some(_) if f.sort.is_expr() => &[After::TieRest, After::Beyond],
        Some(_) => &[After::Row],
    };
    // Several methods, newest first: one seek per method on (merchant_id, method, created_at,
    // id), each already in order. With `method IN (…)` the planner instead walks the merchant's
    // whole created_at index while the methods ticked are rare.
    let per_method = f.methods.len() > 1
        && f.sort == SortCol::Created
        && f.merchant_id.is_some()
        && plan != AmountPlan::Narrow;
    let groups: Vec<&[&str]> = if per_method {
        f.methods.iter().map(std::slice::from_ref).collect()
    } else {
        vec![f.methods]
    };
    let mut binds: Vec<Bind> = Vec::new();
    let mut branches = Vec::new();
    for methods in groups {
        let one = PaymentSearch {
            methods,
            ..f.clone()
        };
        for part in parts {
            let cursor = after.map(|c| (c, *part));
            branches.push(select_page(
                &one,
                cursor,
                limit,
                plan,
                db.is_postgres(),
                &mut binds,
            ));
        }
    }
    let sql = if branches.len() == 1 {
        branches.remove(0)
    } else {
        // Each branch is in order and cut at the page size: merged, they give the page.
        let expr = f.sort.expr();
        let dir = if f.desc { "DESC" } else { "ASC" };
        let parts: Vec<String> = branches
            .iter()
            .enumerate()
            .map(|(i, b)| format!("SELECT * FROM ({b}) b{i}"))
            .collect();
        let mut sql = format!(
            "SELECT * FROM ({}) u ORDER BY {expr} {dir}, id {dir}",
            parts.join(" UNION ALL ")
        );
        cond(&mut sql, &mut binds, " LIMIT ?", Bind::I(limit + 1));
        sql
    };
    let mut rows: Vec<PaymentRow> =
        on_db!(db, c => bind_all(sqlx::query_as(&sql), &binds).fetch_all(c).await)?;
    let next = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|p| Cursor {
            key: f.sort.key_of(p),
            id: p.id.clone(),
        })
    } else {
        None
    };
    Ok((rows, next))
}

impl SortCol {
    /// Whether the sort key is a number (else text): a cursor's key must have this type.
    pub fn is_int(self) -> bool {
        matches!(
            self,
            SortCol::Created | SortCol::Deadline | SortCol::Paid | SortCol::Amount
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::Connection;

    /// How SQLite plans the page after a cursor, newest or oldest first, within a date range:
    /// the detail of `EXPLAIN QUERY PLAN` on a store with every migration applied.
    async fn sqlite_plan(desc: bool) -> String {
        let mut conn = sqlx::SqliteConnection::connect("sqlite::memory:")
            .await
            .unwrap();
        sqlx::migrate!("migrations/sqlite")
            .run(&mut conn)
            .await
            .unwrap();
        let scope = Scope::Merchant("m_1".into());
        let f = PaymentSearch {
            scope: &scope,
            merchant_id: Some("m_1"),
            order_id: "",
            payment_id: "",
            status: "",
            methods: &[],
            created_from: Some(1_000),
            created_before: Some(9_000),
            amount_min: None,
            amount_max: None,
            sort: SortCol::Created,
            desc,
        };
        let cursor = Cursor {
            key: Key::I(5_000),
            id: "pay_x".into(),
        };
        let mut binds = Vec::new();
        let sql = select_page(
            &f,
            Some((&cursor, After::Row)),
            500,
            AmountPlan::Free,
            false,
            &mut binds,
        );
        let rows: Vec<(i64, i64, i64, String)> =
            bind_all(sqlx::query_as(&format!("EXPLAIN QUERY PLAN {sql}")), &binds)
                .fetch_all(&mut conn)
                .await
                .unwrap();
        rows.into_iter().map(|r| r.3).collect::<Vec<_>>().join("; ")
    }

    #[tokio::test]
    async fn a_dated_page_after_a_cursor_seeks_the_cursor_on_sqlite() {
        // Seeking the range's bound instead walks every earlier page's index entries again.
        for desc in [true, false] {
            let plan = sqlite_plan(desc).await;
            assert!(
                plan.contains("(created_at,id)"),
                "desc={desc}: the cursor is not the seek: {plan}"
            );
        }
    }
}
