//! Cancel (取消) of an unpaid konbini / Pay-easy number or bank-transfer account by the merchant:
//! the cancel is first claimed as a pending operation (committed), then the institution that
//! issued the number stops it, outside any transaction (KOMOJU: `POST /api/v1/payments/{id}/
//! cancel`, idempotency key `<payment id>:cancel`), then the payment ends as `expired` in the
//! transaction that finishes the operation — exactly what a number cancelled at the institution
//! becomes (`flows::processor_webhooks`), so the merchant sees one outcome for both. A cancel
//! whose outcome was never recorded is finished by [`resume`].

use std::sync::Arc;

use crate::connectors::konbini::{CancelRequest, ConnectorError, NumberConnector, ALREADY_PAID};
use crate::connectors::registry::Registry;
use crate::context::Ctx;
use crate::db::merchants::MerchantRow;
use crate::db::operations::{self, OpKind, Operation};
use crate::db::payments::{self, PaymentRow};
use crate::db::Db;
use crate::domain::konbini::{NumberAction, NumberStatus};
use crate::flows::error::{FlowError, FlowResult, Refused};
use crate::flows::konbini::{apply_action_in, target_of, ActionError};

fn refused(kind: Refused, code: &'static str, message: impl Into<String>) -> FlowError {
    FlowError::refused(kind, code, message)
}

fn not_unpaid(p: &PaymentRow) -> FlowError {
    refused(
        Refused::Conflict,
        "invalid_transition",
        format!("a {} number cannot be cancelled", p.status),
    )
}

/// Cancels the unpaid number `payment_id`.
pub async fn cancel(state: &Ctx, payment_id: &str, actor: &str) -> FlowResult<PaymentRow> {
    let p = payments::get(&state.db, payment_id)
        .await?
        .filter(|p| target_of(p).is_some())
        .ok_or_else(|| refused(Refused::NotFound, "payment_not_found", "no such payment"))?;
    if p.status.number() != Some(NumberStatus::AwaitingPayment) {
        return Err(not_unpaid(&p));
    }
    let merchant = crate::db::merchants::get(&state.db, &p.merchant_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("payment {} has no merchant", p.id))?;
    let conn = connector_of(&state.connectors, &state.db, &merchant, &p)
        .await?
        .ok_or_else(|| {
            refused(
                Refused::Upstream,
                "connector_error",
                "the institution that issued the number is not available",
            )
        })?;
    // The pending state, committed before the institution is called.
    let op_id = operations::claim(
        &state.db,
        &p.id,
        OpKind::Cancel,
        None,
        actor,
        state.now_ms(),
    )
    .await?
    .ok_or_else(|| {
        refused(
            Refused::Conflict,
            "operation_in_progress",
            "another cancellation of this payment is in progress; retry shortly",
        )
    })?;
    // A webhook may have moved the payment between our read and our claim.
    let p = payments::get(&state.db, &p.id).await?.unwrap_or(p);
    if p.status.number() != Some(NumberStatus::AwaitingPayment) {
        operations::fail(&state.db, &op_id, "refused", state.now_ms()).await?;
        return Err(not_unpaid(&p));
    }
    if let Err(e) = call(conn.as_ref(), &merchant, &p).await {
        operations::fail(&state.db, &op_id, e.code(), state.now_ms()).await?;
        return Err(match e {
            // Paid at the store before we asked: its 速報 is on its way (webhook or sweep).
            ConnectorError::NotCancellable => refused(
                Refused::Conflict,
                ALREADY_PAID,
                "the institution says this number is paid",
            ),
            e => {
                let code = e.code();
                tracing::warn!(payment = %p.id, code, "number cancel refused");
                refused(
                    Refused::Upstream,
                    "connector_error",
                    format!("the institution refused the cancellation ({code})"),
                )
            }
        });
    }
    match record(&state.db, &p, &op_id, actor, state.now_ms()).await {
        Ok(row) => {
            state.wake_notifier();
            Ok(row)
        }
        Err(ActionError::Db(e)) => Err(FlowError::Db(e)),
        // A webhook got there first (paid or expired): report the payment as it now is.
        Err(e) => {
            tracing::info!(payment = %p.id, error = %e, "number cancel raced another change");
            operations::fail(&state.db, &op_id, "not_applicable", state.now_ms()).await?;
            Err(refused(
                Refused::Conflict,
                "concurrent_change",
                "the payment changed meanwhile",
            ))
        }
    }
}

async fn connector_of(
    registry: &Arc<Registry>,
    db: &Db,
    merchant: &MerchantRow,
    p: &PaymentRow,
) -> FlowResult<Option<Arc<dyn NumberConnector>>> {
    Ok(crate::flows::connectors_for(registry, db, merchant)
        .await?
        .number_for(&p.connector_id()))
}

/// The institution's cancel, idempotent under `<payment id>:cancel`.
async fn call(
    conn: &dyn NumberConnector,
    merchant: &MerchantRow,
    p: &PaymentRow,
) -> Result<(), ConnectorError> {
    conn.cancel(&CancelRequest {
        payment_id: p.id.clone(),
        mode: merchant.mode(),
        connector_ref: p.connector_ref.clone().unwrap_or_default(),
    })
    .await
}

/// Finishes the operation and expires the payment in one transaction; an operation already
/// finished (by [`resume`]) records nothing again.
async fn record(
    db: &Db,
    p: &PaymentRow,
    op_id: &str,
    actor: &str,
    now: i64,
) -> Result<PaymentRow, ActionError> {
    let mut tx = db.begin().await?;
    if !operations::finish(&mut tx, op_id, None, now).await? {
        drop(tx);
        return payments::get(db, &p.id).await?.ok_or(ActionError::NotFound);
    }
    // Expired now, whatever our stored deadline says: the number can no longer be paid.
    let expire_at = now.max(p.deadline_at.unwrap_or(0).saturating_add(1));
    let row = apply_action_in(
        &mut tx,
        &p.id,
        NumberAction::Expire { now_ms: expire_at },
        actor,
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(row)
}

/// Finishes a number cancel whose outcome was never recorded (called by
/// `flows::card::resume_operations` for number payments): the institution is asked again under
/// the same idempotency key, then the outcome is recorded once.
pub async fn resume(
    db: &Db,
    registry: &Arc<Registry>,
    o: &Operation,
    p: &PaymentRow,
    merchant: &MerchantRow,
    now: i64,
) -> anyhow::Result<()> {
    if o.kind != OpKind::Cancel || p.status.number() != Some(NumberStatus::AwaitingPayment) {
        operations::fail(db, &o.id, "not_applicable", now).await?;
        return Ok(());
    }
    let Ok(Some(conn)) = connector_of(registry, db, merchant, p).await else {
        operations::fail(db, &o.id, "no_connector", now).await?;
        return Ok(());
    };
    match call(conn.as_ref(), merchant, p).await {
        Ok(()) => {
            if record(db, p, &o.id, &o.actor, now).await.is_err() {
                operations::fail(db, &o.id, "not_applicable", now).await?;
            }
            Ok(())
        }
        Err(e) if e.retryable() => Err(anyhow::anyhow!("connector: {}", e.code())),
        Err(e) => Ok(operations::fail(db, &o.id, e.code(), now).await?),
    }
}
