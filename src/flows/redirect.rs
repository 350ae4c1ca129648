//! Pieces shared by the redirect methods (bank net, carrier billing): connector secrets, finding
//! a payment by its connector session, the signed "back to the shop" link and the result page.

use crate::connectors::registry::MerchantConnectors;
use crate::context::Ctx;
use crate::db::checkouts::CheckoutRow;
use crate::db::payments::PaymentRow;
use crate::device::ViewOverride;
use crate::domain::payment::PaymentStatus;
use crate::domain::processor::ConnectorId;
use crate::domain::reason::Reason;
use crate::domain::CheckoutStatus;
use crate::domain::Mode;
use crate::flows::error::{FlowError, FlowResult};

/// The sandbox bank and carrier pages exist only for sandbox payments of test-mode merchants:
/// for anything else they answer 404, as if the session did not exist.
pub async fn ensure_sandbox_payment(state: &Ctx, p: &PaymentRow) -> FlowResult<()> {
    let merchant = crate::db::merchants::get(&state.db, &p.merchant_id).await?;
    let test = merchant.is_some_and(|m| m.mode() == Mode::Test);
    if !test || p.connector_id() != ConnectorId::Sandbox {
        tracing::warn!(payment = %p.id, "sandbox page refused for a non-sandbox payment");
        return Err(FlowError::shopper(Reason::NotFound));
    }
    Ok(())
}

/// The payment a bank/carrier return names (it must belong to the session's checkout) and its
/// merchant's connectors: the return is verified by the connector that started the payment.
pub async fn returning_payment(
    state: &Ctx,
    checkout_id: &str,
    payment_id: &str,
) -> FlowResult<(PaymentRow, MerchantConnectors)> {
    let p = crate::db::payments::get(&state.db, payment_id)
        .await?
        .filter(|p| p.checkout_id == checkout_id)
        .ok_or(FlowError::shopper(Reason::ReturnRejected))?;
    let merchant = crate::db::merchants::get(&state.db, &p.merchant_id)
        .await?
        .ok_or(FlowError::shopper(Reason::ReturnRejected))?;
    let connectors = crate::flows::merchant_connectors(state, &merchant).await?;
    Ok((p, connectors))
}

/// The payment a connector session belongs to (the sandbox pages are addressed by session).
pub use crate::db::payments::by_connector_ref as by_session;

/// Records the connector session (and details) on a payment.
pub use crate::db::payments::attach_session;

/// The connector refused to start a payment whose pending state is already committed: the
/// payment fails (its event and notification carry the connector's code) and the checkout
/// reopens, so the shopper can pay another way.
pub async fn start_failed(
    state: &Ctx,
    p: &PaymentRow,
    to_status: impl Into<PaymentStatus>,
    event: &str,
    code: &str,
) -> FlowResult<()> {
    let mut change = crate::db::payments::Change::new(to_status, event, "system");
    change.data = serde_json::json!({ "reason": "connector_error", "error": code });
    let mut tx = state.db.begin().await?;
    crate::db::payments::transition(&mut tx, p, &change, state.now_ms())
        .await
        .map_err(payment_error)?;
    crate::db::payments::set_checkout_status(
        &mut tx,
        &p.checkout_id,
        CheckoutStatus::Open,
        state.now_ms(),
    )
    .await?;
    tx.commit().await?;
    state.wake_notifier();
    Ok(())
}

/// A fresh session URL prefix for a checkout (`/pay/{token}`), for pages reached without one
/// (the sandbox pages, which only know their connector session).
pub fn fresh_session_path(state: &Ctx, checkout_id: &str) -> (String, String) {
    let token = crate::flows::checkout::new_session(state, checkout_id, ViewOverride::Auto);
    (format!("/pay/{token}"), token)
}

/// The checkout's `return_url` with the signed result appended (the one convention for every
/// method: [`crate::flows::return_link`]).
pub async fn return_link(
    state: &Ctx,
    checkout: &CheckoutRow,
    payment: &PaymentRow,
) -> FlowResult<String> {
    Ok(crate::flows::return_link(&state.db, &state.keys, checkout, Some(payment)).await?)
}

/// Maps a payments-store error for the shopper: a lost race or a second live payment means the
/// checkout is already being (or has been) paid.
pub fn payment_error(e: crate::db::payments::PaymentError) -> crate::flows::error::FlowError {
    use crate::db::payments::PaymentError;
    match e {
        PaymentError::AlreadyLive | PaymentError::Conflict => {
            crate::flows::error::FlowError::shopper(Reason::CheckoutClosed)
        }
        PaymentError::Db(e) => crate::flows::error::FlowError::Db(e),
    }
}
