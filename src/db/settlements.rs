//! Fees, the payout ledger and settlements (精算): payout terms and fee schedules per merchant,
//! the ledger entry a payment change writes in its own transaction ([`on_payment_change`]), and
//! the settlements the cut-off builds from the ledger (docs/settlements.md).

use serde_json::Value;

use crate::db::payment_row::PaymentRow;
use crate::db::{Db, Tx};
use crate::domain::fees::{self, Breakdown, Schedule};
use crate::domain::konbini::Chain;
use crate::domain::payout::Cycle;
use crate::domain::scope::Scope;
use crate::domain::Method;
use crate::{args, exec_tx, on_db, on_tx};

/// A merchant's payout terms (`payout_terms`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Terms {
    pub merchant_id: String,
    pub cycle: Cycle,
    pub payout_delay_days: i64,
    /// 精算入金手数料 per payout, tax excluded.
    pub settlement_fee: i64,
    /// The merchant's goods or services are subject to consumption tax (stamp-duty rule).
    pub goods_taxable: bool,
}

#[derive(sqlx::FromRow)]
struct StoredTerms {
    merchant_id: String,
    cycle: String,
    payout_delay_days: i64,
    settlement_fee: i64,
    goods_taxable: i64,
}

impl TryFrom<StoredTerms> for Terms {
    type Error = sqlx::Error;
    fn try_from(s: StoredTerms) -> Result<Self, Self::Error> {
        Ok(Terms {
            cycle: Cycle::try_from(s.cycle).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
            merchant_id: s.merchant_id,
            payout_delay_days: s.payout_delay_days,
            settlement_fee: s.settlement_fee,
            goods_taxable: s.goods_taxable != 0,
        })
    }
}

const TERMS_COLS: &str = "merchant_id, cycle, payout_delay_days, settlement_fee, goods_taxable";

pub async fn terms(db: &Db, merchant_id: &str) -> Result<Option<Terms>, sqlx::Error> {
    let sql = format!("SELECT {TERMS_COLS} FROM payout_terms WHERE merchant_id = $1");
    let row: Option<StoredTerms> =
        on_db!(db, c => sqlx::query_as(&sql).bind(merchant_id).fetch_optional(c).await)?;
    row.map(Terms::try_from).transpose()
}

/// Every merchant with payout terms (the cut-off settles these).
pub async fn all_terms(db: &Db) -> Result<Vec<Terms>, sqlx::Error> {
    let sql = format!("SELECT {TERMS_COLS} FROM payout_terms ORDER BY merchant_id");
    let rows: Vec<StoredTerms> = on_db!(db, c => sqlx::query_as(&sql).fetch_all(c).await)?;
    rows.into_iter().map(Terms::try_from).collect()
}

pub async fn set_terms(db: &Db, t: &Terms, now: i64) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    exec_tx!(&mut tx, c => sqlx::query(
        "INSERT INTO payout_terms (merchant_id, cycle, payout_delay_days, settlement_fee, goods_taxable, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (merchant_id) DO UPDATE SET cycle = excluded.cycle, \
         payout_delay_days = excluded.payout_delay_days, settlement_fee = excluded.settlement_fee, \
         goods_taxable = excluded.goods_taxable, updated_at = excluded.updated_at",
    )
    .bind(&t.merchant_id)
    .bind(t.cycle.code())
    .bind(t.payout_delay_days)
    .bind(t.settlement_fee)
    .bind(i64::from(t.goods_taxable))
    .bind(now)
    .execute(c)
    .await)?;
    tx.commit().await
}

/// A merchant's fee schedules, by method.
pub async fn schedules(db: &Db, merchant_id: &str) -> Result<Vec<(Method, Schedule)>, sqlx::Error> {
    let rows: Vec<(String, i64, i64)> = on_db!(db, c => sqlx::query_as(
        "SELECT method, fixed_fee, rate_bp FROM fee_schedules WHERE merchant_id = $1 ORDER BY method",
    )
    .bind(merchant_id)
    .fetch_all(c)
    .await)?;
    rows.into_iter()
        .map(|(m, fixed_fee, rate_bp)| {
            let method = Method::parse(&m).ok_or_else(|| {
                sqlx::Error::Decode(Box::new(crate::domain::BadCode {
                    kind: "Method",
                    value: m.clone(),
                }))
            })?;
            Ok((method, Schedule { fixed_fee, rate_bp }))
        })
        .collect()
}

