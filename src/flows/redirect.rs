//! Pieces shared by the redirect methods (bank net, carrier billing): connector secrets, finding
//! a payment by its connector session, the signed "back to the shop" link and the result page.

use serde_json::Value;

use crate::checkout::Opened;
use crate::connectors::registry::MerchantConnectors;
use crate::db::checkouts::CheckoutRow;
use crate::db::{Db, Tx};
use crate::device::{Device, ViewOverride};
use crate::domain::processor::ConnectorId;
use crate::domain::CheckoutStatus;
use crate::domain::Mode;
use crate::error::{AppError, AppResult, Reason};
use crate::pages::{Chrome, FpPayResult, OrderView, PayResult, WebPayResult};
use crate::payments::{PaymentRow, COLS};
use crate::render::page;
use crate::state::AppState;
use crate::{exec_tx, on_db};
use axum::response::Response;

/// The sandbox bank and carrier pages exist only for sandbox payments of test-mode merchants:
/// for anything else they answer 404, as if the session did not exist.
pub async fn ensure_sandbox_payment(state: &AppState, p: &PaymentRow) -> AppResult<()> {
    let merchant = crate::db::merchants::get(&state.db, &p.merchant_id).await?;
    let test = merchant.is_some_and(|m| m.mode() == Mode::Test);
    if !test || p.connector_id() != ConnectorId::Sandbox {
        tracing::warn!(payment = %p.id, "sandbox page refused for a non-sandbox payment");
        return Err(AppError::shopper(Reason::NotFound));
    }
    Ok(())
}

/// The payment a bank/carrier return names (it must belong to the session's checkout) and its
/// merchant's connectors: the return is verified by the connector that started the payment.
pub async fn returning_payment(
    state: &AppState,
    checkout_id: &str,
    payment_id: &str,
) -> AppResult<(PaymentRow, MerchantConnectors)> {
    let p = crate::payments::get(&state.db, payment_id)
        .await?
        .filter(|p| p.checkout_id == checkout_id)
        .ok_or(AppError::shopper(Reason::ReturnRejected))?;
    let merchant = crate::db::merchants::get(&state.db, &p.merchant_id)
        .await?
        .ok_or(AppError::shopper(Reason::ReturnRejected))?;
    let connectors = crate::flows::merchant_connectors(state, &merchant).await?;
    Ok((p, connectors))
}

/// The payment a connector session belongs to (the sandbox pages are addressed by session).
pub async fn by_session(
    db: &Db,
    method: &str,
    session: &str,
) -> Result<Option<PaymentRow>, sqlx::Error> {
    let sql = format!("SELECT {COLS} FROM payments WHERE connector_ref = $1 AND method = $2");
    on_db!(db, c => sqlx::query_as(&sql).bind(session).bind(method).fetch_optional(c).await)
}

/// Records the connector session (and details) on a payment in the transaction that created it:
/// the session id only exists once the connector has seen our payment id.
pub async fn attach_session(
    tx: &mut Tx,
    payment_id: &str,
    session: &str,
    details: &Value,
) -> Result<(), sqlx::Error> {
    exec_tx!(tx, c => sqlx::query("UPDATE payments SET connector_ref = $1, details = $2 WHERE id = $3")
        .bind(session)
        .bind(details.to_string())
        .bind(payment_id)
        .execute(c)
        .await)?;
    Ok(())
}

/// A fresh session URL prefix for a checkout (`/pay/{token}`), for pages reached without one
/// (the sandbox pages, which only know their connector session).
pub fn fresh_session_path(state: &AppState, checkout_id: &str) -> (String, String) {
    let token = crate::checkout::new_session(state, checkout_id, ViewOverride::Auto);
    (format!("/pay/{token}"), token)
}

/// The checkout's `return_url` with the signed result appended (the one convention for every
/// method: [`crate::flows::return_link`]).
pub async fn return_link(
    state: &AppState,
    checkout: &CheckoutRow,
    payment: &PaymentRow,
) -> AppResult<String> {
    Ok(crate::flows::return_link(&state.db, &state.keys, checkout, Some(payment)).await?)
}

