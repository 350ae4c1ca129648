//! Bank net (銀行ネット): the shopper picks a bank, approves on the bank's page and comes back with
//! a signed result; a payment nobody comes back for times out (`timeout_due`).

use serde_json::json;

use crate::connectors::bank::{BankOutcome, SandboxBankChoice, SandboxBankReturn, StartRequest};
use crate::context::Ctx;
use crate::db::checkouts::{self, CheckoutRow};
use crate::db::payments::{self, Change, NewPayment, PaymentRow};
use crate::db::Db;
use crate::device::Device;
use crate::domain::bank::{self, Bank, BankAction, BankStatus, PENDING_TIMEOUT_MS};
use crate::domain::reason::Reason;
use crate::domain::CheckoutStatus;
use crate::domain::Method;
use crate::flows::checkout::{self, Opened};
use crate::flows::error::{FlowError, FlowResult};
use crate::flows::redirect::{self, payment_error};

pub const METHOD: Method = Method::Banknet;

/// Where the bank sends the shopper back (no query string: the connector appends signed fields).
fn return_url(state: &Ctx, token: &str, payment_id: &str) -> String {
    format!(
        "{}/pay/{token}/{METHOD}/return/{payment_id}",
        state.public_url
    )
}

/// Creates the payment (銀行手続き中), marks the checkout pending and returns the bank page URL.
pub async fn start(
    state: &Ctx,
    o: &Opened,
    token: &str,
    device: Device,
    bank: Bank,
) -> FlowResult<String> {
    if !checkout::offered(o, device).contains(&Method::Banknet) {
        return Err(FlowError::shopper(Reason::MethodNotAvailable));
    }
    if o.checkout.status != CheckoutStatus::Open {
        return Err(FlowError::shopper(Reason::CheckoutClosed));
    }
    let resolved = o
        .connectors
        .bank()
        .ok_or(FlowError::shopper(Reason::MethodNotAvailable))?;
    let details = json!({ "bank_code": bank.code(), "bank_name": bank.name_ja() });
    // The pending payment (and the checkout's pending state) are committed before the bank is
    // called, so no transaction waits on it; our payment id is the bank's idempotency key.
    let mut tx = state.db.begin().await?;
    let p = payments::create(
        &mut tx,
        &NewPayment {
            merchant_id: &o.merchant.id,
            checkout_id: &o.checkout.id,
            order_id: &o.checkout.order_id,
            method: METHOD,
            institution: Some(bank.code()),
            status: BankStatus::AwaitingBank.into(),
            amount: o.checkout.amount,
            fee: 0,
            // Shown as 支払期限; `timeout_due` fails the payment once it has passed.
            deadline_at: Some(state.now_ms() + PENDING_TIMEOUT_MS),
            details: details.clone(),
            connector: &resolved.id,
        },
        "shopper",
        state.now_ms(),
    )
    .await
    .map_err(payment_error)?;
    payments::set_checkout_status(
        &mut tx,
        &o.checkout.id,
        CheckoutStatus::Pending,
        state.now_ms(),
    )
    .await?;
    tx.commit().await?;
    let started = resolved
        .connector
        .start(&StartRequest {
            payment_id: p.id.clone(),
            mode: o.connectors.mode(),
            bank,
            amount: p.amount,
            item_name: o.checkout.item_name.clone(),
            return_url: return_url(state, token, &p.id),
        })
        .await;
    let started = match started {
        Ok(s) => s,
        Err(e) => {
            let to = bank::apply(BankStatus::AwaitingBank, BankAction::Decline, p.created_at)
                .map_err(|e| anyhow::anyhow!("bank start failure: {e}"))?;
            redirect::start_failed(state, &p, to, "payment.failed", e.code()).await?;
            return Err(anyhow::anyhow!("bank start failed: {}", e.code()).into());
        }
    };
    let mut tx = state.db.begin().await?;
    redirect::attach_session(&mut tx, &p.id, &started.session_id, &details).await?;
    tx.commit().await?;
    Ok(started.redirect_url)
}

/// The payment and checkout behind a sandbox bank page.
pub struct SandboxSession {
    pub payment: PaymentRow,
    pub checkout: CheckoutRow,
    pub bank: Bank,
}

/// Loads the payment of a sandbox bank session. A payment that is no longer waiting for the bank
/// (answered already) is refused; a timed-out one may still be approved, as a real bank's late
/// confirmation would be.
pub async fn sandbox_session(
    state: &Ctx,
    bank_code: &str,
    session: &str,
) -> FlowResult<SandboxSession> {
    let bank = Bank::parse(bank_code).ok_or(FlowError::shopper(Reason::NotFound))?;
    let payment = redirect::by_session(&state.db, METHOD, session)
        .await?
        .filter(|p| p.institution.as_deref() == Some(bank.code()))
        .ok_or(FlowError::shopper(Reason::NotFound))?;
    redirect::ensure_sandbox_payment(state, &payment).await?;
    if !matches!(
        payment.status.bank(),
        Some(BankStatus::AwaitingBank | BankStatus::TimedOut)
    ) {
        return Err(FlowError::shopper(Reason::CheckoutClosed));
    }
    let checkout = checkouts::get(&state.db, &payment.checkout_id)
        .await?
        .ok_or(FlowError::shopper(Reason::NotFound))?;
    Ok(SandboxSession {
        payment,
        checkout,
        bank,
    })
}