pub async fn set_schedule(
    db: &Db,
    merchant_id: &str,
    method: Method,
    s: Schedule,
    now: i64,
) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    exec_tx!(&mut tx, c => sqlx::query(
        "INSERT INTO fee_schedules (merchant_id, method, fixed_fee, rate_bp, updated_at) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (merchant_id, method) DO UPDATE SET fixed_fee = excluded.fixed_fee, \
         rate_bp = excluded.rate_bp, updated_at = excluded.updated_at",
    )
    .bind(merchant_id)
    .bind(method.code())
    .bind(s.fixed_fee)
    .bind(s.rate_bp)
    .bind(now)
    .execute(c)
    .await)?;
    tx.commit().await
}

// ---------------------------------------------------------------------------
// The ledger
// ---------------------------------------------------------------------------

/// What a ledger entry records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    Collected,
    Refunded,
    Reversed,
}

impl EntryKind {
    pub fn code(self) -> &'static str {
        match self {
            EntryKind::Collected => "collected",
            EntryKind::Refunded => "refunded",
            EntryKind::Reversed => "reversed",
        }
    }

    pub fn parse(s: &str) -> Option<EntryKind> {
        [
            EntryKind::Collected,
            EntryKind::Refunded,
            EntryKind::Reversed,
        ]
        .into_iter()
        .find(|k| k.code() == s)
    }

    pub fn label_ja(self) -> &'static str {
        match self {
            EntryKind::Collected => "収納",
            EntryKind::Refunded => "返金",
            EntryKind::Reversed => "取消",
        }
    }
}

/// The amount a payment in this state has brought in: the captured amount for cards (a sale
/// may be captured for less than authorised), the amount for every other method.
fn collected_amount(p: &PaymentRow) -> i64 {
    match p.method {
        Method::Card => p.captured_amount,
        _ => p.amount,
    }
}

async fn insert_entry(
    tx: &mut Tx,
    p: &PaymentRow,
    kind: EntryKind,
    amount: i64,
    b: Breakdown,
    now: i64,
) -> Result<(), sqlx::Error> {
    tx.write(
        "INSERT INTO ledger_entries (payment_id, merchant_id, kind, amount, fixed_fee, rate_fee, fee_tax, stamp_duty, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        args![
            &p.id,
            &p.merchant_id,
            kind.code(),
            amount,
            b.fixed_fee,
            b.rate_fee,
            b.fee_tax,
            b.stamp_duty,
            now
        ],
    )
    .await?;
    Ok(())
}

/// Writes the ledger entry a payment change calls for, in the change's transaction: fees when
/// it is collected (from the merchant's schedule), a refund, or the whole payment undone when
/// a collection is reversed. `before` is `None` for a payment just created. Returns the
/// payment's new fee total when it changed (stored in `payments.fee`).
/// The fee schedule and payout terms a collected payment is charged by.
const FEE_TERMS_SQL: &str =
    "SELECT f.fixed_fee, f.rate_bp, t.goods_taxable FROM (SELECT 1 AS one) AS o \
     LEFT JOIN fee_schedules f ON f.merchant_id = $1 AND f.method = $2 \
     LEFT JOIN payout_terms t ON t.merchant_id = $1";

fn fee_terms_args(p: &PaymentRow) -> Vec<crate::db::Arg> {
    args![&p.merchant_id, p.method.code()]
}

/// Announces ([`Tx::read_ahead`]) the read [`on_payment_change`] will make when `p` changes to
/// `to`: the fee schedule and payout terms, when the change collects the money. A payment's
/// merchant and method never change, and the transaction writes neither table.
pub fn read_ahead(tx: &mut Tx, p: &PaymentRow, to: crate::domain::payment::PaymentStatus) {
    if !p.status.is_collected() && to.is_collected() {
        tx.read_ahead(FEE_TERMS_SQL, fee_terms_args(p));
    }
}

