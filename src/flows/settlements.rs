//! The settlement cut-off (締め): builds each merchant's settlement for every payout period that
//! has ended, from the payout ledger, with its `settlement.created` notification in the same
//! transaction. Run by the `settlements` worker and by `kakehashi settlement cutoff`; running it
//! again for the same day changes nothing (one settlement per merchant and period).

use serde_json::{json, Value};
use time::{Date, Duration};

use crate::db::settlements::{self, EntryRow, NewSettlement, SettlementRow, Terms};
use crate::db::Db;
use crate::domain::payout::{self, jst_date, jst_midnight_ms, ymd};
use crate::domain::scope::Scope;

/// Builds every settlement whose period ended before `day` (a Japan-time date), for every
/// merchant with payout terms. Returns the settlements made now.
pub async fn cutoff(db: &Db, day: Date, now: i64) -> Result<Vec<SettlementRow>, crate::db::Error> {
    let mut made = Vec::new();
    for terms in settlements::all_terms(db).await? {
        made.extend(cutoff_merchant(db, &terms, day, now).await?);
    }
    Ok(made)
}

/// One merchant's cut-off: from the period of its oldest open ledger entry up to the last period
/// that ended before `day`. A settlement takes every open entry before its period's end, so an
/// entry whose transaction committed after its own period was settled joins the next one.
async fn cutoff_merchant(
    db: &Db,
    terms: &Terms,
    day: Date,
    now: i64,
) -> Result<Vec<SettlementRow>, crate::db::Error> {
    let mut made = Vec::new();
    let before = jst_midnight_ms(day);
    // Periods below this date are settled already; the loop only moves forward.
    let mut from: Option<Date> = None;
    while let Some(oldest) = settlements::oldest_open_entry(db, &terms.merchant_id, before).await? {
        let start = match from {
            Some(f) if f > jst_date(oldest) => f,
            _ => jst_date(oldest),
        };
        let period = payout::period_of(terms.cycle, start);
        let next = period.last + Duration::days(1);
        if next > day {
            break;
        }
        let id = crate::util::random_id("stl", 20);
        let new = NewSettlement {
            id: &id,
            merchant_id: &terms.merchant_id,
            cycle: terms.cycle,
            period_start: &ymd(period.first),
            period_end: &ymd(period.last),
            payout_date: &ymd(payout::payout_date(period, terms.payout_delay_days)),
            to_ms: jst_midnight_ms(next),
            settlement_fee: terms.settlement_fee,
        };
        let mut tx = db.begin().await?;
        match settlements::create(&mut tx, &new, now).await? {
            Some(row) => {
                let event_id = crate::util::random_id("evt", 20);
                let body = event_body(&event_id, &row, now);
                settlements::enqueue_created(&mut tx, &row, &body, &event_id, now).await?;
                tx.commit().await?;
                tracing::info!(
                    settlement = %row.id,
                    merchant = %row.merchant_id,
                    period = %row.period_start,
                    net = row.net,
                    "settlement created"
                );
                made.push(row);
            }
            // Settled before (or taken by another instance just now): move on.
            None => tx.commit().await?,
        }
        from = Some(next);
    }
    Ok(made)
}

/// A settlement with what its statement (支払明細書) shows: the merchant's name and every
/// ledger entry the settlement took.
#[derive(Clone, Debug)]
pub struct Statement {
    pub settlement: SettlementRow,
    pub merchant_name: String,
    pub entries: Vec<EntryRow>,
}

/// The settlement `id` if its merchant is inside `scope`, with its entries; `None` for an unknown
/// id and for one outside the scope alike (callers answer "not found" to both, so ids of other
/// merchants' settlements tell nothing). The console and the API read it here.
pub async fn statement(
    db: &Db,
    scope: &Scope,
    id: &str,
) -> Result<Option<Statement>, crate::db::Error> {
    let Some(s) = settlements::get_in(db, scope, id).await? else {
        return Ok(None);
    };
    let entries = settlements::entries_of_settlement(db, &s.id).await?;
    let merchant_name = crate::db::merchants::get(db, &s.merchant_id)
        .await?
        .map(|m| m.name)
        .unwrap_or_default();
    Ok(Some(Statement {
        settlement: s,
        merchant_name,
        entries,
    }))
}

/// The `settlement.created` notification (docs/notifications.md). `amount` is the net payout,
/// so compatibility-mode receivers get it too.
pub fn event_body(event_id: &str, s: &SettlementRow, at: i64) -> Value {
    json!({
        "id": event_id,
        "type": "settlement.created",
        "created_at": crate::util::rfc3339_jst(at),
        "data": {
            "settlement_id": s.id,
            "merchant_id": s.merchant_id,
            "cycle": s.cycle,
            "period_start": s.period_start,
            "period_end": s.period_end,
            "payout_date": s.payout_date,
            "payment_count": s.payment_count,
            "gross": s.gross,
            "refunds": s.refunds,
            "fees": s.fees,
            "settlement_fee": s.settlement_fee,
            "fee_tax": s.fee_tax,
            "stamp_duty": s.stamp_duty,
            "net": s.net,
            "amount": s.net,
        }
    })
}

/// The `settlements` worker: runs the cut-off once per Japan-time day, at its first tick on
/// that day (ticks every `interval`, `KAKEHASHI_SWEEP_INTERVAL_MS`; the check between runs reads
/// only the clock), so a period is settled shortly after midnight JST of the day after it ends.
/// A failed run is tried again at the next tick. Every instance may run it: the unique period
/// key keeps one settlement per period. Wakes the notification worker when it made any.
pub async fn run_cutoff(
    db: Db,
    wake: std::sync::Arc<tokio::sync::Notify>,
    clock: std::sync::Arc<dyn crate::context::Clock>,
    interval: std::time::Duration,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut tick = tokio::time::interval(interval);
    let mut done: Option<Date> = None;
    loop {
        tokio::select! {
            biased;
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = clock.now_ms();
        let today = jst_date(now);
        if done == Some(today) {
            continue;
        }
        match cutoff(&db, today, now).await {
            Ok(made) => {
                done = Some(today);
                if !made.is_empty() {
                    tracing::info!(count = made.len(), "settlement cut-off");
                    wake.notify_one();
                }
            }
            Err(e) => tracing::error!(error = %e, "settlement cut-off failed"),
        }
    }
}
