//! Payment search for the console list and the CSV download: filters, sortable columns and
//! keyset pagination (`(sort key, id) > cursor`, never OFFSET), served by the indexes of
//! migration 0002 so pages stay fast at millions of payments.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use crate::db::payments::PaymentRow;
use crate::db::search::PaymentSearch;
use crate::db::Db;
use crate::domain::scope::Scope;
use crate::domain::Method;

pub use crate::db::search::{Cursor, Key, SortCol};

impl SortCol {
    pub fn label_ja(self) -> &'static str {
        match self {
            SortCol::OrderId => "取引ID",
            SortCol::Id => "決済ID",
            SortCol::Method => "決済種別",
            SortCol::Institution => "支払機関名",
            SortCol::Status => "決済ステータス",
            SortCol::Created => "取引日時",
            SortCol::Deadline => "支払期限日",
            SortCol::Paid => "消込日時",
            SortCol::Amount => "決済金額",
        }
    }
}

/// The cursor format's version: the first element of the encoded array.
const CURSOR_V: u8 = 2;

/// Longest `after` value accepted (a key of the longest sortable text plus an id fits easily).
const CURSOR_MAX: usize = 1024;

/// The page position (`after=`) the list's "次のページ" link carries: base64url of
/// `[2, sort, dir, key, id]`. The sort and direction it was made for travel with it, so a cursor
/// used with another order is refused instead of silently starting a page somewhere else.
impl Filter {
    pub fn encode_cursor(&self, c: &Cursor) -> String {
        let dir = if self.desc { "desc" } else { "asc" };
        let json = serde_json::json!([CURSOR_V, self.sort.code(), dir, c.key, c.id]).to_string();
        URL_SAFE_NO_PAD.encode(json)
    }

    /// Reads `after` for this search: `Ok(None)` when empty; `Err` (a sentence for the user)
    /// when it is not a cursor of this search's order, e.g. edited by hand.
    pub fn cursor(&self, after: &str) -> Result<Option<Cursor>, String> {
        if after.is_empty() {
            return Ok(None);
        }
        let bad = || {
            "ページ送りの位置（after）が正しくありません。最初のページから検索し直してください。"
                .to_owned()
        };
        if after.len() > CURSOR_MAX {
            return Err(bad());
        }
        let bytes = URL_SAFE_NO_PAD.decode(after).map_err(|_| bad())?;
        let v: serde_json::Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
        let (key, id) = match v.as_array().map(Vec::as_slice) {
            Some([ver, sort, dir, key, id]) => {
                let dir_ok = dir.as_str() == Some(if self.desc { "desc" } else { "asc" });
                if ver.as_u64() != Some(u64::from(CURSOR_V))
                    || sort.as_str() != Some(self.sort.code())
                    || !dir_ok
                {
                    return Err(bad());
                }
                (key, id)
            }
            // The format before version 2 (`[key, id]`), still in bookmarked links: it carries
            // no order, so it is accepted only if its key has the type of this sort's column.
            Some([key, id]) => (key, id),
            _ => return Err(bad()),
        };
        let key: Key = serde_json::from_value(key.clone()).map_err(|_| bad())?;
        let id = id.as_str().filter(|i| looks_like_id(i)).ok_or_else(bad)?;
        if matches!(key, Key::I(_)) != self.sort.is_int() {
            return Err(bad());
        }
        Ok(Some(Cursor {
            key,
            id: id.to_owned(),
        }))
    }
}

/// A payment id as we make them: short, printable ASCII (the cursor's tie-breaker).
fn looks_like_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Search conditions, parsed from the list form (also used by the CSV download).
#[derive(Clone, Debug)]
pub struct Filter {
    /// The merchants the searching user may see: every query is limited to it.
    pub scope: Scope,
    /// One merchant (the merchant filter of operators and owner staff); `None`: the whole scope.
    pub merchant_id: Option<String>,
    pub order_id: String,
    pub payment_id: String,
    pub status: String,
    /// Any of these methods (empty: every method); `method` may repeat in the query.
    pub methods: Vec<Method>,
    /// `YYYY-MM-DD` (Japan time), inclusive, as typed.
    pub date_from: String,
    pub date_to: String,
    pub amount_min: Option<i64>,
    pub amount_max: Option<i64>,
    pub sort: SortCol,
    pub desc: bool,
}

fn get<'a>(fields: &'a [(String, String)], name: &str) -> &'a str {
    crate::form::get(fields, name).trim()
}

/// Start of a Japan-time day in unix ms.
fn jst_day_start_ms(s: &str) -> Option<i64> {
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    let d = time::Date::parse(s, fmt).ok()?;
    let t = d.midnight().assume_offset(crate::domain::jst::OFFSET);
    Some(t.unix_timestamp() * 1000)
}