pub async fn on_payment_change(
    tx: &mut Tx,
    before: Option<&PaymentRow>,
    after: &PaymentRow,
    now: i64,
) -> Result<Option<i64>, sqlx::Error> {
    let was = before.is_some_and(|b| b.status.is_collected());
    let is = after.status.is_collected();
    match (was, is) {
        (false, true) => {
            // The fee schedule and the payout terms in one read: both are optional rows.
            let (fixed_fee, rate_bp, taxable): (Option<i64>, Option<i64>, Option<i64>) = tx
                .fetch_optional(FEE_TERMS_SQL, fee_terms_args(after))
                .await?
                .ok_or(sqlx::Error::RowNotFound)?;
            let schedule = match (fixed_fee, rate_bp) {
                (Some(fixed_fee), Some(rate_bp)) => Schedule { fixed_fee, rate_bp },
                _ => Schedule::default(),
            };
            let stamp = (after.method == Method::Konbini)
                .then(|| after.institution.as_deref().and_then(Chain::parse));
            let amount = collected_amount(after);
            let b = fees::compute(amount, schedule, stamp, taxable.is_some_and(|t| t != 0));
            insert_entry(tx, after, EntryKind::Collected, amount, b, now).await?;
            Ok(Some(b.total()))
        }
        (true, false) => {
            // Undo everything this payment put in the ledger (amount, fees, stamp duty).
            let sum: (i64, i64, i64, i64, i64) = on_tx!(tx, c => sqlx::query_as(
                "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT), CAST(COALESCE(SUM(fixed_fee), 0) AS BIGINT), \
                 CAST(COALESCE(SUM(rate_fee), 0) AS BIGINT), CAST(COALESCE(SUM(fee_tax), 0) AS BIGINT), \
                 CAST(COALESCE(SUM(stamp_duty), 0) AS BIGINT) FROM ledger_entries WHERE payment_id = $1",
            )
            .bind(&after.id)
            .fetch_one(c)
            .await)?;
            let undo = Breakdown {
                fixed_fee: -sum.1,
                rate_fee: -sum.2,
                fee_tax: -sum.3,
                stamp_duty: -sum.4,
            };
            insert_entry(tx, after, EntryKind::Reversed, -sum.0, undo, now).await?;
            Ok(Some(0))
        }
        (true, true) => {
            let refunded = after.refunded_amount - before.map_or(0, |b| b.refunded_amount);
            if refunded > 0 {
                // A refund returns the money, not the fees (documented).
                insert_entry(
                    tx,
                    after,
                    EntryKind::Refunded,
                    -refunded,
                    Breakdown::default(),
                    now,
                )
                .await?;
            }
            Ok(None)
        }
        (false, false) => Ok(None),
    }
}

/// One ledger entry, with its payment's order id, method and institution.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct EntryRow {
    pub id: i64,
    pub payment_id: String,
    pub order_id: String,
    pub method: String,
    pub institution: Option<String>,
    pub kind: String,
    pub amount: i64,
    pub fixed_fee: i64,
    pub rate_fee: i64,
    pub fee_tax: i64,
    pub stamp_duty: i64,
    pub settlement_id: Option<String>,
    pub created_at: i64,
}

const ENTRY_COLS: &str =
    "e.id, e.payment_id, p.order_id, p.method, p.institution, e.kind, e.amount, \
e.fixed_fee, e.rate_fee, e.fee_tax, e.stamp_duty, e.settlement_id, e.created_at";

pub async fn entries_of_payment(db: &Db, payment_id: &str) -> Result<Vec<EntryRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {ENTRY_COLS} FROM ledger_entries e JOIN payments p ON p.id = e.payment_id \
         WHERE e.payment_id = $1 ORDER BY e.id"
    );
    on_db!(db, c => sqlx::query_as(&sql).bind(payment_id).fetch_all(c).await)
}

pub async fn entries_of_settlement(
    db: &Db,
    settlement_id: &str,
) -> Result<Vec<EntryRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {ENTRY_COLS} FROM ledger_entries e JOIN payments p ON p.id = e.payment_id \
         WHERE e.settlement_id = $1 ORDER BY e.created_at, e.id"
    );
    on_db!(db, c => sqlx::query_as(&sql).bind(settlement_id).fetch_all(c).await)
}

/// Konbini collections of a merchant in `[from_ms, to_ms)`, with the reversals (速報取消) of
/// the period as negative lines: the 収納明細.
pub async fn konbini_collections(
    db: &Db,
    merchant_id: &str,
    from_ms: i64,
    to_ms: i64,
) -> Result<Vec<EntryRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {ENTRY_COLS} FROM ledger_entries e JOIN payments p ON p.id = e.payment_id \
         WHERE e.merchant_id = $1 AND e.kind IN ('collected', 'reversed') AND p.method = 'konbini' \
         AND e.created_at >= $2 AND e.created_at < $3 ORDER BY e.created_at, e.id"
    );
    on_db!(db, c => sqlx::query_as(&sql)
        .bind(merchant_id)
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(c)
        .await)
}

/// The time of the merchant's oldest entry not yet in a settlement, before `before`.
pub async fn oldest_open_entry(
    db: &Db,
    merchant_id: &str,
    before: i64,
) -> Result<Option<i64>, sqlx::Error> {
    let row: (Option<i64>,) = on_db!(db, c => sqlx::query_as(
        "SELECT MIN(created_at) FROM ledger_entries WHERE merchant_id = $1 AND settlement_id IS NULL AND created_at < $2",
    )
    .bind(merchant_id)
    .bind(before)
    .fetch_one(c)
    .await)?;
    Ok(row.0)
}

