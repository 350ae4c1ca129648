//! Carrier payments served by a processor (KOMOJU): its webhooks, refunds through it, and the
//! reconciliation sweep that asks it about payments whose webhook never came. Processor-served
//! konbini / Pay-easy numbers are swept here too (their webhooks are applied in
//! `flows::processor_webhooks`).

use std::sync::Arc;

use serde_json::json;

use crate::connectors::carrier::{CancelRequest, CarrierConnector, CarrierOutcome};
use crate::connectors::konbini::IssuedNumber;
use crate::connectors::registry::Registry;
use crate::connectors::webhook::{Effect, WebhookEvent};
use crate::context::Ctx;
use crate::db::payments::{self, Change, PaymentError, PaymentRow};
use crate::db::{Db, Tx};
use crate::domain::carrier::{self, Carrier, CarrierAction, CarrierStatus};
use crate::domain::konbini::{NumberAction, NumberStatus};
use crate::domain::payment::PaymentStatus;
use crate::flows::carrier::{apply_outcome_in, void, Applied};
use crate::flows::error::{FlowError, FlowResult, Refused};

/// A carrier payment waiting this long at its processor is asked about by the sweep.
pub const RECONCILE_AFTER_MS: i64 = 10 * 60 * 1000;
/// A carrier payment still waiting this long is given up: cancelled at the processor (so the
/// shopper can no longer finish it there) and marked cancelled here.
pub const ABANDON_AFTER_MS: i64 = 60 * 60 * 1000;
/// How many payments one sweep looks at, per kind.
const BATCH: i64 = 200;

/// The carrier's reference of a completed charge.
fn txn_of(p: &PaymentRow) -> Option<String> {
    p.details_json()["carrier_txn_id"]
        .as_str()
        .map(str::to_owned)
        .or_else(|| p.connector_ref.clone())
}

/// Applies a verified processor event to a carrier payment inside the webhook's transaction.
/// Returns the new status (`None`: nothing to change) and a charge to void once committed.
pub async fn apply_event_in(
    tx: &mut Tx,
    p: &PaymentRow,
    c: Carrier,
    e: &WebhookEvent,
    now: i64,
) -> Result<(Option<PaymentStatus>, Option<CancelRequest>), PaymentError> {
    let outcome = match e.effect {
        Effect::Paid { .. } => CarrierOutcome::Approved {
            carrier_txn_id: e
                .payment_ref
                .clone()
                .or_else(|| p.connector_ref.clone())
                .unwrap_or_default(),
            subscription_ref: None,
        },
        Effect::Failed => CarrierOutcome::Declined,
        Effect::Expired | Effect::Cancelled => CarrierOutcome::Cancelled,
        Effect::Refunded => {
            return Ok((
                refunded_in(tx, p, "processor", now)
                    .await?
                    .map(|r| r.status),
                None,
            ));
        }
        Effect::Ignored => return Ok((None, None)),
    };
    Ok(
        match apply_outcome_in(tx, p, c, &outcome, "processor", now).await? {
            Some(Applied { row, void }) => (Some(row.status), void),
            None => (None, None),
        },
    )
}

/// Completed → refunded (`payment.refunded`); `None` when the payment is not completed.
async fn refunded_in(
    tx: &mut Tx,
    p: &PaymentRow,
    actor: &str,
    now: i64,
) -> Result<Option<PaymentRow>, PaymentError> {
    let Some(to) = p
        .status
        .carrier()
        .and_then(|from| carrier::apply(from, CarrierAction::Refund).ok())
    else {
        return Ok(None);
    };
    let mut change = Change::new(to, to.event_type().unwrap_or("payment.refunded"), actor);
    // Carriers take a charge back whole.
    change.amount = Some(p.amount);
    change.refunded_amount = Some(p.amount);
    payments::transition(tx, p, &change, now).await.map(Some)
}

/// Voids, after the webhook's commit, a charge the processor approved and our limit refused.
pub async fn void_for_event(state: &Ctx, p: &PaymentRow, undo: &CancelRequest) {
    match connector_of(&state.db, &state.connectors, p).await {
        Ok(conn) => void(conn.as_ref(), undo, &p.id).await,
        Err(e) => tracing::error!(payment = %p.id, error = %e, "no connector to void a charge"),
    }
}

async fn connector_of(
    db: &Db,
    registry: &Arc<Registry>,
    p: &PaymentRow,
) -> anyhow::Result<Arc<dyn CarrierConnector>> {
    let m = crate::db::merchants::get(db, &p.merchant_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("payment {} has no merchant", p.id))?;
    crate::flows::connectors_for(registry, db, &m)
        .await?
        .carrier_for(&p.connector_id())
        .ok_or_else(|| anyhow::anyhow!("the connector of payment {} is not available", p.id))
}

