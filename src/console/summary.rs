//! 支払明細 (payout summary): per payment method over a period, the number of collected
//! payments, their amount, fees (konbini stamp duty included in `payments.fee`) and the net.

use crate::db::Db;
use crate::on_db;

/// Statuses whose money reaches the merchant. Card amounts count what was captured less
/// refunds; other methods count the payment amount.
const COLLECTED: &str = "'captured', 'refunded', 'paid', 'confirmed', 'late_paid', 'completed'";

#[derive(Debug, sqlx::FromRow)]
pub struct Line {
    pub method: String,
    pub count: i64,
    pub amount: i64,
    pub fee: i64,
}

impl Line {
    pub fn net(&self) -> i64 {
        self.amount - self.fee
    }
}

/// Lines per method for payments created in `[from_ms, to_ms)`; `None` merchant = all.
pub async fn lines(
    db: &Db,
    merchant_id: Option<&str>,
    from_ms: i64,
    to_ms: i64,
) -> Result<Vec<Line>, sqlx::Error> {
    let sql = format!(
        "SELECT method, COUNT(*) AS count, \
         CAST(COALESCE(SUM(CASE WHEN method = 'card' THEN captured_amount - refunded_amount ELSE amount END), 0) AS BIGINT) AS amount, \
         CAST(COALESCE(SUM(fee), 0) AS BIGINT) AS fee \
         FROM payments WHERE ($1 IS NULL OR merchant_id = $2) AND created_at >= $3 AND created_at < $4 \
         AND status IN ({COLLECTED}) GROUP BY method ORDER BY method"
    );
    on_db!(db, c => sqlx::query_as(&sql)
        .bind(merchant_id)
        .bind(merchant_id)
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(c)
        .await)
}

/// The period of the summary: `from`/`to` as `YYYY-MM-DD` (Japan time, inclusive), defaulting
/// to the current month. Returns the dates shown and the `[from, to)` range in unix ms.
pub fn period(from: &str, to: &str) -> Result<(String, String, i64, i64), String> {
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    let today = time::OffsetDateTime::now_utc()
        .to_offset(crate::domain::jst::OFFSET)
        .date();
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
