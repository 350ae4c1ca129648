//! Wallets (PayPay, au PAY, メルペイ, 楽天ペイ, Paidy, LINE Pay): the shopper picks a wallet, approves
//! on its page and comes back; the outcome comes from the signed return (sandbox) or from the
//! processor asked server-side (KOMOJU), or later from its webhook. A payment nobody comes back
//! for times out (`timeout_due`). Paid payments are refunded, in part or whole, through the
//! connector that served them (`refund`).

use std::sync::Arc;

use serde_json::json;

use crate::connectors::registry::Registry;
use crate::connectors::wallet::{
    RefundRequest, SandboxWalletChoice, SandboxWalletReturn, StartRequest, WalletConnector,
    WalletOutcome,
};
use crate::connectors::webhook::{Effect, WebhookEvent};
use crate::context::Ctx;
use crate::db::checkouts::{self, CheckoutRow};
use crate::db::merchants::MerchantRow;
use crate::db::operations::{self, OpKind, Operation};
use crate::db::payments::{self, Change, NewPayment, PaymentError, PaymentRow};
use crate::db::{Db, Tx};
use crate::device::Device;
use crate::domain::reason::Reason;
use crate::domain::wallet::{self, Wallet, WalletAction, WalletStatus, PENDING_TIMEOUT_MS};
use crate::domain::CheckoutStatus;
use crate::domain::Method;
use crate::flows::checkout::{self, Opened};
use crate::flows::error::{FlowError, FlowResult, Refused};
use crate::flows::redirect::{self, payment_error};

pub const METHOD: Method = Method::Wallet;

/// Where the wallet sends the shopper back (no query string: the connector appends signed
/// fields).
fn return_url(state: &Ctx, token: &str, payment_id: &str) -> String {
    format!(
        "{}/pay/{token}/{METHOD}/return/{payment_id}",
        state.public_url
    )
}

/// Creates the payment (ウォレット手続き中), marks the checkout pending and returns the wallet's
/// page. The pending payment is committed before the connector is called, with our payment id
/// as its idempotency key; a refused start fails the payment and reopens the checkout.
pub async fn start(
    state: &Ctx,
    o: &Opened,
    token: &str,
    device: Device,
    wallet: Wallet,
) -> FlowResult<String> {
    if !checkout::offered(o, device).contains(&METHOD) {
        return Err(FlowError::shopper(Reason::MethodNotAvailable));
    }
    if o.checkout.status != CheckoutStatus::Open {
        return Err(FlowError::shopper(Reason::CheckoutClosed));
    }
    let resolved = o
        .connectors
        .wallet()
        .ok_or(FlowError::shopper(Reason::MethodNotAvailable))?;
    let details = json!({ "wallet": wallet.code(), "wallet_name": wallet.name_ja() });
    let now = state.now_ms();
    let mut tx = state.db.begin().await?;
    let p = payments::create(
        &mut tx,
        &NewPayment {
            merchant_id: &o.merchant.id,
            checkout_id: &o.checkout.id,
            order_id: &o.checkout.order_id,
            method: METHOD,
            institution: Some(wallet.code()),
            status: WalletStatus::AwaitingWallet.into(),
            amount: o.checkout.amount,
            fee: 0,
            // Shown as 支払期限; `timeout_due` fails the payment once it has passed.
            deadline_at: Some(now + PENDING_TIMEOUT_MS),
            details: details.clone(),
            connector: &resolved.id,
        },
        "shopper",
        now,
    )
    .await
    .map_err(payment_error)?;
    payments::set_checkout_status(&mut tx, &o.checkout.id, CheckoutStatus::Pending, now).await?;
    tx.commit().await?;
    let started = resolved
        .connector
        .start(&StartRequest {
            payment_id: p.id.clone(),
            mode: o.connectors.mode(),
            wallet,
            amount: p.amount,
            item_name: o.checkout.item_name.clone(),
            return_url: return_url(state, token, &p.id),
        })
        .await;
    let started = match started {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(payment = %p.id, code = e.code(), "wallet start refused");
            let to = wallet::apply(
                WalletStatus::AwaitingWallet,
                WalletAction::Decline,
                p.created_at,
            )
            .map_err(|e| anyhow::anyhow!("wallet start failure: {e}"))?;
            redirect::start_failed(state, &p, to, "payment.failed", e.code()).await?;
            return Err(FlowError::Internal(anyhow::anyhow!(
                "wallet start failed: {}",
                e.code()
            )));
        }
    };
    let mut tx = state.db.begin().await?;
    redirect::attach_session(&mut tx, &p.id, &started.session_id, &details).await?;
    tx.commit().await?;
    Ok(started.redirect_url)
}