/// 取消 (refund) of a completed carrier payment, whole (carriers take back the full charge): the
/// connector that served it undoes the charge first, with a key derived from the charge so a
/// retry is harmless; then the payment becomes `refunded` and the merchant is notified.
pub async fn refund(
    state: &Ctx,
    payment_id: &str,
    amount: Option<i64>,
    actor: &str,
) -> FlowResult<PaymentRow> {
    let p = payments::get(&state.db, payment_id)
        .await?
        .ok_or(FlowError::refused(
            Refused::NotFound,
            "payment_not_found",
            "no such payment",
        ))?;
    let c = Carrier::of(p.method).ok_or(FlowError::refused(
        Refused::NotFound,
        "payment_not_found",
        "not a carrier payment",
    ))?;
    if p.status.carrier() != Some(CarrierStatus::Completed) {
        return Err(FlowError::refused(
            Refused::Conflict,
            "invalid_transition",
            format!("a {} payment cannot be refunded", p.status),
        ));
    }
    if amount.is_some_and(|a| a != p.amount) {
        return Err(FlowError::refused(
            Refused::Conflict,
            "partial_refund_unsupported",
            "carrier billing is refunded whole",
        ));
    }
    let conn = connector_of(&state.db, &state.connectors, &p)
        .await
        .map_err(|e| {
            tracing::error!(payment = %p.id, error = %e, "carrier refund");
            FlowError::refused(
                Refused::Upstream,
                "connector_error",
                "the processor is not available",
            )
        })?;
    let txn = txn_of(&p).ok_or_else(|| anyhow::anyhow!("payment {} has no charge", p.id))?;
    conn.cancel(&CancelRequest::Charge {
        carrier: c,
        carrier_txn_id: txn,
        amount: p.amount,
    })
    .await
    .map_err(|e| {
        tracing::warn!(payment = %p.id, code = e.code(), "carrier refund refused");
        FlowError::refused(
            Refused::Upstream,
            "connector_error",
            format!("the processor refused the refund ({})", e.code()),
        )
    })?;
    let mut tx = state.db.begin().await?;
    let row = match refunded_in(&mut tx, &p, actor, state.now_ms()).await {
        Ok(Some(row)) => row,
        Ok(None) => {
            return Err(FlowError::refused(
                Refused::Conflict,
                "invalid_transition",
                "not completed",
            ))
        }
        // A webhook reporting the same refund won the race: the refund is done either way.
        Err(PaymentError::Conflict) => {
            return Ok(payments::get(&state.db, payment_id).await?.unwrap_or(p));
        }
        Err(PaymentError::Db(e)) => return Err(FlowError::Db(e)),
        Err(PaymentError::AlreadyLive) => {
            return Err(anyhow::anyhow!("refund: already live").into())
        }
    };
    tx.commit().await?;
    state.wake_notifier();
    Ok(row)
}

/// The reconciliation sweep (as `flows::client_card::reconcile` does for Stripe): processor
/// carrier payments still waiting after [`RECONCILE_AFTER_MS`] are retrieved and their outcome
/// applied (a still-pending one older than [`ABANDON_AFTER_MS`] is cancelled at the processor
/// and here); processor numbers still awaiting payment are asked for payments when
/// `numbers` is set (they wait for days, so the caller asks less often). Returns how many
/// payments changed.
pub async fn reconcile(
    db: &Db,
    registry: &Arc<Registry>,
    now: i64,
    numbers: bool,
) -> anyhow::Result<usize> {
    let mut n = 0;
    let carriers: Vec<&str> = Carrier::all().iter().map(|c| c.code()).collect();
    let due = crate::db::reconcile::waiting_at_processors(
        db,
        &carriers,
        CarrierStatus::AwaitingAuth.code(),
        now - RECONCILE_AFTER_MS,
        BATCH,
    )
    .await?;
    for p in due {
        match reconcile_carrier(db, registry, &p, now).await {
            Ok(true) => n += 1,
            Ok(false) => {}
            Err(e) => tracing::warn!(payment = %p.id, error = %e, "carrier reconciliation"),
        }
    }
    if numbers {
        let due = crate::db::reconcile::waiting_at_processors(
            db,
            &["konbini", "payeasy", "bank_transfer"],
            NumberStatus::AwaitingPayment.code(),
            now,
            BATCH,
        )
        .await?;
        for p in due {
            match reconcile_number(db, registry, &p, now).await {
                Ok(true) => n += 1,
                Ok(false) => {}
                Err(e) => tracing::warn!(payment = %p.id, error = %e, "number reconciliation"),
            }
        }
    }
    Ok(n)
}