/// The sandbox bank page's decision: the signed return URL, or `None` when the shopper walked
/// away (nothing comes back; the payment waits for `timeout_due`).
pub async fn sandbox_decide(
    state: &Ctx,
    s: &SandboxSession,
    choice: SandboxBankChoice,
) -> FlowResult<Option<String>> {
    let session = s.payment.connector_ref.as_deref().unwrap_or_default();
    // The bank page has no shopper session of its own; the return gets a fresh one.
    let token = checkout::new_session(state, &s.checkout.id, crate::device::ViewOverride::Auto);
    let url = return_url(state, &token, &s.payment.id);
    Ok(state.connectors.sandbox_pages().bank.sandbox_return_url(
        &SandboxBankReturn {
            return_url: &url,
            session_id: session,
            payment_id: &s.payment.id,
            bank: s.bank,
            amount: s.payment.amount,
            choice,
        },
        state.now_ms(),
    ))
}

/// Applies a signed return from the bank. The signature proves the bank sent it; the payment id,
/// session, bank and amount must also match what we stored, so a genuine return of one payment
/// cannot settle another. A repeated return (reload) changes nothing and shows the state.
pub async fn handle_return(
    state: &Ctx,
    checkout_id: &str,
    payment_id: &str,
    params: &[(String, String)],
) -> FlowResult<PaymentRow> {
    let (p, connectors) = redirect::returning_payment(state, checkout_id, payment_id).await?;
    let conn = connectors
        .bank_for(&p.connector_id())
        .ok_or(FlowError::shopper(Reason::ReturnRejected))?;
    let res = conn
        .verify_return(params, state.now_ms())
        .await
        .map_err(|e| {
            tracing::info!(code = e.code(), "bank return refused");
            FlowError::shopper(Reason::ReturnRejected)
        })?;
    let matches = res.payment_id == p.id
        && p.checkout_id == checkout_id
        && p.method == METHOD
        && p.connector_ref.as_deref() == Some(res.session_id.as_str())
        && p.institution.as_deref() == Some(res.bank.code())
        && res.amount == p.amount;
    if !matches {
        tracing::warn!(payment_id, "bank return does not match the stored payment");
        return Err(FlowError::shopper(Reason::ReturnRejected));
    }
    let from = p
        .status
        .bank()
        .ok_or_else(|| anyhow::anyhow!("bank payment {} in status {}", p.id, p.status))?;
    let to = match bank::apply(from, res.outcome.action(), p.created_at) {
        Ok(to) => to,
        Err(e) => {
            tracing::info!(code = e.code(), payment_id, "bank return not applied");
            return Ok(p);
        }
    };
    let mut details = p.details_json();
    let now = state.now_ms();
    let mut change = Change::new(to, to.event_type().unwrap_or("payment.updated"), "bank");
    if let BankOutcome::Paid { bank_txn_id } = &res.outcome {
        details["bank_txn_id"] = json!(bank_txn_id);
        change.paid_at = Some(now);
        change.amount = Some(p.amount);
    }
    change.details = Some(details);
    change.data = json!({ "bank_code": res.bank.code() });
    let mut tx = state.db.begin().await?;
    let row = match payments::transition(&mut tx, &p, &change, state.now_ms()).await {
        Ok(row) => row,
        // Someone else (a second tab, the timeout job) changed it first: show that state.
        Err(payments::PaymentError::Conflict) => {
            return Ok(payments::get(&state.db, payment_id).await?.unwrap_or(p));
        }
        Err(e) => return Err(payment_error(e)),
    };
    let checkout_status = if to == BankStatus::Paid {
        CheckoutStatus::Paid
    } else {
        CheckoutStatus::Open
    };
    payments::set_checkout_status(&mut tx, &p.checkout_id, checkout_status, state.now_ms()).await?;
    tx.commit().await?;
    state.wake_notifier();
    Ok(row)
}

/// Fails every bank-net payment that has waited longer than [`PENDING_TIMEOUT_MS`]
/// (`timed_out`, notification `payment.expired`) and reopens its checkout so the shopper can pay
/// another way. Returns how many timed out. Safe to run on several instances at once: the
/// conditional update lets exactly one of them apply each change.
pub async fn timeout_due(db: &Db, now_ms: i64) -> anyhow::Result<usize> {
    let due = payments::overdue(db, METHOD, BankStatus::AwaitingBank.into(), now_ms).await?;
    let mut done = 0;
    for p in due {
        let action = BankAction::TimeOut { now_ms };
        let Ok(to) = bank::apply(BankStatus::AwaitingBank, action, p.created_at) else {
            continue;
        };
        let mut change = Change::new(to, to.event_type().unwrap_or("payment.expired"), "system");
        change.data = json!({ "reason": "bank_timeout" });
        let mut tx = db.begin().await?;
        match payments::transition(&mut tx, &p, &change, now_ms).await {
            Ok(_) => {}
            Err(payments::PaymentError::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
        payments::set_checkout_status(&mut tx, &p.checkout_id, CheckoutStatus::Open, now_ms)
            .await?;
        tx.commit().await?;
        done += 1;
    }
    Ok(done)
}
