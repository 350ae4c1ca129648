//! Refund requests (返金依頼): staff promise a refund of a paid konbini / Pay-easy / online-banking
//! payment; the shopper gives a bank account on a page reached by a signed link; staff transfer
//! the money and mark it paid (or withdraw the request). Each step writes a payment event and
//! its notification in the same transaction as the change:
//! `payment.refund_requested` → `payment.refund_account_received` → `payment.refund_paid`, or
//! `payment.refund_request_cancelled`. The payment's own status does not change.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::json;

use crate::context::Ctx;
use crate::db::payments::{self, PaymentRow};
use crate::db::refund_requests::{self as db, NewRefundRequest, RefundRequestRow};
use crate::domain::refund_request::{qualifies, BankAccount, RefundRequestStatus};
use crate::flows::error::{FlowError, FlowResult, Refused};

/// A request with its decoded status.
#[derive(Clone, Debug)]
pub struct RefundRequest {
    pub row: RefundRequestRow,
    pub status: RefundRequestStatus,
}

fn decode(row: RefundRequestRow) -> FlowResult<RefundRequest> {
    let status = RefundRequestStatus::parse(&row.status)
        .ok_or_else(|| anyhow::anyhow!("refund request {} has status {}", row.id, row.status))?;
    Ok(RefundRequest { row, status })
}

fn not_found() -> FlowError {
    FlowError::refused(
        Refused::NotFound,
        "refund_request_not_found",
        "no such refund request",
    )
}

fn conflict(code: &'static str, message: impl Into<String>) -> FlowError {
    FlowError::refused(Refused::Conflict, code, message)
}

/// The token of the shopper's link: a MAC of the request id with the server secret.
pub fn token(secret: &[u8], id: &str) -> String {
    let mac = crate::signing::hmac_bytes(secret, format!("refund-request|{id}").as_bytes());
    URL_SAFE_NO_PAD.encode(&mac[..18])
}

/// Checks a link's token in constant time (MACs of both are compared).
pub fn token_ok(secret: &[u8], id: &str, given: &str) -> bool {
    let expected = token(secret, id);
    crate::signing::hmac_bytes(secret, given.as_bytes())
        == crate::signing::hmac_bytes(secret, expected.as_bytes())
}

/// The shopper's page for the request (send it by e-mail or read it out).
pub fn shopper_url(state: &Ctx, id: &str) -> String {
    format!(
        "{}/refund/{id}?t={}",
        state.public_url,
        token(&state.secret, id)
    )
}

pub async fn get(state: &Ctx, id: &str) -> FlowResult<RefundRequest> {
    decode(db::get(&state.db, id).await?.ok_or_else(not_found)?)
}

pub async fn of_payment(state: &Ctx, payment_id: &str) -> FlowResult<Vec<RefundRequest>> {
    db::of_payment(&state.db, payment_id)
        .await?
        .into_iter()
        .map(decode)
        .collect()
}

fn seal_context(id: &str) -> String {
    crate::db::sealed::refund_account_context(id)
}

/// The account the shopper gave, opened for staff.
pub fn account_of(state: &Ctx, r: &RefundRequestRow) -> FlowResult<Option<BankAccount>> {
    let Some(stored) = r.account.as_deref() else {
        return Ok(None);
    };
    let plain = state
        .keys
        .reveal(stored, &seal_context(&r.id))
        .map_err(|e| anyhow::anyhow!("refund request {} account: {e}", r.id))?;
    let a = serde_json::from_str(&plain)
        .map_err(|e| anyhow::anyhow!("refund request {} account: {e}", r.id))?;
    Ok(Some(a))
}

