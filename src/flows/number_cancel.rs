//! Cancel (取消) of an unpaid konbini / Pay-easy number by the merchant: the institution that
//! issued it stops it first (KOMOJU: `POST /api/v1/payments/{id}/cancel`), then the payment
//! ends as `expired` — exactly what a number cancelled at the institution becomes
//! (`flows::processor_webhooks`), so the merchant sees one outcome for both.

use axum::http::StatusCode;

use crate::connectors::konbini::{IssuedNumber, ALREADY_PAID};
use crate::context::Ctx;
use crate::db::payments::{self, PaymentRow};
use crate::domain::konbini::{NumberAction, NumberStatus};
use crate::error::{AppError, AppResult};
use crate::flows::konbini::{apply_action, target_of, ActionError};

fn refused(status: StatusCode, code: &'static str, message: impl Into<String>) -> AppError {
    AppError::api(status, code, message)
}

/// Cancels the unpaid number `payment_id`.
pub async fn cancel(state: &Ctx, payment_id: &str, actor: &str) -> AppResult<PaymentRow> {
    let p = payments::get(&state.db, payment_id).await?.ok_or_else(|| {
        refused(
            StatusCode::NOT_FOUND,
            "payment_not_found",
            "no such payment",
        )
    })?;
    let target = target_of(&p).ok_or_else(|| {
        refused(
            StatusCode::NOT_FOUND,
            "payment_not_found",
            "not a number payment",
        )
    })?;
    if NumberStatus::parse(&p.status) != Some(NumberStatus::AwaitingPayment) {
        return Err(refused(
            StatusCode::CONFLICT,
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
                StatusCode::BAD_GATEWAY,
                "connector_error",
                "the institution that issued the number is not available",
            )
        })?;
    let number = IssuedNumber {
        target,
        receipt_no: None,
        customer_no: None,
        confirm_no: None,
        institution_no: None,
        payment_url: None,
        deadline_ms: p.deadline_at.unwrap_or(0),
        connector_ref: p.connector_ref.clone().unwrap_or_default(),
    };
    conn.cancel(&number).await.map_err(|e| match e.code() {
        // Paid at the store before we asked: its 速報 is on its way (webhook or sweep).
        ALREADY_PAID => refused(
            StatusCode::CONFLICT,
            ALREADY_PAID,
            "the institution says this number is paid",
        ),
        code => {
            tracing::warn!(payment = %p.id, code, "number cancel refused");
            refused(
                StatusCode::BAD_GATEWAY,
                "connector_error",
                format!("the institution refused the cancellation ({code})"),
            )
        }
    })?;
    // Expired now, whatever our stored deadline says: the number can no longer be paid.
    let now = crate::util::now_ms().max(p.deadline_at.unwrap_or(0).saturating_add(1));
    match apply_action(
        &state.db,
        &p.id,
        NumberAction::Expire { now_ms: now },
        actor,
    )
    .await
    {
        Ok(row) => {
            state.wake_notifier();
            Ok(row)
        }
        Err(ActionError::Db(e)) => Err(AppError::Db(e)),
        // A webhook got there first (paid or expired): report the payment as it now is.
        Err(e) => {
            tracing::info!(payment = %p.id, error = %e, "number cancel raced another change");
            Err(refused(
                StatusCode::CONFLICT,
                "concurrent_change",
                "the payment changed meanwhile",
            ))
        }
    }
}