/// The payment and checkout behind a sandbox wallet page.
pub struct SandboxSession {
    pub payment: PaymentRow,
    pub checkout: CheckoutRow,
    pub wallet: Wallet,
}

/// Loads the payment of a sandbox wallet session: only a sandbox payment of a test-mode
/// merchant still waiting for the wallet (or timed out: a late approval is still honest).
pub async fn sandbox_session(
    state: &Ctx,
    wallet_code: &str,
    session: &str,
) -> FlowResult<SandboxSession> {
    let wallet = Wallet::parse(wallet_code).ok_or(FlowError::shopper(Reason::NotFound))?;
    let payment = redirect::by_session(&state.db, METHOD, session)
        .await?
        .filter(|p| p.institution.as_deref() == Some(wallet.code()))
        .ok_or(FlowError::shopper(Reason::NotFound))?;
    redirect::ensure_sandbox_payment(state, &payment).await?;
    if !matches!(
        payment.status.wallet(),
        Some(WalletStatus::AwaitingWallet | WalletStatus::TimedOut)
    ) {
        return Err(FlowError::shopper(Reason::CheckoutClosed));
    }
    let checkout = checkouts::get(&state.db, &payment.checkout_id)
        .await?
        .ok_or(FlowError::shopper(Reason::NotFound))?;
    Ok(SandboxSession {
        payment,
        checkout,
        wallet,
    })
}

/// The sandbox wallet page's decision: the signed return URL, or `None` when the shopper walked
/// away (nothing comes back; the payment waits for `timeout_due`).
pub fn sandbox_decide(
    state: &Ctx,
    s: &SandboxSession,
    choice: SandboxWalletChoice,
) -> Option<String> {
    let session = s.payment.connector_ref.as_deref().unwrap_or_default();
    // The wallet page has no shopper session of its own; the return gets a fresh one.
    let token = checkout::new_session(state, &s.checkout.id, crate::device::ViewOverride::Auto);
    let url = return_url(state, &token, &s.payment.id);
    state.connectors.sandbox_pages().wallet.sandbox_return_url(
        &SandboxWalletReturn {
            return_url: &url,
            session_id: session,
            payment_id: &s.payment.id,
            wallet: s.wallet,
            amount: s.payment.amount,
            choice,
        },
        state.now_ms(),
    )
}

/// Applies the shopper's return. The connector verifies it (and a processor is asked for the
/// outcome); the payment id, session, wallet and amount must also match what we stored, so a
/// genuine return of one payment cannot settle another. A repeated return changes nothing.
pub async fn handle_return(
    state: &Ctx,
    checkout_id: &str,
    payment_id: &str,
    params: &[(String, String)],
) -> FlowResult<PaymentRow> {
    let (p, connectors) = redirect::returning_payment(state, checkout_id, payment_id).await?;
    if p.method != METHOD {
        return Err(FlowError::shopper(Reason::ReturnRejected));
    }
    let conn = connectors
        .wallet_for(&p.connector_id())
        .ok_or(FlowError::shopper(Reason::ReturnRejected))?;
    let session = p.connector_ref.clone().unwrap_or_default();
    let res = conn
        .confirm_return(params, &session, state.now_ms())
        .await
        .map_err(|e| {
            tracing::info!(code = e.code(), payment_id, "wallet return refused");
            FlowError::shopper(Reason::ReturnRejected)
        })?;
    let matches = res.payment_id == p.id
        && res.session_id == session
        && p.institution.as_deref() == Some(res.wallet.code())
        && res.amount == p.amount;
    if !matches {
        tracing::warn!(
            payment_id,
            "wallet return does not match the stored payment"
        );
        return Err(FlowError::shopper(Reason::ReturnRejected));
    }
    let mut tx = state.db.begin().await?;
    match apply_outcome_in(&mut tx, &p, &res.outcome, "wallet", state.now_ms()).await {
        Ok(Some(row)) => {
            tx.commit().await?;
            state.wake_notifier();
            Ok(row)
        }
        Ok(None) => Ok(p),
        // Someone else (a webhook, the timeout job, a second tab) changed it first.
        Err(PaymentError::Conflict) => {
            drop(tx);
            Ok(payments::get(&state.db, payment_id).await?.unwrap_or(p))
        }
        Err(e) => Err(payment_error(e)),
    }
}

