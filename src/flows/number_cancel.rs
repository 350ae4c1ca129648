//! Cancel (取消) of an unpaid konbini / Pay-easy number by the merchant: the institution that
//! issued it stops it first (KOMOJU: `POST /api/v1/payments/{id}/cancel`), then the payment
//! ends as `expired` — exactly what a number cancelled at the institution becomes
//! (`flows::processor_webhooks`), so the merchant sees one outcome for both.

use crate::connectors::konbini::{CancelRequest, ConnectorError, ALREADY_PAID};
use crate::context::Ctx;
use crate::db::payments::{self, PaymentRow};
use crate::domain::konbini::{NumberAction, NumberStatus};
use crate::flows::error::{FlowError, FlowResult, Refused};
use crate::flows::konbini::{apply_action, target_of, ActionError};

fn refused(kind: Refused, code: &'static str, message: impl Into<String>) -> FlowError {
    FlowError::refused(kind, code, message)
}

/// Cancels the unpaid number `payment_id`.
pub async fn cancel(state: &Ctx, payment_id: &str, actor: &str) -> FlowResult<PaymentRow> {
    let p = payments::get(&state.db, payment_id)
        .await?
        .ok_or_else(|| refused(Refused::NotFound, "payment_not_found", "no such payment"))?;
    let target = target_of(&p).ok_or_else(|| {
        refused(
            Refused::NotFound,
            "payment_not_found",
            "not a number payment",
        )
    })?;
    if p.status.number() != Some(NumberStatus::AwaitingPayment) {
        return Err(refused(
            Refused::Conflict,
            "invalid_transition",
            format!("a {} number cannot be cancelled", p.status),
        ));
    }
    let merchant = crate::db::merchants::get(&state.db, &p.merchant_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("payment {} has no merchant", p.id))?;
    let conn = crate::flows::merchant_connectors(state, &merchant)
        .await?
        .number_for(&p.connector_id())
        .ok_or_else(|| {
            refused(
                Refused::Upstream,
                "connector_error",
                "the institution that issued the number is not available",
            )
        })?;
    let _ = target;
    let req = CancelRequest {
        payment_id: p.id.clone(),
        mode: merchant.mode(),
        connector_ref: p.connector_ref.clone().unwrap_or_default(),
    };
    conn.cancel(&req).await.map_err(|e| match e {
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
    })?;
    // Expired now, whatever our stored deadline says: the number can no longer be paid.
    let now = state
        .now_ms()
        .max(p.deadline_at.unwrap_or(0).saturating_add(1));
    match apply_action(
        &state.db,
        &p.id,
        NumberAction::Expire { now_ms: now },
        actor,
        state.now_ms(),
    )
    .await
    {
        Ok(row) => {
            state.wake_notifier();
            Ok(row)
        }
        Err(ActionError::Db(e)) => Err(FlowError::Db(e)),
        // A webhook got there first (paid or expired): report the payment as it now is.
        Err(e) => {
            tracing::info!(payment = %p.id, error = %e, "number cancel raced another change");
            Err(refused(
                Refused::Conflict,
                "concurrent_change",
                "the payment changed meanwhile",
            ))
        }
    }
}