impl Filter {
    /// Parses query fields; `Err` names the bad field in Japanese.
    pub fn parse(
        fields: &[(String, String)],
        scope: Scope,
        merchant_id: Option<String>,
    ) -> Result<Filter, String> {
        let amount = |name: &str, label: &str| -> Result<Option<i64>, String> {
            let v = get(fields, name).replace(',', "");
            if v.is_empty() {
                return Ok(None);
            }
            v.parse::<i64>()
                .ok()
                .filter(|a| *a >= 0)
                .map(Some)
                .ok_or_else(|| format!("{label}は0以上の整数（円）で入力してください。"))
        };
        let date = |name: &str, label: &str| -> Result<String, String> {
            let v = get(fields, name);
            if v.is_empty() || jst_day_start_ms(v).is_some() {
                Ok(v.to_owned())
            } else {
                Err(format!("{label}はYYYY-MM-DDの形式で入力してください。"))
            }
        };
        let mut methods = Vec::new();
        for (_, v) in fields.iter().filter(|(k, _)| k == "method") {
            let v = v.trim();
            if v.is_empty() {
                continue;
            }
            let m = Method::parse(v).ok_or("決済種別が正しくありません。")?;
            if !methods.contains(&m) {
                methods.push(m);
            }
        }
        let status = get(fields, "status");
        if status.len() > 32
            || !status
                .chars()
                .all(|c| c.is_ascii_lowercase() || c == '_' || c.is_ascii_digit())
        {
            return Err("決済ステータスが正しくありません。".into());
        }
        let sort = match get(fields, "sort") {
            "" => SortCol::Created,
            s => SortCol::parse(s).ok_or("並び替えの列が正しくありません。")?,
        };
        let desc = match get(fields, "dir") {
            "" | "desc" => true,
            "asc" => false,
            _ => return Err("並び順が正しくありません。".into()),
        };
        Ok(Filter {
            scope,
            merchant_id,
            order_id: get(fields, "order_id").to_owned(),
            payment_id: get(fields, "payment_id").to_owned(),
            status: status.to_owned(),
            methods,
            date_from: date("from", "取引日(開始)")?,
            date_to: date("to", "取引日(終了)")?,
            amount_min: amount("min", "金額(下限)")?,
            amount_max: amount("max", "金額(上限)")?,
            sort,
            desc,
        })
    }

    /// The filter (without cursor) as a query string, for sort links, paging and CSV links.
    pub fn query(&self) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("order_id", self.order_id.as_str()),
            ("payment_id", &self.payment_id),
            ("status", &self.status),
            ("from", &self.date_from),
            ("to", &self.date_to),
        ] {
            if !v.is_empty() {
                q.append_pair(k, v);
            }
        }
        for m in &self.methods {
            q.append_pair("method", m.code());
        }
        if let Some(a) = self.amount_min {
            q.append_pair("min", &a.to_string());
        }
        if let Some(a) = self.amount_max {
            q.append_pair("max", &a.to_string());
        }
        q.append_pair("sort", self.sort.code());
        q.append_pair("dir", if self.desc { "desc" } else { "asc" });
        q.finish()
    }
}

impl Filter {
    /// Whether `m` is one of the methods searched for (the form's ticked boxes).
    pub fn has_method(&self, m: &str) -> bool {
        self.methods.iter().any(|x| x.code() == m)
    }

    fn search<'a>(&'a self, methods: &'a [&'a str]) -> PaymentSearch<'a> {
        PaymentSearch {
            scope: &self.scope,
            merchant_id: self.merchant_id.as_deref(),
            order_id: &self.order_id,
            payment_id: &self.payment_id,
            status: &self.status,
            methods,
            created_from: jst_day_start_ms(&self.date_from),
            created_before: jst_day_start_ms(&self.date_to).map(|t| t + 86_400_000),
            amount_min: self.amount_min,
            amount_max: self.amount_max,
            sort: self.sort,
            desc: self.desc,
        }
    }

    fn method_codes(&self) -> Vec<&'static str> {
        self.methods.iter().map(|m| m.code()).collect()
    }
}

/// One page of results (`limit` rows) after `after`, and the cursor of the next page if any.
pub async fn page(
    db: &Db,
    f: &Filter,
    after: Option<&Cursor>,
    limit: i64,
) -> Result<(Vec<PaymentRow>, Option<Cursor>), crate::db::Error> {
    let codes = f.method_codes();
    crate::db::search::page(db, &f.search(&codes), after, limit).await
}

/// How many payments the search matches and their amounts' total, in yen.
pub async fn totals(db: &Db, f: &Filter) -> Result<(i64, i64), crate::db::Error> {
    let codes = f.method_codes();
    crate::db::search::totals(db, &f.search(&codes)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(q: &str) -> Filter {
        let fields: Vec<(String, String)> =
            form_urlencoded::parse(q.as_bytes()).into_owned().collect();
        Filter::parse(&fields, Scope::Merchant("m_1".into()), Some("m_1".into())).unwrap()
    }

    #[test]
    fn cursor_round_trips_and_belongs_to_its_sort() {
        let f = filter("sort=amount&dir=asc");
        let c = Cursor {
            key: Key::I(1500),
            id: "pay_abc".into(),
        };
        let s = f.encode_cursor(&c);
        assert_eq!(f.cursor(&s), Ok(Some(c.clone())));
        assert_eq!(f.cursor(""), Ok(None));
        // The same position under another sort or direction is refused, not reinterpreted.
        assert!(filter("sort=amount&dir=desc").cursor(&s).is_err());
        assert!(filter("sort=created_at").cursor(&s).is_err());
        // A text key for a number column, garbage, and an oversized value.
        let text = filter("sort=order_id&dir=asc").encode_cursor(&Cursor {
            key: Key::S("o-1".into()),
            id: "pay_abc".into(),
        });
        assert!(f.cursor(&text).is_err());
        assert!(f.cursor("not base64!").is_err());
        assert!(f.cursor(&"A".repeat(2000)).is_err());
    }
}