/// Applies a wallet outcome inside `tx`: the new row, or `None` when it changes nothing
/// (still pending, or a repeated / out-of-order answer the state machine refuses).
async fn apply_outcome_in(
    tx: &mut Tx,
    p: &PaymentRow,
    outcome: &WalletOutcome,
    actor: &str,
    now: i64,
) -> Result<Option<PaymentRow>, PaymentError> {
    let Some(action) = outcome.action() else {
        return Ok(None);
    };
    let Some(from) = p.status.wallet() else {
        return Ok(None);
    };
    let to = match wallet::apply(from, action, p.created_at) {
        Ok(to) => to,
        Err(e) => {
            tracing::info!(code = e.code(), payment = %p.id, "wallet outcome not applied");
            return Ok(None);
        }
    };
    let mut change = Change::new(to, to.event_type().unwrap_or("payment.updated"), actor);
    let mut details = p.details_json();
    if let WalletOutcome::Paid { txn_id } = outcome {
        details["wallet_txn_id"] = json!(txn_id);
        change.paid_at = Some(now);
        change.amount = Some(p.amount);
        change.captured_amount = Some(p.amount);
    }
    change.details = Some(details);
    change.data = json!({ "wallet": p.institution });
    let row = payments::transition(tx, p, &change, now).await?;
    let checkout_status = if to == WalletStatus::Paid {
        CheckoutStatus::Paid
    } else {
        CheckoutStatus::Open
    };
    payments::set_checkout_status(tx, &p.checkout_id, checkout_status, now).await?;
    Ok(Some(row))
}

/// Applies a verified processor event to a wallet payment inside the webhook's transaction:
/// captured → paid, failed / cancelled / expired → failed, refunded → refunded (whatever was
/// not refunded through us yet). `None`: nothing to change.
pub async fn apply_event_in(
    tx: &mut Tx,
    p: &PaymentRow,
    e: &WebhookEvent,
    now: i64,
) -> Result<Option<PaymentRow>, PaymentError> {
    let outcome = match e.effect {
        Effect::Paid { .. } => WalletOutcome::Paid {
            txn_id: e
                .payment_ref
                .clone()
                .or_else(|| p.connector_ref.clone())
                .unwrap_or_default(),
        },
        Effect::Failed | Effect::Expired | Effect::Cancelled => WalletOutcome::Declined,
        Effect::Refunded => {
            let rest = p.captured_amount - p.refunded_amount;
            if p.status != WalletStatus::Paid || rest <= 0 {
                return Ok(None);
            }
            return refunded_in(tx, p, rest, "processor", now).await;
        }
        Effect::Ignored => return Ok(None),
    };
    apply_outcome_in(tx, p, &outcome, "processor", now).await
}

/// Records a refund of `amount` (partial: the payment stays `paid`; the rest: `refunded`),
/// with its `payment.refunded` event and notification.
async fn refunded_in(
    tx: &mut Tx,
    p: &PaymentRow,
    amount: i64,
    actor: &str,
    now: i64,
) -> Result<Option<PaymentRow>, PaymentError> {
    let Some(from) = p.status.wallet() else {
        return Ok(None);
    };
    let Ok((to, total)) = wallet::refund(from, p.captured_amount, p.refunded_amount, amount) else {
        return Ok(None);
    };
    let mut change = Change::new(to, "payment.refunded", actor);
    change.amount = Some(amount);
    change.refunded_amount = Some(total);
    change.data = json!({ "amount": amount, "refunded_amount": total });
    payments::transition(tx, p, &change, now).await.map(Some)
}

