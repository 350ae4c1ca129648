//! 支払明細 (payout summary): per payment method over a period, the number of collected
//! payments, their amount, fees (konbini stamp duty included in `payments.fee`) and the net.

use crate::db::Db;

pub use crate::db::payments::SummaryLine as Line;

impl Line {
    pub fn net(&self) -> i64 {
        self.amount - self.fee
    }
}

/// Lines per method for payments created in `[from_ms, to_ms)`; `None` merchant = all.
pub async fn lines(
    db: &Db,
    scope: &crate::domain::scope::Scope,
    from_ms: i64,
    to_ms: i64,
) -> Result<Vec<Line>, crate::db::Error> {
    crate::db::payments::collected_by_method(db, scope, from_ms, to_ms).await
}

/// The period of the summary: `from`/`to` as `YYYY-MM-DD` (Japan time, inclusive), defaulting
/// to the current month at `now`. Returns the dates shown and the `[from, to)` range in unix ms.
pub fn period(from: &str, to: &str, now: i64) -> Result<(String, String, i64, i64), String> {
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    let today = crate::util::jst_datetime(now).date();
    let parse = |s: &str, default: time::Date| -> Result<time::Date, String> {
        if s.trim().is_empty() {
            Ok(default)
        } else {
            time::Date::parse(s.trim(), fmt)
                .map_err(|_| "期間はYYYY-MM-DDの形式で入力してください。".to_owned())
        }
    };
    let first = today.replace_day(1).unwrap_or(today);
    let f = parse(from, first)?;
    let t = parse(to, today)?;
    if t < f {
        return Err("期間の終了は開始以降の日付にしてください。".into());
    }
    let ms = |d: time::Date| {
        d.midnight()
            .assume_offset(crate::domain::jst::OFFSET)
            .unix_timestamp()
            * 1000
    };
    let show = |d: time::Date| d.format(fmt).unwrap_or_default();
    Ok((show(f), show(t), ms(f), ms(t) + 86_400_000))
}