async fn reconcile_carrier(
    db: &Db,
    registry: &Arc<Registry>,
    p: &PaymentRow,
    now: i64,
) -> anyhow::Result<bool> {
    let c = Carrier::of(p.method).ok_or_else(|| anyhow::anyhow!("method {}", p.method))?;
    let conn = connector_of(db, registry, p).await?;
    let Some(session) = p.connector_ref.as_deref() else {
        // The start never reached the processor's answer; the payment is abandoned below.
        return abandon(db, p, now, None).await;
    };
    let Some(r) = conn
        .retrieve(session)
        .await
        .map_err(|e| anyhow::anyhow!("retrieve: {}", e.code()))?
    else {
        return Ok(false);
    };
    if r.payment_id.as_deref() != Some(p.id.as_str()) || r.amount != p.amount {
        anyhow::bail!("the processor's payment does not match ours");
    }
    if r.outcome == CarrierOutcome::Pending {
        return abandon(db, p, now, Some((conn.as_ref(), c, session))).await;
    }
    let mut tx = db.begin().await?;
    let applied = match apply_outcome_in(&mut tx, p, c, &r.outcome, "system:reconcile", now).await {
        Ok(Some(a)) => a,
        Ok(None) | Err(PaymentError::Conflict) => return Ok(false),
        Err(e) => return Err(anyhow::anyhow!("{e}")),
    };
    let row = applied.row.clone();
    // Refunded at the processor since it completed (its refund webhook was lost too).
    if r.refunded && row.status == CarrierStatus::Completed {
        refunded_in(&mut tx, &row, "system:reconcile", now).await?;
    }
    tx.commit().await?;
    if let Some(undo) = &applied.void {
        void(conn.as_ref(), undo, &p.id).await;
    }
    Ok(true)
}

/// A payment still waiting after [`ABANDON_AFTER_MS`]: stopped at the processor first (if that
/// is refused, the next sweep looks again), then cancelled here.
async fn abandon(
    db: &Db,
    p: &PaymentRow,
    now: i64,
    at: Option<(&dyn CarrierConnector, Carrier, &str)>,
) -> anyhow::Result<bool> {
    if p.updated_at >= now - ABANDON_AFTER_MS {
        return Ok(false);
    }
    if let Some((conn, c, session)) = at {
        conn.cancel(&CancelRequest::Charge {
            carrier: c,
            carrier_txn_id: session.to_owned(),
            amount: p.amount,
        })
        .await
        .map_err(|e| anyhow::anyhow!("cancel at the processor: {}", e.code()))?;
    }
    let to = carrier::apply(CarrierStatus::AwaitingAuth, CarrierAction::ShopperCancel)?;
    let mut change = Change::new(
        to,
        to.event_type().unwrap_or("payment.cancelled"),
        "system:reconcile",
    );
    change.data = json!({ "reason": "abandoned" });
    let mut tx = db.begin().await?;
    match payments::transition(&mut tx, p, &change, now).await {
        Ok(_) => {}
        Err(PaymentError::Conflict) => return Ok(false),
        Err(e) => return Err(anyhow::anyhow!("{e}")),
    }
    tx.commit().await?;
    Ok(true)
}

async fn reconcile_number(
    db: &Db,
    registry: &Arc<Registry>,
    p: &PaymentRow,
    now: i64,
) -> anyhow::Result<bool> {
    let (Some(target), Some(r)) = (crate::flows::konbini::target_of(p), p.connector_ref.clone())
    else {
        return Ok(false);
    };
    let m = crate::db::merchants::get(db, &p.merchant_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("payment {} has no merchant", p.id))?;
    let Some(conn) = crate::flows::connectors_for(registry, db, &m)
        .await?
        .number_for(&p.connector_id())
    else {
        return Ok(false);
    };
    let number = IssuedNumber {
        target,
        receipt_no: None,
        customer_no: None,
        confirm_no: None,
        institution_no: None,
        payment_url: None,
        deadline_ms: p.deadline_at.unwrap_or(0),
        connector_ref: r,
        account: None,
    };
    let actions = conn
        .query(&number)
        .await
        .map_err(|e| anyhow::anyhow!("query: {}", e.code()))?;
    let mut changed = false;
    for a in actions {
        if let NumberAction::Paid { .. } = a {
            match crate::flows::konbini::apply_action(db, &p.id, a, "system:reconcile", now).await {
                Ok(_) => changed = true,
                Err(e) => {
                    tracing::info!(payment = %p.id, error = %e, "reconciled number not applied")
                }
            }
        }
    }
    Ok(changed)
}