fn not_found() -> FlowError {
    FlowError::refused(Refused::NotFound, "payment_not_found", "no such payment")
}

fn refund_check(p: &PaymentRow, amount: i64) -> FlowResult<()> {
    let from = p.status.wallet().ok_or_else(not_found)?;
    wallet::refund(from, p.captured_amount, p.refunded_amount, amount)
        .map(|_| ())
        .map_err(|e| {
            let (kind, code) = match e {
                wallet::TransitionError::Refused(r) => (Refused::Unprocessable, r.code()),
                _ => (Refused::Conflict, "invalid_transition"),
            };
            FlowError::refused(kind, code, e.to_string())
        })
}

/// 返金: refunds `amount` yen of a paid wallet payment (partly or the rest). The payment is
/// claimed first (a pending operation, one per payment at a time), the connector that served it
/// is called outside any transaction with the operation id as idempotency key, then the refund
/// is recorded — status, event, notification and the operation's end — in one transaction.
pub async fn refund(
    state: &Ctx,
    payment_id: &str,
    amount: i64,
    actor: &str,
) -> FlowResult<PaymentRow> {
    let p = payments::get(&state.db, payment_id)
        .await?
        .filter(|p| p.method == METHOD)
        .ok_or_else(not_found)?;
    refund_check(&p, amount)?;
    let merchant = crate::db::merchants::get(&state.db, &p.merchant_id)
        .await?
        .ok_or_else(not_found)?;
    let conn = connector_of(&state.connectors, &state.db, &merchant, &p).await?;
    let op_id = operations::claim(
        &state.db,
        &p.id,
        OpKind::Refund,
        Some(amount),
        actor,
        state.now_ms(),
    )
    .await?
    .ok_or(FlowError::Refused {
        kind: Refused::Conflict,
        code: "operation_in_progress",
        message: "another refund of this payment is in progress; retry shortly".into(),
    })?;
    // A concurrent refund may have finished between our read and our claim.
    let p = payments::get(&state.db, &p.id).await?.unwrap_or(p);
    if let Err(e) = refund_check(&p, amount) {
        operations::fail(&state.db, &op_id, "refused", state.now_ms()).await?;
        return Err(e);
    }
    if let Err(e) = call_refund(conn.as_ref(), &merchant, &p, amount, &op_id).await {
        operations::fail(&state.db, &op_id, e.code(), state.now_ms()).await?;
        tracing::warn!(payment = %p.id, code = e.code(), "wallet refund refused");
        return Err(FlowError::refused(
            Refused::Upstream,
            "connector_error",
            format!("the processor refused the refund ({})", e.code()),
        ));
    }
    let row = record_refund(&state.db, &p, &op_id, amount, actor, state.now_ms()).await?;
    state.wake_notifier();
    Ok(row)
}

async fn connector_of(
    registry: &Arc<Registry>,
    db: &Db,
    merchant: &MerchantRow,
    p: &PaymentRow,
) -> FlowResult<Arc<dyn WalletConnector>> {
    crate::flows::connectors_for(registry, db, merchant)
        .await?
        .wallet_for(&p.connector_id())
        .ok_or_else(|| {
            tracing::error!(payment = %p.id, "the wallet connector of the payment is not available");
            FlowError::refused(
                Refused::Upstream,
                "connector_error",
                "the processor is not available",
            )
        })
}

async fn call_refund(
    conn: &dyn WalletConnector,
    merchant: &MerchantRow,
    p: &PaymentRow,
    amount: i64,
    key: &str,
) -> Result<(), crate::connectors::wallet::ConnectorError> {
    conn.refund(&RefundRequest {
        session_id: p.connector_ref.clone().unwrap_or_default(),
        mode: merchant.mode(),
        amount,
        idempotency_key: key.to_owned(),
    })
    .await
}

