//! Wallets (PayPay, au PAY, メルペイ, 楽天ペイ, Paidy, LINE Pay): the shopper picks a wallet, approves
//! on its page and comes back; the outcome comes from the signed return (sandbox) or from the
//! processor asked server-side (KOMOJU), or later from its webhook. A payment nobody comes back
//! for times out (`timeout_due`). Paid payments are refunded, in part or whole, through the
//! connector that served them (`refund`). Start, return, sandbox page and timeout are the
//! one-step redirect flow of `flows::redirect`; this module says what is particular to wallets.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::json;

use crate::connectors::error::ConnectorError;
use crate::connectors::redirect::{SignedAnswer, StartOutcome};
use crate::connectors::registry::{MerchantConnectors, Registry, Resolved};
use crate::connectors::wallet::{RefundRequest, StartRequest, WalletConnector, WalletOutcome};
use crate::connectors::webhook::{Effect, WebhookEvent};
use crate::context::Ctx;
use crate::db::merchants::MerchantRow;
use crate::db::operations::{self, OpKind, Operation};
use crate::db::payments::{self, Change, PaymentError, PaymentRow};
use crate::db::{Db, Tx};
use crate::domain::payment::PaymentStatus;
use crate::domain::processor::ConnectorId;
use crate::domain::redirect::Step;
use crate::domain::wallet::{self, Wallet, WalletStatus, PENDING_TIMEOUT_MS};
use crate::domain::Method;
use crate::flows::checkout::Opened;
use crate::flows::error::{FlowError, FlowResult, Refused};
use crate::flows::redirect::{self, payment_error, RedirectMethod, StartArgs};

pub const METHOD: Method = Method::Wallet;

/// Wallets as a [`RedirectMethod`].
pub struct Wallets;

#[async_trait]
impl RedirectMethod for Wallets {
    type Institution = Wallet;
    type Status = WalletStatus;
    type Connector = dyn WalletConnector;

    const METHOD: Method = METHOD;
    const NAME: &'static str = "wallet";
    const FIELD: &'static str = "wallet";
    const DETAIL_KEYS: (&'static str, &'static str) = ("wallet", "wallet_name");
    const TXN_KEY: &'static str = "wallet_txn_id";
    // Refunds draw on the captured amount.
    const RECORDS_CAPTURE: bool = true;
    const RESULT_NAMES_INSTITUTION: bool = true;
    const WAITING: WalletStatus = WalletStatus::AwaitingWallet;
    const PAID: WalletStatus = WalletStatus::Paid;
    const TIMED_OUT: WalletStatus = WalletStatus::TimedOut;
    const PENDING_TIMEOUT_MS: i64 = PENDING_TIMEOUT_MS;

    fn status(s: PaymentStatus) -> Option<WalletStatus> {
        s.wallet()
    }
    fn apply(
        from: WalletStatus,
        step: Step,
        created_ms: i64,
    ) -> Result<WalletStatus, wallet::TransitionError> {
        wallet::apply(from, step.into(), created_ms)
    }
    fn event_type(s: WalletStatus) -> Option<&'static str> {
        s.event_type()
    }
    fn connector(c: &MerchantConnectors) -> Option<Resolved<dyn WalletConnector>> {
        c.wallet()
    }
    fn connector_for(c: &MerchantConnectors, id: &ConnectorId) -> Option<Arc<dyn WalletConnector>> {
        c.wallet_for(id)
    }
    /// Only the brands the merchant chose (settings; all by default).
    fn offers(o: &Opened, w: Wallet) -> bool {
        o.merchant.wallet_brands.offers(w)
    }
    async fn start(
        c: &dyn WalletConnector,
        a: StartArgs<Wallet>,
    ) -> Result<StartOutcome, ConnectorError> {
        c.start(&StartRequest {
            payment_id: a.payment_id,
            mode: a.mode,
            wallet: a.institution,
            amount: a.amount,
            item_name: a.item_name,
            return_url: a.return_url,
        })
        .await
    }
    async fn confirm(
        c: &dyn WalletConnector,
        params: &[(String, String)],
        session: &str,
        now_ms: i64,
    ) -> Result<SignedAnswer<Wallet>, ConnectorError> {
        let r = c.confirm_return(params, session, now_ms).await?;
        Ok(SignedAnswer {
            payment_id: r.payment_id,
            session_id: r.session_id,
            institution: r.wallet,
            amount: r.amount,
            outcome: r.outcome,
        })
    }
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
    redirect::apply_outcome_in::<Wallets>(tx, p, &outcome, "processor", now).await
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
/// makes the payment paid (its webhook or the return).
pub async fn timeout_due(db: &Db, now_ms: i64) -> anyhow::Result<usize> {
    redirect::timeout_due::<Wallets>(db, now_ms).await
}