/// Creates a request for `amount` yen of the paid payment `p`, and queues the e-mail carrying
/// the shopper's link (to `email` when staff typed one, else to the signed link's
/// `shopper_email`; without either, staff pass the link on themselves). Returns the request and
/// the address the e-mail goes to. Refused when the method
/// is not refunded this way, the payment is not paid, the address is not one, or the requests
/// would exceed what was paid.
pub async fn create(
    state: &Ctx,
    p: &PaymentRow,
    amount: i64,
    email: Option<&str>,
    actor: &str,
) -> FlowResult<(RefundRequest, Option<String>)> {
    let email = email.map(str::trim).filter(|e| !e.is_empty());
    if email.is_some_and(|e| !crate::domain::message::valid_email(e)) {
        return Err(FlowError::refused(
            Refused::Invalid,
            "invalid_email",
            "the e-mail address is not valid",
        ));
    }
    if !qualifies(p.method, p.status) {
        return Err(conflict(
            "refund_request_not_allowed",
            format!(
                "a {} payment in {} is not refunded by a request",
                p.method, p.status
            ),
        ));
    }
    if amount <= 0 {
        return Err(conflict("invalid_amount", "the amount must be positive"));
    }
    let now = state.now_ms();
    let id = crate::util::random_id("rfr", 20);
    let mut tx = state.db.begin().await?;
    // Serializes requests of one payment so two staff cannot promise more than was paid.
    let p = payments::lock(&mut tx, &p.id)
        .await?
        .ok_or_else(not_found)?;
    let promised: i64 = db::of_payment_tx(&mut tx, &p.id)
        .await?
        .into_iter()
        .filter_map(|r| {
            RefundRequestStatus::parse(&r.status)
                .filter(|s| s.counts())
                .map(|_| r.amount)
        })
        .sum();
    if promised + amount > p.amount {
        return Err(conflict(
            "amount_exceeds_paid",
            format!(
                "{amount} yen would exceed the paid {} yen ({promised} yen already requested)",
                p.amount
            ),
        ));
    }
    db::insert(
        &mut tx,
        &NewRefundRequest {
            id: &id,
            merchant_id: &p.merchant_id,
            payment_id: &p.id,
            amount,
            status: RefundRequestStatus::Requested.code(),
            created_by: actor,
        },
        now,
    )
    .await?;
    payments::record_event(
        &mut tx,
        &p,
        "payment.refund_requested",
        Some(amount),
        &json!({"refund_request_id": id}),
        actor,
        now,
    )
    .await?;
    let mailed_to = crate::db::messages::queue_refund_request(&mut tx, &p, email, now).await?;
    tx.commit().await?;
    state.wake_notifier();
    Ok((get(state, &id).await?, mailed_to))
}

/// Moves `r` to `to`, with its event, in one transaction.
async fn step(
    state: &Ctx,
    r: &RefundRequest,
    to: RefundRequestStatus,
    account: Option<&str>,
    event: &str,
    actor: &str,
) -> FlowResult<RefundRequest> {
    let now = state.now_ms();
    let mut tx = state.db.begin().await?;
    if !db::set_status(&mut tx, &r.row.id, r.status.code(), to.code(), account, now).await? {
        return Err(conflict(
            "concurrent_change",
            "the refund request changed meanwhile",
        ));
    }
    let p = payments::get_tx(&mut tx, &r.row.payment_id)
        .await?
        .ok_or_else(not_found)?;
    payments::record_event(
        &mut tx,
        &p,
        event,
        Some(r.row.amount),
        &json!({"refund_request_id": r.row.id}),
        actor,
        now,
    )
    .await?;
    tx.commit().await?;
    state.wake_notifier();
    get(state, &r.row.id).await
}

/// The shopper's bank account for request `id` (given again, it replaces the earlier one until
/// the money is sent).
pub async fn submit_account(
    state: &Ctx,
    id: &str,
    account: &BankAccount,
) -> FlowResult<RefundRequest> {
    let r = get(state, id).await?;
    if !r.status.accepts_account() {
        return Err(conflict(
            "refund_request_closed",
            format!("the refund request is {}", r.status.code()),
        ));
    }
    let plain = serde_json::to_string(account).map_err(|e| anyhow::anyhow!("account: {e}"))?;
    let sealed = state
        .keys
        .seal_or_clear(&plain, &seal_context(id))
        .map_err(|e| anyhow::anyhow!("seal account: {e}"))?;
    step(
        state,
        &r,
        RefundRequestStatus::AccountReceived,
        Some(&sealed),
        "payment.refund_account_received",
        "shopper",
    )
    .await
}

/// Staff transferred the money.
pub async fn mark_paid(state: &Ctx, r: &RefundRequest, actor: &str) -> FlowResult<RefundRequest> {
    if !r.status.can_mark_paid() {
        return Err(conflict(
            "invalid_transition",
            format!("a {} refund request cannot be marked paid", r.status.code()),
        ));
    }
    step(
        state,
        r,
        RefundRequestStatus::PaidOut,
        None,
        "payment.refund_paid",
        actor,
    )
    .await
}

/// Staff withdraw the request before the payout.
pub async fn cancel(state: &Ctx, r: &RefundRequest, actor: &str) -> FlowResult<RefundRequest> {
    if !r.status.can_cancel() {
        return Err(conflict(
            "invalid_transition",
            format!("a {} refund request cannot be cancelled", r.status.code()),
        ));
    }
    step(
        state,
        r,
        RefundRequestStatus::Cancelled,
        None,
        "payment.refund_request_cancelled",
        actor,
    )
    .await
}