/// Records a connector-confirmed refund once: finishing the operation comes first, so an
/// operation already recorded (by a resume) is not applied twice.
async fn record_refund(
    db: &Db,
    p: &PaymentRow,
    op_id: &str,
    amount: i64,
    actor: &str,
    now: i64,
) -> FlowResult<PaymentRow> {
    // A webhook may have changed the row while the connector was called: apply to it as it is.
    let p = &payments::get(db, &p.id).await?.unwrap_or_else(|| p.clone());
    let mut tx = db.begin().await?;
    if !operations::finish(&mut tx, op_id, None, now).await? {
        drop(tx);
        return Ok(payments::get(db, &p.id).await?.unwrap_or_else(|| p.clone()));
    }
    let row = match refunded_in(&mut tx, p, amount, actor, now).await {
        Ok(Some(row)) => row,
        Ok(None) => {
            return Err(FlowError::refused(
                Refused::Conflict,
                "invalid_transition",
                "the payment can no longer be refunded",
            ))
        }
        // Changed again in between: the refund is done at the connector; the operation stays
        // pending, so `resume` records it (the connector answers the same key the same way).
        Err(PaymentError::Conflict) => {
            return Err(FlowError::refused(
                Refused::Conflict,
                "concurrent_change",
                "the payment changed meanwhile; the refund is recorded shortly",
            ))
        }
        Err(e) => return Err(payment_error(e)),
    };
    tx.commit().await?;
    Ok(row)
}

/// Finishes a wallet refund whose outcome was never recorded (called by
/// `flows::card::resume_operations` for wallet payments): the connector is asked again with the
/// same idempotency key, so it refunds at most once, and the refund is recorded once.
pub async fn resume(
    db: &Db,
    registry: &Arc<Registry>,
    o: &Operation,
    p: &PaymentRow,
    merchant: &MerchantRow,
    now: i64,
) -> anyhow::Result<()> {
    let (OpKind::Refund, Some(amount)) = (o.kind, o.amount) else {
        operations::fail(db, &o.id, "not_applicable", now).await?;
        return Ok(());
    };
    let Ok(conn) = connector_of(registry, db, merchant, p).await else {
        operations::fail(db, &o.id, "no_connector", now).await?;
        return Ok(());
    };
    match call_refund(conn.as_ref(), merchant, p, amount, &o.id).await {
        Ok(()) => {
            if record_refund(db, p, &o.id, amount, &o.actor, now)
                .await
                .is_err()
            {
                operations::fail(db, &o.id, "not_applicable", now).await?;
            }
            Ok(())
        }
        Err(e) if e.retryable() => Err(anyhow::anyhow!("connector: {}", e.code())),
        Err(e) => Ok(operations::fail(db, &o.id, e.code(), now).await?),
    }
}

/// Fails every wallet payment that has waited longer than [`PENDING_TIMEOUT_MS`] (`timed_out`,
/// notification `payment.expired`) and reopens its checkout. A wallet that approves later still
/// makes the payment paid (its webhook or the return). Safe on several instances at once.
pub async fn timeout_due(db: &Db, now_ms: i64) -> anyhow::Result<usize> {
    let due = payments::overdue(db, METHOD, WalletStatus::AwaitingWallet.into(), now_ms).await?;
    let mut done = 0;
    for p in due {
        let action = WalletAction::TimeOut { now_ms };
        let Ok(to) = wallet::apply(WalletStatus::AwaitingWallet, action, p.created_at) else {
            continue;
        };
        let mut change = Change::new(to, to.event_type().unwrap_or("payment.expired"), "system");
        change.data = json!({ "reason": "wallet_timeout" });
        let mut tx = db.begin().await?;
        match payments::transition(&mut tx, &p, &change, now_ms).await {
            Ok(_) => {}
            Err(PaymentError::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
        payments::set_checkout_status(&mut tx, &p.checkout_id, CheckoutStatus::Open, now_ms)
            .await?;
        tx.commit().await?;
        done += 1;
    }
    Ok(done)
}
