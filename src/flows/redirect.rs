//! The redirect methods' flow. One flow for the one-step redirect methods (bank net, wallets),
//! parameterised by a small per-method [`RedirectMethod`]: `start` writes the waiting payment,
//! then calls the connector outside the transaction with our payment id as idempotency key;
//! `handle_return` verifies the signed return (a processor is asked server-side), checks it
//! against the stored payment and applies it once; `timeout_due` fails what nobody came back
//! for; the sandbox pages' session and decision. Also the pieces every redirect method (carrier
//! billing too) shares: finding a payment by its connector session, the signed "back to the
//! shop" link, a refused start.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{json, Value};

use crate::connectors::error::ConnectorError;
use crate::connectors::redirect::{
    Outcome, SandboxChoice, SandboxReturn, SignedAnswer, StartOutcome,
};
use crate::connectors::registry::{MerchantConnectors, Resolved, SandboxOf};
use crate::context::Ctx;
use crate::db::checkouts::{self, CheckoutRow};
use crate::db::payments::{self, Change, NewPayment, PaymentError, PaymentRow};
use crate::db::{Db, Tx};
use crate::device::{Device, ViewOverride};
use crate::domain::lifecycle::{Status, TransitionError};
use crate::domain::payment::PaymentStatus;
use crate::domain::processor::ConnectorId;
use crate::domain::reason::Reason;
use crate::domain::redirect::{Institution, Step};
use crate::domain::CheckoutStatus;
use crate::domain::{Method, Mode};
use crate::flows::checkout::{self, Opened};
use crate::flows::error::{FlowError, FlowResult};

/// What the one-step redirect flow needs to know of a method: its institution (a bank, a wallet
/// brand), its status machine, and how to reach its connector.
#[async_trait]
pub trait RedirectMethod: Send + Sync + 'static {
    type Institution: SandboxOf;
    type Status: Status + Into<PaymentStatus>;
    type Connector: ?Sized + Send + Sync;

    const METHOD: Method;
    /// The actor of a return's events and the word in logs and reasons (`bank`, `wallet`).
    const NAME: &'static str;
    /// The form field naming the institution on the method page (`bank`, `wallet`).
    const FIELD: &'static str;
    /// Details keys of the institution's code and name; the code key also names it in events.
    const DETAIL_KEYS: (&'static str, &'static str);
    /// Details key of the institution's transaction reference once paid.
    const TXN_KEY: &'static str;
    /// Whether a paid payment records its captured amount (wallets: it is what refunds draw on).
    const RECORDS_CAPTURE: bool;
    /// Whether the result page names the institution (a wallet brand) rather than the method.
    const RESULT_NAMES_INSTITUTION: bool;
    const WAITING: Self::Status;
    const PAID: Self::Status;
    const TIMED_OUT: Self::Status;
    const PENDING_TIMEOUT_MS: i64;

    /// The payment's status in this machine (`None`: not this method's).
    fn status(s: PaymentStatus) -> Option<Self::Status>;
    /// The method's state machine, driven by a [`Step`].
    fn apply(
        from: Self::Status,
        step: Step,
        created_ms: i64,
    ) -> Result<Self::Status, TransitionError<Self::Status>>;
    /// The notification event of entering `s` (`None` for the waiting status).
    fn event_type(s: Self::Status) -> Option<&'static str>;
    /// The connector a new payment would use.
    fn connector(c: &MerchantConnectors) -> Option<Resolved<Self::Connector>>;
    /// The connector that served an existing payment.
    fn connector_for(c: &MerchantConnectors, id: &ConnectorId) -> Option<Arc<Self::Connector>>;
    /// Whether the merchant offers this institution (default: every one).
    fn offers(_o: &Opened, _i: Self::Institution) -> bool {
        true
    }
    /// Asks the connector to begin: where to send the shopper.
    async fn start(
        c: &Self::Connector,
        req: StartArgs<Self::Institution>,
    ) -> Result<StartOutcome, ConnectorError>;
    /// Verifies the shopper's return for the payment whose session is `session` and reads the
    /// answer (a processor is asked server-side).
    async fn confirm(
        c: &Self::Connector,
        params: &[(String, String)],
        session: &str,
        now_ms: i64,
    ) -> Result<SignedAnswer<Self::Institution>, ConnectorError>;
}

