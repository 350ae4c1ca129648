//! Payment search (the console list and CSV download): optional filters, sortable columns and
//! keyset pagination (`(sort key, id) > cursor`, never OFFSET), served by the indexes of
//! migration 0002 so pages stay fast at millions of payments.

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

/// The `WHERE` conditions of a search (after `WHERE 1 = 1`).
fn filters(f: &PaymentSearch<'_>, sql: &mut String, binds: &mut Vec<Bind>) {
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
        cond(sql, " AND status = ?", Bind::S(f.status.to_owned()));
    }
    for (i, m) in f.methods.iter().enumerate() {
        let open = if i == 0 { " AND method IN (?" } else { ", ?" };
        cond(sql, open, Bind::S((*m).to_owned()));
        if i + 1 == f.methods.len() {
            sql.push(')');
        }
    }
    if let Some(t) = f.created_from {
        cond(sql, " AND created_at >= ?", Bind::I(t));
    }
    if let Some(t) = f.created_before {
        cond(sql, " AND created_at < ?", Bind::I(t));
    }
    if let Some(a) = f.amount_min {
        cond(sql, " AND amount >= ?", Bind::I(a));
    }
    if let Some(a) = f.amount_max {
        cond(sql, " AND amount <= ?", Bind::I(a));
    }
}

/// Count and amount total of every payment the search matches (the bulk confirmation).
pub async fn totals(db: &Db, f: &PaymentSearch<'_>) -> Result<(i64, i64), sqlx::Error> {
    let mut sql =
        "SELECT COUNT(*), CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM payments WHERE 1 = 1"
            .to_owned();
    let mut binds: Vec<Bind> = Vec::new();
    filters(f, &mut sql, &mut binds);
    let (n, sum): (i64, i64) = on_db!(db, c => {
        let mut q = sqlx::query_as(&sql);
        for b in &binds {
            q = match b {
                Bind::I(v) => q.bind(*v),
                Bind::S(v) => q.bind(v.clone()),
            };
        }
        q.fetch_one(c).await
    })?;
    Ok((n, sum))
}

/// One page of results (`limit` rows) after `after`, and the cursor of the next page if any.
pub async fn page(
    db: &Db,
    f: &PaymentSearch<'_>,
    after: Option<&Cursor>,
    limit: i64,
) -> Result<(Vec<PaymentRow>, Option<Cursor>), sqlx::Error> {
    let mut sql = format!("SELECT {COLS} FROM payments WHERE 1 = 1");
    let mut binds: Vec<Bind> = Vec::new();
    filters(f, &mut sql, &mut binds);
    let mut cond = |sql: &mut String, text: &str, b: Bind| cond(sql, &mut binds, text, b);
    let expr = f.sort.expr();
    let (op, dir) = if f.desc { ("<", "DESC") } else { (">", "ASC") };
    if let Some(c) = after {
        let key = match (&c.key, f.sort.key_of_is_int()) {
            (Key::I(v), true) => Some(Bind::I(*v)),
            (Key::S(v), false) => Some(Bind::S(v.clone())),
            // A cursor from another sort order: start from the beginning.
            _ => None,
        };
        if let Some(key) = key {
            cond(&mut sql, &format!(" AND ({expr}, id) {op} (?"), key);
            cond(&mut sql, ", ?)", Bind::S(c.id.clone()));
        }
    }
    sql.push_str(&format!(" ORDER BY {expr} {dir}, id {dir}"));
    cond(&mut sql, " LIMIT ?", Bind::I(limit + 1));
    let mut rows: Vec<PaymentRow> = on_db!(db, c => {
        let mut q = sqlx::query_as(&sql);
        for b in &binds {
            q = match b {
                Bind::I(v) => q.bind(*v),
                Bind::S(v) => q.bind(v.clone()),
            };
        }
        q.fetch_all(c).await
    })?;
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
    fn key_of_is_int(self) -> bool {
        matches!(
            self,
            SortCol::Created | SortCol::Deadline | SortCol::Paid | SortCol::Amount
        )
    }
}