// ---------------------------------------------------------------------------
// Settlements
// ---------------------------------------------------------------------------

/// A settlement (精算): one merchant's payout for one period.
#[derive(Clone, Debug, sqlx::FromRow, serde::Serialize)]
pub struct SettlementRow {
    pub id: String,
    pub merchant_id: String,
    pub cycle: String,
    pub period_start: String,
    pub period_end: String,
    pub payout_date: String,
    pub payment_count: i64,
    /// Collected amounts.
    pub gross: i64,
    /// Refunds and reversals (a positive number, deducted).
    pub refunds: i64,
    /// Per-payment fees, tax excluded.
    pub fees: i64,
    /// 精算入金手数料, tax excluded.
    pub settlement_fee: i64,
    /// 消費税 on `fees + settlement_fee`.
    pub fee_tax: i64,
    pub stamp_duty: i64,
    /// What is paid out: gross − refunds − fees − settlement fee − tax − stamp duty.
    pub net: i64,
    pub created_at: i64,
}

const SETTLEMENT_COLS: &str = "id, merchant_id, cycle, period_start, period_end, payout_date, \
payment_count, gross, refunds, fees, settlement_fee, fee_tax, stamp_duty, net, created_at";

/// The period a new settlement covers.
pub struct NewSettlement<'a> {
    pub id: &'a str,
    pub merchant_id: &'a str,
    pub cycle: Cycle,
    pub period_start: &'a str,
    pub period_end: &'a str,
    pub payout_date: &'a str,
    /// The end of the period (00:00 JST of the next day): it takes every open entry before it.
    pub to_ms: i64,
    pub settlement_fee: i64,
}

/// Sums of the entries a settlement took.
#[derive(Debug, sqlx::FromRow)]
struct Sums {
    collected_count: i64,
    gross: i64,
    refunds: i64,
    fees: i64,
    stamp_duty: i64,
}

/// Creates the settlement of a period and moves the open entries before its end into it (an
/// entry committed after its own period was settled joins this one), in `tx`.
/// `None` when the period already has one (the cut-off ran before: nothing changes) or has no
/// open entries (nothing to pay, no settlement fee).
pub async fn create(
    tx: &mut Tx,
    s: &NewSettlement<'_>,
    now: i64,
) -> Result<Option<SettlementRow>, sqlx::Error> {
    let inserted = exec_tx!(tx, c => sqlx::query(
        "INSERT INTO settlements (id, merchant_id, cycle, period_start, period_end, payout_date, payment_count, \
         gross, refunds, fees, settlement_fee, fee_tax, stamp_duty, net, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, 0, 0, 0, 0, 0, 0, 0, 0, $7) ON CONFLICT (merchant_id, period_start) DO NOTHING",
    )
    .bind(s.id)
    .bind(s.merchant_id)
    .bind(s.cycle.code())
    .bind(s.period_start)
    .bind(s.period_end)
    .bind(s.payout_date)
    .bind(now)
    .execute(c)
    .await)?;
    if inserted == 0 {
        return Ok(None);
    }
    let taken = exec_tx!(tx, c => sqlx::query(
        "UPDATE ledger_entries SET settlement_id = $1 WHERE merchant_id = $2 AND settlement_id IS NULL \
         AND created_at < $3",
    )
    .bind(s.id)
    .bind(s.merchant_id)
    .bind(s.to_ms)
    .execute(c)
    .await)?;
    if taken == 0 {
        exec_tx!(tx, c => sqlx::query("DELETE FROM settlements WHERE id = $1").bind(s.id).execute(c).await)?;
        return Ok(None);
    }
    let sums: Sums = on_tx!(tx, c => sqlx::query_as(
        "SELECT CAST(COALESCE(SUM(CASE WHEN kind = 'collected' THEN 1 ELSE 0 END), 0) AS BIGINT) AS collected_count, \
         CAST(COALESCE(SUM(CASE WHEN kind = 'collected' THEN amount ELSE 0 END), 0) AS BIGINT) AS gross, \
         CAST(COALESCE(SUM(CASE WHEN kind = 'collected' THEN 0 ELSE -amount END), 0) AS BIGINT) AS refunds, \
         CAST(COALESCE(SUM(fixed_fee + rate_fee), 0) AS BIGINT) AS fees, \
         CAST(COALESCE(SUM(stamp_duty), 0) AS BIGINT) AS stamp_duty \
         FROM ledger_entries WHERE settlement_id = $1",
    )
    .bind(s.id)
    .fetch_one(c)
    .await)?;
    let t = crate::domain::fees::settle(
        sums.gross,
        sums.refunds,
        sums.fees,
        sums.stamp_duty,
        s.settlement_fee,
    );
    let sql = format!(
        "UPDATE settlements SET payment_count = $1, gross = $2, refunds = $3, fees = $4, settlement_fee = $5, \
         fee_tax = $6, stamp_duty = $7, net = $8 WHERE id = $9 RETURNING {SETTLEMENT_COLS}"
    );
    let row: SettlementRow = on_tx!(tx, c => sqlx::query_as(&sql)
        .bind(sums.collected_count)
        .bind(t.gross)
        .bind(t.refunds)
        .bind(t.fees)
        .bind(t.settlement_fee)
        .bind(t.fee_tax)
        .bind(t.stamp_duty)
        .bind(t.net)
        .bind(s.id)
        .fetch_one(c)
        .await)?;
    Ok(Some(row))
}