/// Renders the result page of a redirect payment for the shopper's device.
pub fn render_result(
    state: &AppState,
    device: Device,
    o: &Opened,
    r: PayResult,
) -> AppResult<Response> {
    let c = Chrome::new(
        state,
        device,
        &o.merchant.name,
        &o.merchant.theme,
        &o.checkout.lang,
    );
    let order = OrderView::new(
        &o.checkout.order_id,
        &o.checkout.item_name,
        o.checkout.amount,
    );
    match device {
        Device::FeaturePhone => page(device, &FpPayResult { c, order, r }),
        _ => page(device, &WebPayResult { c, order, r }),
    }
}

/// Maps a payments-store error for the shopper: a lost race or a second live payment means the
/// checkout is already being (or has been) paid.
pub fn payment_error(e: crate::payments::PaymentError) -> crate::error::AppError {
    use crate::payments::PaymentError;
    match e {
        PaymentError::AlreadyLive | PaymentError::Conflict => {
            crate::error::AppError::shopper(crate::error::Reason::CheckoutClosed)
        }
        PaymentError::Db(e) => crate::error::AppError::Db(e),
    }
}

/// The background jobs of the redirect methods: bank-net timeouts and monthly carrier charges.
/// Runs until `stop` is cancelled; every instance may run it (each change is conditional).
pub async fn run_jobs(
    db: Db,
    registry: std::sync::Arc<crate::connectors::registry::Registry>,
    wake: std::sync::Arc<tokio::sync::Notify>,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(30));
    loop {
        // Stops between runs, never inside one (a carrier charge is not cut off halfway).
        tokio::select! {
            biased;
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = crate::util::now_ms();
        match crate::flows::bank::timeout_due(&db, now).await {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(count = n, "bank-net payments timed out");
                wake.notify_one();
            }
            Err(e) => tracing::error!(error = %e, "bank-net timeout job failed"),
        }
        match crate::flows::carrier::charge_due_subscriptions(&db, &registry, now).await {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(count = n, "continuous carrier charges made");
                wake.notify_one();
            }
            Err(e) => tracing::error!(error = %e, "continuous carrier billing job failed"),
        }
    }
}

/// What the result page of a bank/carrier payment shows, from the payment as stored: reloading
/// the page (or reaching it twice) always tells the truth and changes nothing.
pub async fn result_view(
    state: &AppState,
    o: &Opened,
    token: &str,
    p: &PaymentRow,
    method_name: &'static str,
) -> AppResult<PayResult> {
    let ok = matches!(p.status.as_str(), "paid" | "completed");
    let waiting = matches!(p.status.as_str(), "awaiting_bank" | "awaiting_auth");
    let details = p.details_json();
    let message = match (p.status.as_str(), details["failure_reason"].as_str()) {
        (_, Some("carrier_monthly_limit_exceeded")) => {
            let remaining = details["limit_remaining"].as_i64().unwrap_or(0);
            crate::domain::carrier::Carrier::parse(&p.method)
                .map(|c| crate::flows::carrier::limit_message(c, remaining))
        }
        ("declined", _) => Some("銀行でお支払いが承認されませんでした。".to_owned()),
        ("timed_out", _) => Some(
            "銀行での手続きが時間内に完了しなかったため、お支払いを取り消しました。".to_owned(),
        ),
        ("failed", _) => Some("携帯電話会社でお支払いが承認されませんでした。".to_owned()),
        ("cancelled", _) => Some("お支払いをキャンセルしました。".to_owned()),
        ("awaiting_bank", _) => Some(
            "銀行からの結果をお待ちください。30分以内に結果が届かない場合、お支払いは取り消されます。"
                .to_owned(),
        ),
        _ => None,
    };
    let (return_link, retry_url) = if ok {
        (Some(return_link(state, &o.checkout, p).await?), None)
    } else if waiting {
        (None, None)
    } else {
        // Failed: pay another way, or leave for the shop's cancel page if it gave one.
        let retry = (o.checkout.status == CheckoutStatus::Open).then(|| format!("/pay/{token}"));
        (o.checkout.cancel_url.clone(), retry)
    };
    Ok(PayResult {
        ok,
        waiting,
        method_name,
        payment_id: p.id.clone(),
        status_label: crate::status::label_ja(&p.method, &p.status),
        message,
        return_link,
        retry_url,
    })
}