/// What every redirect connector's start is told.
#[derive(Debug, Clone)]
pub struct StartArgs<I> {
    /// Our payment id: the processor's idempotency key and order reference.
    pub payment_id: String,
    pub mode: Mode,
    pub institution: I,
    pub amount: i64,
    pub item_name: String,
    /// Our return endpoint, without a query string: the connector appends signed fields.
    pub return_url: String,
}

/// Where the institution sends the shopper back (no query string: the connector appends signed
/// fields).
fn return_url<M: RedirectMethod>(state: &Ctx, token: &str, payment_id: &str) -> String {
    format!(
        "{}/pay/{token}/{}/return/{payment_id}",
        state.public_url,
        M::METHOD
    )
}

/// Creates the waiting payment, marks the checkout pending and returns the institution's page.
/// The pending payment is committed before the connector is called (no transaction waits on
/// it), with our payment id as its idempotency key; a refused start fails the payment and
/// reopens the checkout.
pub async fn start<M: RedirectMethod>(
    state: &Ctx,
    o: &Opened,
    token: &str,
    device: Device,
    institution: M::Institution,
) -> FlowResult<String> {
    if !checkout::offered(o, device).contains(&M::METHOD) {
        return Err(FlowError::shopper(Reason::MethodNotAvailable));
    }
    // An institution the merchant does not offer (a hand-made form) is refused: nothing stored.
    if !M::offers(o, institution) {
        return Err(FlowError::shopper(Reason::MethodNotAvailable));
    }
    if o.checkout.status != CheckoutStatus::Open {
        return Err(FlowError::shopper(Reason::CheckoutClosed));
    }
    let resolved =
        M::connector(&o.connectors).ok_or(FlowError::shopper(Reason::MethodNotAvailable))?;
    let (code_key, name_key) = M::DETAIL_KEYS;
    let details = json!({ code_key: institution.code(), name_key: institution.name_ja() });
    let now = state.now_ms();
    let mut tx = state.db.begin().await?;
    let p = payments::create(
        &mut tx,
        &NewPayment {
            merchant_id: &o.merchant.id,
            checkout_id: &o.checkout.id,
            order_id: &o.checkout.order_id,
            method: M::METHOD,
            institution: Some(institution.code()),
            status: M::WAITING.into(),
            amount: o.checkout.amount,
            fee: 0,
            // Shown as 支払期限; `timeout_due` fails the payment once it has passed.
            deadline_at: Some(now + M::PENDING_TIMEOUT_MS),
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
    let started = M::start(
        resolved.connector.as_ref(),
        StartArgs {
            payment_id: p.id.clone(),
            mode: o.connectors.mode(),
            institution,
            amount: p.amount,
            item_name: o.checkout.item_name.clone(),
            return_url: return_url::<M>(state, token, &p.id),
        },
    )
    .await;
    let started = match started {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(payment = %p.id, code = e.code(), method = M::NAME, "start refused");
            let to = M::apply(M::WAITING, Step::Decline, p.created_at)
                .map_err(|e| anyhow::anyhow!("{} start failure: {e:?}", M::NAME))?;
            start_failed(state, &p, to, "payment.failed", e.code()).await?;
            return Err(FlowError::Internal(anyhow::anyhow!(
                "{} start failed: {}",
                M::NAME,
                e.code()
            )));
        }
    };
    let mut tx = state.db.begin().await?;
    attach_session(&mut tx, &p.id, &started.session_id, &details).await?;
    tx.commit().await?;
    Ok(started.redirect_url)
}

/// The payment and checkout behind a sandbox institution page.
pub struct SandboxSession<I> {
    pub payment: PaymentRow,
    pub checkout: CheckoutRow,
    pub institution: I,
}

/// Loads the payment of a sandbox session: only a sandbox payment of a test-mode merchant still
/// waiting for the institution, or timed out (a late approval is still honest: money that moved
/// is recorded, never dropped). One answered already is refused.
pub async fn sandbox_session<M: RedirectMethod>(
    state: &Ctx,
    code: &str,
    session: &str,
) -> FlowResult<SandboxSession<M::Institution>> {
    let institution = M::Institution::parse(code).ok_or(FlowError::shopper(Reason::NotFound))?;
    let payment = by_session(&state.db, M::METHOD, session)
        .await?
        .filter(|p| p.institution.as_deref() == Some(institution.code()))
        .ok_or(FlowError::shopper(Reason::NotFound))?;
    ensure_sandbox_payment(state, &payment).await?;
    if !M::status(payment.status).is_some_and(|s| s == M::WAITING || s == M::TIMED_OUT) {
        return Err(FlowError::shopper(Reason::CheckoutClosed));
    }
    let checkout = checkouts::get(&state.db, &payment.checkout_id)
        .await?
        .ok_or(FlowError::shopper(Reason::NotFound))?;
    Ok(SandboxSession {
        payment,
        checkout,
        institution,
    })
}

/// The sandbox page's decision: the signed return URL, or `None` when the shopper walked away
/// (nothing comes back; the payment waits for `timeout_due`).
pub fn sandbox_decide<M: RedirectMethod>(
    state: &Ctx,
    s: &SandboxSession<M::Institution>,
    choice: SandboxChoice,
) -> Option<String> {
    let session = s.payment.connector_ref.as_deref().unwrap_or_default();
    // The institution's page has no shopper session of its own; the return gets a fresh one.
    let token = checkout::new_session(state, &s.checkout.id, ViewOverride::Auto);
    let url = return_url::<M>(state, &token, &s.payment.id);
    M::Institution::of(state.connectors.sandbox_pages()).sandbox_return_url(
        &SandboxReturn {
            return_url: &url,
            session_id: session,
            payment_id: &s.payment.id,
            institution: s.institution,
            amount: s.payment.amount,
            choice,
        },
        state.now_ms(),
    )
}

/// Applies the shopper's return. The connector verifies it (a processor is asked for the
/// outcome); the payment id, session, institution and amount must also match what we stored, so
/// a genuine return of one payment cannot settle another. A repeated return (reload) changes
/// nothing and shows the state.
pub async fn handle_return<M: RedirectMethod>(
    state: &Ctx,
    checkout_id: &str,
    payment_id: &str,
    params: &[(String, String)],
) -> FlowResult<PaymentRow> {
    let (p, connectors) = returning_payment(state, checkout_id, payment_id).await?;
    if p.method != M::METHOD {
        return Err(FlowError::shopper(Reason::ReturnRejected));
    }
    let conn = M::connector_for(&connectors, &p.connector_id())
        .ok_or(FlowError::shopper(Reason::ReturnRejected))?;
    let session = p.connector_ref.clone().unwrap_or_default();
    let res = M::confirm(conn.as_ref(), params, &session, state.now_ms())
        .await
        .map_err(|e| {
            tracing::info!(
                code = e.code(),
                payment_id,
                method = M::NAME,
                "return refused"
            );
            FlowError::shopper(Reason::ReturnRejected)
        })?;
    let matches = res.payment_id == p.id
        && res.session_id == session
        && p.institution.as_deref() == Some(res.institution.code())
        && res.amount == p.amount;
    if !matches {
        tracing::warn!(
            payment_id,
            method = M::NAME,
            "return does not match the stored payment"
        );
        return Err(FlowError::shopper(Reason::ReturnRejected));
    }
    let mut tx = state.db.begin().await?;
    match apply_outcome_in::<M>(&mut tx, &p, &res.outcome, M::NAME, state.now_ms()).await {
        Ok(Some(row)) => {
            tx.commit().await?;
            state.wake_notifier();
            Ok(row)
        }
        Ok(None) => Ok(p),
        // Someone else (a webhook, the timeout job, a second tab) changed it first: show that.
        Err(PaymentError::Conflict) => {
            drop(tx);
            Ok(payments::get(&state.db, payment_id).await?.unwrap_or(p))
        }
        Err(e) => Err(payment_error(e)),
    }
}

/// Applies an institution's answer inside `tx` — status, event, notification and the checkout's
/// status together: the new row, or `None` when it changes nothing (still pending, or a
/// repeated / out-of-order answer the state machine refuses). The conditional update makes a
/// concurrent change (return, webhook, sweep, timeout) a `Conflict`, so each applies once.
pub async fn apply_outcome_in<M: RedirectMethod>(
    tx: &mut Tx,
    p: &PaymentRow,
    outcome: &Outcome,
    actor: &str,
    now: i64,
) -> Result<Option<PaymentRow>, PaymentError> {
    let step = match outcome {
        Outcome::Paid { .. } => Step::Approve,
        Outcome::Declined => Step::Decline,
        Outcome::Pending => return Ok(None),
    };
    let Some(from) = M::status(p.status) else {
        return Ok(None);
    };
    let to = match M::apply(from, step, p.created_at) {
        Ok(to) => to,
        Err(e) => {
            tracing::info!(code = e.code(), payment = %p.id, method = M::NAME, "outcome not applied");
            return Ok(None);
        }
    };
    let mut change = Change::new(to, M::event_type(to).unwrap_or("payment.updated"), actor);
    let mut details = p.details_json();
    if let Outcome::Paid { txn_id } = outcome {
        details[M::TXN_KEY] = json!(txn_id);
        change.paid_at = Some(now);
        change.amount = Some(p.amount);
        if M::RECORDS_CAPTURE {
            change.captured_amount = Some(p.amount);
        }
    }
    change.details = Some(details);
    change.data = event_data::<M>(p);
    let row = payments::transition(tx, p, &change, now).await?;
    let checkout_status = if to == M::PAID {
        CheckoutStatus::Paid
    } else {
        CheckoutStatus::Open
    };
    payments::set_checkout_status(tx, &p.checkout_id, checkout_status, now).await?;
    Ok(Some(row))
}

/// The event data of an answer: the institution's code under the method's key.
fn event_data<M: RedirectMethod>(p: &PaymentRow) -> Value {
    json!({ M::DETAIL_KEYS.0: p.institution })
}

/// Fails every payment of the method that has waited longer than its timeout (`timed_out`,
/// notification `payment.expired`) and reopens its checkout so the shopper can pay another way.
/// An institution that approves later still makes the payment paid. Returns how many timed out.
/// Safe on several instances at once: the conditional update lets exactly one apply each change.
pub async fn timeout_due<M: RedirectMethod>(db: &Db, now_ms: i64) -> anyhow::Result<usize> {
    let due = payments::overdue(db, M::METHOD, M::WAITING.into(), now_ms).await?;
    let mut done = 0;
    for p in due {
        let data = json!({ "reason": format!("{}_timeout", M::NAME) });
        if time_out::<M>(db, &p, now_ms, data).await? {
            done += 1;
        }
    }
    Ok(done)
}

/// Times one waiting payment out (`timed_out`, `payment.expired` with `data`) and reopens its
/// checkout, if its timeout has passed and nobody changed it meanwhile. True when it did.
pub async fn time_out<M: RedirectMethod>(
    db: &Db,
    p: &PaymentRow,
    now_ms: i64,
    data: Value,
) -> anyhow::Result<bool> {
    let Some(from) = M::status(p.status) else {
        return Ok(false);
    };
    let Ok(to) = M::apply(from, Step::TimeOut { now_ms }, p.created_at) else {
        return Ok(false);
    };
    let mut change = Change::new(to, M::event_type(to).unwrap_or("payment.expired"), "system");
    change.data = data;
    let mut tx = db.begin().await?;
    match payments::transition(&mut tx, p, &change, now_ms).await {
        Ok(_) => {}
        Err(PaymentError::Conflict) => return Ok(false),
        Err(e) => return Err(e.into()),
    }
    payments::set_checkout_status(&mut tx, &p.checkout_id, CheckoutStatus::Open, now_ms).await?;
    tx.commit().await?;
    Ok(true)
}

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