/// Queues `settlement.created` for the merchant (the outbox, no payment), in `tx`.
pub async fn enqueue_created(
    tx: &mut Tx,
    s: &SettlementRow,
    body: &Value,
    event_id: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    exec_tx!(tx, c => sqlx::query(
        "INSERT INTO outbox (id, merchant_id, payment_id, seq, type, body, status, next_attempt_at, created_at) \
         VALUES ($1, $2, NULL, 0, 'settlement.created', $3, 'pending', $4, $5)",
    )
    .bind(event_id)
    .bind(&s.merchant_id)
    .bind(body.to_string())
    .bind(now)
    .bind(now)
    .execute(c)
    .await)?;
    Ok(())
}

/// Settlements inside `scope` (of one merchant of it when `merchant_id` is given), newest
/// period first.
pub async fn list(
    db: &Db,
    scope: &Scope,
    merchant_id: Option<&str>,
    limit: i64,
) -> Result<Vec<SettlementRow>, sqlx::Error> {
    let (kind, value) = scope.sql_parts();
    let vis = crate::db::scope::visible("merchant_id", 1);
    let sql = format!(
        "SELECT {SETTLEMENT_COLS} FROM settlements WHERE {vis} AND ($3 = '' OR merchant_id = $3) \
         ORDER BY period_start DESC, merchant_id LIMIT $4"
    );
    on_db!(db, c => sqlx::query_as(&sql)
        .bind(kind)
        .bind(value)
        .bind(merchant_id.unwrap_or(""))
        .bind(limit)
        .fetch_all(c)
        .await)
}

/// One page of settlements inside `scope` (of one merchant of it when `merchant_id` is given),
/// newest period first and then by id, starting after `after` (`(period_start, id)` of the
/// previous page's last settlement): a keyset, so pages stay stable while new ones are made.
pub async fn page(
    db: &Db,
    scope: &Scope,
    merchant_id: Option<&str>,
    after: Option<(&str, &str)>,
    limit: i64,
) -> Result<Vec<SettlementRow>, sqlx::Error> {
    let (kind, value) = scope.sql_parts();
    let vis = crate::db::scope::visible("merchant_id", 1);
    let (after_period, after_id) = after.unwrap_or(("", ""));
    let sql = format!(
        "SELECT {SETTLEMENT_COLS} FROM settlements WHERE {vis} AND ($3 = '' OR merchant_id = $3) \
         AND ($4 = '' OR period_start < $4 OR (period_start = $4 AND id < $5)) \
         ORDER BY period_start DESC, id DESC LIMIT $6"
    );
    on_db!(db, c => sqlx::query_as(&sql)
        .bind(kind)
        .bind(value)
        .bind(merchant_id.unwrap_or(""))
        .bind(after_period)
        .bind(after_id)
        .bind(limit)
        .fetch_all(c)
        .await)
}

pub async fn get(db: &Db, id: &str) -> Result<Option<SettlementRow>, sqlx::Error> {
    let sql = format!("SELECT {SETTLEMENT_COLS} FROM settlements WHERE id = $1");
    on_db!(db, c => sqlx::query_as(&sql).bind(id).fetch_optional(c).await)
}

/// The settlement `id` if its merchant is inside `scope` (else `None`, as for an unknown id).
pub async fn get_in(
    db: &Db,
    scope: &Scope,
    id: &str,
) -> Result<Option<SettlementRow>, sqlx::Error> {
    crate::db::scope::row_in(db, "settlements", SETTLEMENT_COLS, "merchant_id", scope, id).await
}