/// A processor wallet payment still waiting this long after its last change is asked about
/// (its webhook may have been lost).
pub const RECONCILE_AFTER_MS: i64 = 10 * 60 * 1000;
/// At most this many payments per sweep.
const BATCH: i64 = 200;

/// The wallet reconciliation sweep (as `flows::carrier_sync::reconcile` does for carriers):
/// processor wallet payments still `awaiting_wallet` [`RECONCILE_AFTER_MS`] after their last
/// change are retrieved and their outcome applied through the same state machine and
/// conditional update as a webhook (so both together apply once); one still pending after
/// [`PENDING_TIMEOUT_MS`] is cancelled at the processor and then timed out here. Runs before
/// [`timeout_due`], which remains the fallback when the processor cannot be reached. Returns
/// how many payments changed.
pub async fn reconcile(db: &Db, registry: &Arc<Registry>, now: i64) -> anyhow::Result<usize> {
    let due = crate::db::reconcile::waiting_at_processors(
        db,
        &[METHOD.code()],
        WalletStatus::AwaitingWallet.code(),
        now - RECONCILE_AFTER_MS,
        BATCH,
    )
    .await?;
    let mut n = 0;
    for p in due {
        match reconcile_one(db, registry, &p, now).await {
            Ok(true) => n += 1,
            Ok(false) => {}
            Err(e) => tracing::warn!(payment = %p.id, error = %e, "wallet reconciliation"),
        }
    }
    Ok(n)
}

async fn reconcile_one(
    db: &Db,
    registry: &Arc<Registry>,
    p: &PaymentRow,
    now: i64,
) -> anyhow::Result<bool> {
    let merchant = crate::db::merchants::get(db, &p.merchant_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("payment {} has no merchant", p.id))?;
    let conn = connector_of(registry, db, &merchant, p)
        .await
        .map_err(|_| anyhow::anyhow!("the payment's connector is not available"))?;
    // No session: the start never got the processor's answer; the timeout job decides.
    let Some(session) = p.connector_ref.as_deref() else {
        return Ok(false);
    };
    let Some(r) = conn
        .retrieve(session)
        .await
        .map_err(|e| anyhow::anyhow!("retrieve: {}", e.code()))?
    else {
        return Ok(false);
    };
    if r.payment_id.as_deref() != Some(p.id.as_str())
        || r.amount != p.amount
        || r.wallet.map(Wallet::code) != p.institution.as_deref()
    {
        anyhow::bail!("the processor's payment does not match ours");
    }
    if r.outcome == WalletOutcome::Pending {
        if !wallet::timed_out(p.created_at, now) {
            return Ok(false);
        }
        // Stopped at the processor first, so the shopper cannot finish it after we gave up; if
        // that is refused (it was just paid), the next sweep reads the new status.
        conn.cancel(session)
            .await
            .map_err(|e| anyhow::anyhow!("cancel at the processor: {}", e.code()))?;
        let data = json!({ "reason": "wallet_timeout", "cancelled_at_processor": true });
        return redirect::time_out::<Wallets>(db, p, now, data).await;
    }
    let mut tx = db.begin().await?;
    let row = match redirect::apply_outcome_in::<Wallets>(
        &mut tx,
        p,
        &r.outcome,
        "system:reconcile",
        now,
    )
    .await
    {
        Ok(Some(row)) => row,
        // A webhook (or the shopper's return) applied it first.
        Ok(None) | Err(PaymentError::Conflict) => return Ok(false),
        Err(e) => return Err(anyhow::anyhow!("{e}")),
    };
    // Refunded at the processor since it was paid (that webhook was lost too).
    if r.refunded && row.status == WalletStatus::Paid {
        let rest = row.captured_amount - row.refunded_amount;
        refunded_in(&mut tx, &row, rest, "system:reconcile", now).await?;
    }
    tx.commit().await?;
    Ok(true)
}
