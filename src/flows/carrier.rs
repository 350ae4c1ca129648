//! Carrier billing (キャリア決済: d払い, auかんたん決済, ソフトバンクまとめて支払い): one-off and
//! continuous (継続課金) charges through the carrier's login page, the per-shopper monthly limit,
//! monthly subscription charges and their cancellation.

use serde_json::{json, Value};

use crate::domain::CheckoutStatus;
use crate::flows::checkout::{self, Opened};
use std::sync::Arc;

use crate::connectors::carrier::{
    CancelRequest, CarrierConnector, CarrierOutcome, ContinuousChargeOutcome,
    ContinuousChargeRequest, SandboxDecision, SandboxLogin, SandboxReturn, StartRequest,
};
use crate::connectors::registry::Registry;
use crate::context::Ctx;
use crate::db::checkouts::{self, CheckoutRow};
use crate::db::payments::{self, Change, NewPayment, PaymentRow};
use crate::db::subscriptions;
use crate::db::{Db, Tx};
use crate::device::Device;
use crate::domain::carrier::{
    self, apply_subscription, charge_ms, check_limit, month_key, BillingKind, Carrier,
    CarrierAction, CarrierStatus, LimitError, SubscriptionAction, SubscriptionStatus,
    MONTHLY_LIMIT,
};
use crate::domain::processor::ConnectorId;
use crate::domain::reason::Reason;
use crate::domain::{Method, Mode};
use crate::flows::error::{FlowError, FlowResult, Refused};
use crate::flows::redirect::{self, payment_error};

/// The payment method of a carrier (one method per carrier, see `domain::method`).
pub fn method_of(c: Carrier) -> Method {
    match c {
        Carrier::Docomo => Method::Docomo,
        Carrier::Au => Method::Au,
        Carrier::Softbank => Method::Softbank,
    }
}

fn return_url(state: &Ctx, token: &str, c: Carrier, payment_id: &str) -> String {
    format!(
        "{}/pay/{token}/{}/return/{payment_id}",
        state.public_url,
        c.code()
    )
}

/// The login phone number, keyed-hashed with the server secret: enough to count a shopper's
/// charges for the monthly limit, without storing the number itself.
pub fn phone_hash(server_secret: &[u8], phone: &str) -> String {
    let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
    hex::encode(crate::signing::hmac_bytes(
        server_secret,
        format!("carrier-phone|{digits}").as_bytes(),
    ))
}

pub use crate::db::merchants::{continuous_enabled, set_continuous};

/// Whether the shopper is offered 継続課金 for `c`: the merchant enabled it and the connector a
/// new payment would use makes such agreements (KOMOJU does not).
pub async fn continuous_offered(state: &Ctx, o: &Opened, c: Carrier) -> FlowResult<bool> {
    let connector_can = o
        .connectors
        .carrier(method_of(c))
        .is_some_and(|r| r.connector.continuous());
    Ok(connector_can && continuous_enabled(&state.db, &o.merchant.id).await?)
}

/// Creates the payment (認証待ち) and returns the carrier login page URL. A carrier attempt of
/// this checkout that the shopper abandoned on the carrier page is cancelled first (the shopper
/// backed out), so coming back and choosing again works.
pub async fn start(
    state: &Ctx,
    o: &Opened,
    token: &str,
    device: Device,
    c: Carrier,
    billing: BillingKind,
) -> FlowResult<String> {
    if !checkout::offered(o, device).contains(&method_of(c)) {
        return Err(FlowError::shopper(Reason::MethodNotAvailable));
    }
    if o.checkout.status != CheckoutStatus::Open {
        return Err(FlowError::shopper(Reason::CheckoutClosed));
    }
    if billing == BillingKind::Continuous && !continuous_offered(state, o, c).await? {
        return Err(FlowError::field(Reason::InvalidField, "billing"));
    }
    let resolved = o
        .connectors
        .carrier(method_of(c))
        .ok_or(FlowError::shopper(Reason::MethodNotAvailable))?;
    let mut details = json!({ "carrier": c.code(), "billing": billing.code() });
    // A processor's carrier login is not ours to see: the shopper phone given with the link is
    // what our monthly limit counts for it (checked below, before the redirect).
    let known_phone = (resolved.id != ConnectorId::Sandbox)
        .then_some(o.checkout.shopper_phone.as_deref())
        .flatten()
        .filter(|ph| ph.chars().filter(char::is_ascii_digit).count() >= 10)
        .map(|ph| phone_hash(&state.secret, ph));
    if let Some(h) = &known_phone {
        details["phone_hash"] = json!(h);
    }
    let mut tx = state.db.begin().await?;
    abandon_stale(&mut tx, &o.checkout.id, state.now_ms()).await?;
    let p = payments::create(
        &mut tx,
        &NewPayment {
            merchant_id: &o.merchant.id,
            checkout_id: &o.checkout.id,
            order_id: &o.checkout.order_id,
            method: c.method(),
            institution: Some(c.code()),
            status: CarrierStatus::AwaitingAuth.into(),
            amount: o.checkout.amount,
            fee: 0,
            deadline_at: None,
            details: details.clone(),
            connector: &resolved.id,
        },
        "shopper",
        state.now_ms(),
    )
    .await
    .map_err(payment_error)?;
    if let Some(h) = &known_phone {
        let now = state.now_ms();
        let used = monthly_used(&mut tx, c, h, &p.id, now).await?;
        if let Err(e) = check_limit(used, p.amount) {
            // Refused before the shopper leaves: the result page explains the limit.
            fail_for_limit(&mut tx, &p, details, e, now)
                .await
                .map_err(payment_error)?;
            tx.commit().await?;
            state.wake_notifier();
            return Ok(format!("/pay/{token}/{}/result/{}", c.code(), p.id));
        }
    }
    // Committed before the carrier is called: no transaction waits on it, and our payment id
    // is the carrier's idempotency key.
    tx.commit().await?;
    let started = resolved
        .connector
        .start(&StartRequest {
            payment_id: p.id.clone(),
            mode: o.connectors.mode(),
            carrier: c,
            amount: p.amount,
            billing,
            item_name: o.checkout.item_name.clone(),
            return_url: return_url(state, token, c, &p.id),
            feature_phone: device == Device::FeaturePhone,
        })
        .await;
    let started = match started {
        Ok(s) => s,
        Err(e) => {
            let to = carrier::apply(CarrierStatus::AwaitingAuth, CarrierAction::Decline)
                .map_err(|e| anyhow::anyhow!("carrier start failure: {e}"))?;
            redirect::start_failed(state, &p, to, "payment.failed", e.code()).await?;
            return Err(match e.code() {
                // A processor without continuous carrier billing (KOMOJU) is as if the carrier
                // were not offered for this choice.
                "carrier_not_available_on_feature_phone" | "komoju_continuous_unsupported" => {
                    FlowError::shopper(Reason::MethodNotAvailable)
                }
                code => FlowError::Internal(anyhow::anyhow!("carrier start failed: {code}")),
            });
        }
    };
    let mut tx = state.db.begin().await?;
    redirect::attach_session(&mut tx, &p.id, &started.session_id, &details).await?;
    tx.commit().await?;
    Ok(started.redirect_url)
}

/// Cancels (`ShopperCancel`) carrier attempts of the checkout still waiting for the carrier.
async fn abandon_stale(tx: &mut Tx, checkout_id: &str, now: i64) -> FlowResult<()> {
    let stale = payments::waiting_in_checkout(
        tx,
        checkout_id,
        &[Method::Docomo, Method::Au, Method::Softbank],
        CarrierStatus::AwaitingAuth.into(),
    )
    .await?;
    for p in stale {
        let to = carrier::apply(CarrierStatus::AwaitingAuth, CarrierAction::ShopperCancel)
            .map_err(|e| anyhow::anyhow!("abandon: {e}"))?;
        let mut change = Change::new(
            to,
            to.event_type().unwrap_or("payment.cancelled"),
            "shopper",
        );
        change.data = json!({ "reason": "abandoned" });
        payments::transition(tx, &p, &change, now)
            .await
            .map_err(payment_error)?;
    }
    Ok(())
}

/// The payment and checkout behind a sandbox carrier page.
pub struct SandboxSession {
    pub payment: PaymentRow,
    pub checkout: CheckoutRow,
    pub carrier: Carrier,
    pub billing: BillingKind,
    /// Set once the shopper has logged in (the hashed phone number is stored).
    pub logged_in: bool,
}

pub async fn sandbox_session(
    state: &Ctx,
    carrier_code: &str,
    session: &str,
) -> FlowResult<SandboxSession> {
    let c = Carrier::parse(carrier_code).ok_or(FlowError::shopper(Reason::NotFound))?;
    let payment = redirect::by_session(&state.db, c.method(), session)
        .await?
        .ok_or(FlowError::shopper(Reason::NotFound))?;
    redirect::ensure_sandbox_payment(state, &payment).await?;
    if payment.status != CarrierStatus::AwaitingAuth {
        return Err(FlowError::shopper(Reason::CheckoutClosed));
    }
    let checkout = checkouts::get(&state.db, &payment.checkout_id)
        .await?
        .ok_or(FlowError::shopper(Reason::NotFound))?;
    let details = payment.details_json();
    let billing = details["billing"]
        .as_str()
        .and_then(BillingKind::parse)
        .unwrap_or(BillingKind::OneOff);
    let logged_in = details["phone_hash"].is_string();
    Ok(SandboxSession {
        payment,
        checkout,
        carrier: c,
        billing,
        logged_in,
    })
}

/// What the sandbox login form leads to.
pub enum LoginStep {
    /// Show the form again with this message (wrong password or malformed number).
    Again(&'static str),
    /// Logged in: show the confirmation (承認) step.
    Confirm,
    /// Leave the carrier page for this (signed) URL.
    Redirect(String),
}

/// Message shown when the monthly limit refuses a charge.
pub fn limit_message(c: Carrier, remaining: i64) -> String {
    format!(
        "{}の今月のご利用上限（{}円）を超えるため、このお支払いはご利用いただけません。今月のご利用可能額の残りは{}円です。別のお支払い方法をお選びください。",
        c.name_ja(),
        crate::util::format_yen(MONTHLY_LIMIT),
        crate::util::format_yen(remaining)
    )
}

/// The login form of the sandbox carrier page (connectors::carrier::sandbox_login rules). On a
/// good login the monthly limit is checked against this phone number's completed charges; a
/// refused charge fails the payment (reason `carrier_monthly_limit_exceeded`) and the shopper is
/// sent to our result page, which explains why.
pub async fn sandbox_login(
    state: &Ctx,
    s: &SandboxSession,
    phone: &str,
    password: &str,
) -> FlowResult<LoginStep> {
    match crate::connectors::carrier::sandbox_login(phone, password) {
        SandboxLogin::InvalidLoginId => Ok(LoginStep::Again(
            "電話番号は070・080・090で始まる11桁で入力してください。",
        )),
        SandboxLogin::WrongPassword => Ok(LoginStep::Again(
            "暗証番号が違います。もう一度入力してください。",
        )),
        SandboxLogin::Declined => Ok(LoginStep::Redirect(sandbox_return(
            state,
            s,
            SandboxDecision::Decline,
        ))),
        SandboxLogin::Approved => {
            let hash = phone_hash(&state.secret, phone);
            let mut tx = state.db.begin().await?;
            let used =
                monthly_used(&mut tx, s.carrier, &hash, &s.payment.id, state.now_ms()).await?;
            if let Err(e) = check_limit(used, s.payment.amount) {
                let mut details = s.payment.details_json();
                details["phone_hash"] = json!(hash);
                fail_for_limit(&mut tx, &s.payment, details, e, state.now_ms())
                    .await
                    .map_err(payment_error)?;
                tx.commit().await?;
                state.wake_notifier();
                let (path, _) = redirect::fresh_session_path(state, &s.checkout.id);
                return Ok(LoginStep::Redirect(format!(
                    "{path}/{}/result/{}",
                    s.carrier.code(),
                    s.payment.id
                )));
            }
            // Remember who logged in (hashed) on the waiting payment; the status is unchanged.
            let mut details = s.payment.details_json();
            details["phone_hash"] = json!(hash);
            payments::set_details_if(
                &mut tx,
                &s.payment,
                &details,
                CarrierStatus::AwaitingAuth.into(),
                state.now_ms(),
            )
            .await?;
            tx.commit().await?;
            Ok(LoginStep::Confirm)
        }
    }
}

/// The signed return URL for a decision on the sandbox page.
pub fn sandbox_return(state: &Ctx, s: &SandboxSession, decision: SandboxDecision) -> String {
    let (path, _) = redirect::fresh_session_path(state, &s.checkout.id);
    let url = format!(
        "{}{path}/{}/return/{}",
        state.public_url,
        s.carrier.code(),
        s.payment.id
    );
    state.connectors.sandbox_pages().carrier.sandbox_return_url(
        &SandboxReturn {
            return_url: &url,
            session_id: s.payment.connector_ref.as_deref().unwrap_or_default(),
            payment_id: &s.payment.id,
            carrier: s.carrier,
            amount: s.payment.amount,
            billing: s.billing,
            decision,
        },
        state.now_ms(),
    )
}

/// Sum of this phone number's completed charges with this carrier in the current JST month
/// (other than `except`, the payment being decided).
async fn monthly_used(
    tx: &mut Tx,
    c: Carrier,
    hash: &str,
    except: &str,
    now: i64,
) -> Result<i64, crate::db::Error> {
    // The hash is hex, so it cannot carry LIKE wildcards; details is compact JSON.
    let pattern = format!("%\"phone_hash\":\"{hash}\"%");
    let rows = payments::amounts_matching_details(
        tx,
        c.method(),
        CarrierStatus::Completed.into(),
        except,
        &pattern,
    )
    .await?;
    let month = month_key(now);
    Ok(rows
        .into_iter()
        .filter(|(_, paid)| paid.is_some_and(|t| month_key(t) == month))
        .map(|(amount, _)| amount)
        .sum())
}

async fn fail_for_limit(
    tx: &mut Tx,
    p: &PaymentRow,
    mut details: Value,
    e: LimitError,
    now: i64,
) -> Result<PaymentRow, payments::PaymentError> {
    // Only a payment waiting for the carrier is decided here, so Decline is always allowed.
    let to = carrier::apply(CarrierStatus::AwaitingAuth, CarrierAction::Decline)
        .unwrap_or(CarrierStatus::Failed);
    let remaining = match e {
        LimitError::MonthlyLimitExceeded { remaining } => remaining,
        LimitError::AmountNotPositive => 0,
    };
    details["failure_reason"] = json!(e.code());
    details["limit_remaining"] = json!(remaining);
    let mut change = Change::new(to, to.event_type().unwrap_or("payment.failed"), "system");
    change.details = Some(details);
    change.data = json!({ "reason": e.code(), "remaining": remaining });
    payments::transition(tx, p, &change, now).await
}

/// Applies a signed return from the carrier (see `flows::bank::handle_return` for the checks).
/// A processor that can be asked (KOMOJU) gives the outcome from the payment it holds, never
/// from the browser; a payment it still has waiting stays waiting (its webhook or the
/// reconciliation sweep decides).
pub async fn handle_return(
    state: &Ctx,
    checkout_id: &str,
    c: Carrier,
    payment_id: &str,
    params: &[(String, String)],
) -> FlowResult<PaymentRow> {
    let (p, connectors) = redirect::returning_payment(state, checkout_id, payment_id).await?;
    let conn = connectors
        .carrier_for(&p.connector_id())
        .ok_or(FlowError::shopper(Reason::ReturnRejected))?;
    let session = p.connector_ref.as_deref().unwrap_or_default();
    let res = conn
        .confirm_return(params, session, state.now_ms())
        .await
        .map_err(|e| {
            tracing::info!(code = e.code(), "carrier return refused");
            FlowError::shopper(Reason::ReturnRejected)
        })?;
    let matches = res.payment_id == p.id
        && p.checkout_id == checkout_id
        && res.carrier == c
        && p.method == c.method()
        && p.connector_ref.as_deref() == Some(res.session_id.as_str())
        && res.amount == p.amount;
    if !matches {
        tracing::warn!(
            payment_id,
            "carrier return does not match the stored payment"
        );
        return Err(FlowError::shopper(Reason::ReturnRejected));
    }
    let approved = matches!(res.outcome, CarrierOutcome::Approved { .. });
    if approved
        && p.connector_id() == ConnectorId::Sandbox
        && !p.details_json()["phone_hash"].is_string()
    {
        // The sandbox carrier's login is our own page, which records who logged in: an
        // approval without it cannot have come from the sandbox flow.
        return Err(FlowError::shopper(Reason::ReturnRejected));
    }
    let mut tx = state.db.begin().await?;
    let applied =
        match apply_outcome_in(&mut tx, &p, c, &res.outcome, "carrier", state.now_ms()).await {
            Ok(Some(a)) => a,
            Ok(None) => return Ok(p),
            Err(payments::PaymentError::Conflict) => {
                return Ok(payments::get(&state.db, payment_id).await?.unwrap_or(p));
            }
            Err(e) => return Err(payment_error(e)),
        };
    tx.commit().await?;
    if let Some(undo) = &applied.void {
        void(conn.as_ref(), undo, payment_id).await;
    }
    state.wake_notifier();
    Ok(applied.row)
}

/// What applying a carrier outcome did.
pub struct Applied {
    pub row: PaymentRow,
    /// The carrier approved a charge our monthly limit refuses: void it there once committed.
    pub void: Option<CancelRequest>,
}

/// Voids a charge the carrier approved and we refused; a failure is logged for staff.
pub async fn void(conn: &dyn CarrierConnector, undo: &CancelRequest, payment_id: &str) {
    if let Err(e) = conn.cancel(undo).await {
        tracing::error!(
            code = e.code(),
            payment_id,
            "voiding an over-limit charge failed"
        );
    }
}

/// Applies a decided outcome to a carrier payment inside `tx`, whoever reports it (the
/// shopper's return, a processor webhook, the reconciliation sweep). An approval is checked
/// against the monthly limit once more, because two attempts of one shopper may have passed
/// the earlier check at the same time. `Ok(None)`: the state machine refuses it (a repeat or an
/// out-of-order report, or still pending): nothing changed.
pub async fn apply_outcome_in(
    tx: &mut Tx,
    p: &PaymentRow,
    c: Carrier,
    outcome: &CarrierOutcome,
    actor: &str,
    now: i64,
) -> Result<Option<Applied>, payments::PaymentError> {
    let Some(action) = outcome.action() else {
        return Ok(None);
    };
    let Some(from) = p.status.carrier() else {
        tracing::error!(payment = %p.id, status = %p.status, "carrier payment in an unknown status");
        return Ok(None);
    };
    let to = match carrier::apply(from, action) {
        Ok(to) => to,
        Err(e) => {
            tracing::info!(code = e.code(), payment = %p.id, "carrier outcome not applied");
            return Ok(None);
        }
    };
    let mut details = p.details_json();
    if let CarrierOutcome::Approved {
        carrier_txn_id,
        subscription_ref,
    } = outcome
    {
        // A real carrier enforces its own monthly limit at its login; ours counts the phone
        // numbers we know (the sandbox login, or the shopper phone a processor payment carries).
        let hash = details["phone_hash"].as_str().map(str::to_owned);
        let used = match &hash {
            Some(h) => monthly_used(tx, c, h, &p.id, now).await?,
            None => 0,
        };
        if let Err(e) = check_limit(used, p.amount) {
            let row = fail_for_limit(tx, p, details, e, now).await?;
            let void = CancelRequest::Charge {
                carrier: c,
                carrier_txn_id: carrier_txn_id.clone(),
                amount: p.amount,
            };
            return Ok(Some(Applied {
                row,
                void: Some(void),
            }));
        }
        details["carrier_txn_id"] = json!(carrier_txn_id);
        let continuous = details["billing"].as_str() == Some(BillingKind::Continuous.code());
        if let (true, Some(sub_ref)) = (continuous, subscription_ref) {
            let sub_id = subscriptions::insert(tx, p, c, sub_ref, now).await?;
            details["subscription_id"] = json!(sub_id);
        }
    }
    let mut change = Change::new(to, to.event_type().unwrap_or("payment.updated"), actor);
    if to == CarrierStatus::Completed {
        change.paid_at = Some(now);
        change.amount = Some(p.amount);
    }
    change.details = Some(details);
    let row = payments::transition(tx, p, &change, now).await?;
    if to == CarrierStatus::Completed {
        payments::set_checkout_status(tx, &p.checkout_id, CheckoutStatus::Paid, now).await?;
    }
    Ok(Some(Applied { row, void: None }))
}

pub use crate::db::subscriptions::{get as subscription, SubscriptionRow};

/// Makes the monthly charge of every active subscription that is due at `now_ms`: each charge is
/// a new payment (on its own checkout, order id `{order_id}#{n}`, because a checkout holds one
/// live payment) whose completion is notified as `subscription.charged`. A charge over the
/// shopper's monthly limit, or declined by the carrier, fails (`payment.failed`); the agreement
/// stays active for next month. Returns how many charges were attempted. Claiming the due date
/// with a conditional update makes each charge happen once even with several instances.
///
/// One subscription's failure (its connector unavailable, a carrier error) is logged and the
/// batch goes on; the error count is reported in the log line of the job.
pub async fn charge_due_subscriptions(
    db: &Db,
    registry: &Arc<Registry>,
    now_ms: i64,
) -> anyhow::Result<usize> {
    let due = subscriptions::due(db, now_ms).await?;
    let mut done = 0;
    let mut failed = 0;
    for s in due {
        match charge_one(db, registry, &s, now_ms).await {
            Ok(true) => done += 1,
            Ok(false) => {}
            Err(e) => {
                failed += 1;
                tracing::error!(subscription = %s.id, error = %e, "monthly carrier charge failed");
            }
        }
    }
    if failed > 0 {
        tracing::warn!(
            failed,
            charged = done,
            "continuous billing batch had failures"
        );
    }
    Ok(done)
}

/// The carrier connector that made a subscription's agreement, for its monthly charges and its
/// cancellation: the same connector as the first payment, and the sandbox only while the
/// merchant is in test mode.
async fn subscription_connector(
    db: &Db,
    registry: &Arc<Registry>,
    first: &PaymentRow,
) -> anyhow::Result<(Arc<dyn CarrierConnector>, Mode)> {
    let m = crate::db::merchants::get(db, &first.merchant_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("payment {} has no merchant", first.id))?;
    let connectors = crate::flows::connectors_for(registry, db, &m).await?;
    let conn = connectors
        .carrier_for(&first.connector_id())
        .ok_or_else(|| {
            anyhow::anyhow!(
                "the connector of subscription payment {} ({}) is not available in the merchant's {} mode",
                first.id,
                first.connector,
                connectors.mode().as_str()
            )
        })?;
    Ok((conn, connectors.mode()))
}

/// One monthly charge: the claim, the charge's checkout and payment (認証待ち) are committed
/// first; the carrier is called outside any transaction with the payment id as its
/// idempotency key; the outcome is recorded in a second transaction.
async fn charge_one(
    db: &Db,
    registry: &Arc<Registry>,
    s: &SubscriptionRow,
    now: i64,
) -> anyhow::Result<bool> {
    let c = Carrier::parse(&s.carrier).ok_or_else(|| anyhow::anyhow!("carrier {}", s.carrier))?;
    let status = SubscriptionStatus::parse(&s.status)
        .ok_or_else(|| anyhow::anyhow!("subscription status {}", s.status))?;
    let action = SubscriptionAction::Charged { at_ms: now };
    if apply_subscription(status, action).is_err() {
        return Ok(false);
    }
    let first = payments::get(db, &s.payment_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("subscription {} has no payment", s.id))?;
    // Resolved before anything is written: a subscription whose connector is gone is not
    // claimed, so nothing is charged and it stays due.
    let (conn, mode) = subscription_connector(db, registry, &first).await?;
    let co = checkouts::get(db, &first.checkout_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("payment {} has no checkout", first.id))?;
    let n = s.charges + 1;
    let months = u32::try_from(s.charges).unwrap_or(u32::MAX);
    let mut tx = db.begin().await?;
    let next = charge_ms(s.first_charge_at, months.saturating_add(1));
    if !subscriptions::claim_charge(&mut tx, &s.id, s.charges, next, now).await? {
        return Ok(false);
    }
    let order_id = format!("{}#{n}", co.order_id);
    let checkout_id =
        checkouts::insert_charge(&mut tx, &co, &order_id, s.amount, method_of(c), now).await?;
    let first_details = first.details_json();
    let mut details = json!({
        "carrier": c.code(),
        "billing": BillingKind::Continuous.code(),
        "subscription_id": s.id,
        "charge_no": n,
    });
    if let Some(h) = first_details["phone_hash"].as_str() {
        details["phone_hash"] = json!(h);
    }
    let p = payments::create(
        &mut tx,
        &NewPayment {
            merchant_id: &s.merchant_id,
            checkout_id: &checkout_id,
            order_id: &order_id,
            method: c.method(),
            institution: Some(c.code()),
            status: CarrierStatus::AwaitingAuth.into(),
            amount: s.amount,
            fee: 0,
            deadline_at: None,
            details: details.clone(),
            connector: &first.connector_id(),
        },
        "system",
        now,
    )
    .await?;
    let used = match details["phone_hash"].as_str() {
        Some(h) => monthly_used(&mut tx, c, h, &p.id, now).await?,
        None => 0,
    };
    if let Err(e) = check_limit(used, s.amount) {
        fail_for_limit(&mut tx, &p, details, e, now)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        payments::set_checkout_status(&mut tx, &checkout_id, CheckoutStatus::Open, now).await?;
        tx.commit().await?;
        return Ok(true);
    }
    tx.commit().await?;
    let outcome = conn
        .charge_continuous(&ContinuousChargeRequest {
            charge_id: p.id.clone(),
            mode,
            carrier: c,
            subscription_ref: s.subscription_ref.clone(),
            amount: s.amount,
        })
        .await;
    let mut tx = db.begin().await?;
    match outcome {
        Ok(ContinuousChargeOutcome::Approved { carrier_txn_id }) => {
            let to = carrier::apply(CarrierStatus::AwaitingAuth, CarrierAction::Approve)?;
            details["carrier_txn_id"] = json!(carrier_txn_id);
            let mut change = Change::new(to, action.event_type(), "system");
            change.paid_at = Some(now);
            change.amount = Some(s.amount);
            change.connector_ref = Some(&carrier_txn_id);
            change.details = Some(details.clone());
            change.data = json!({ "subscription_id": s.id, "charge_no": n });
            payments::transition(&mut tx, &p, &change, now).await?;
            payments::set_checkout_status(&mut tx, &checkout_id, CheckoutStatus::Paid, now).await?;
        }
        Ok(ContinuousChargeOutcome::Declined) => {
            let to = carrier::apply(CarrierStatus::AwaitingAuth, CarrierAction::Decline)?;
            let mut change = Change::new(to, "payment.failed", "system");
            change.data =
                json!({ "subscription_id": s.id, "charge_no": n, "reason": "carrier_declined" });
            payments::transition(&mut tx, &p, &change, now).await?;
            payments::set_checkout_status(&mut tx, &checkout_id, CheckoutStatus::Open, now).await?;
        }
        // The carrier could not be asked: the charge fails (the merchant is told) and the
        // agreement stays active for next month.
        Err(e) => {
            let to = carrier::apply(CarrierStatus::AwaitingAuth, CarrierAction::Decline)?;
            let mut change = Change::new(to, "payment.failed", "system");
            change.data = json!({
                "subscription_id": s.id,
                "charge_no": n,
                "reason": "carrier_error",
                "error": e.code(),
            });
            payments::transition(&mut tx, &p, &change, now).await?;
            payments::set_checkout_status(&mut tx, &checkout_id, CheckoutStatus::Open, now).await?;
        }
    }
    tx.commit().await?;
    Ok(true)
}
/// Cancels a continuous-billing agreement (CLI `subscription cancel <id>`): stops it at the
/// carrier, marks it cancelled, and notifies `subscription.cancelled` on its first payment.
pub async fn cancel_subscription(
    db: &Db,
    registry: &Arc<Registry>,
    id: &str,
    now: i64,
) -> anyhow::Result<()> {
    cancel_subscription_as(db, registry, id, "merchant", now).await?;
    Ok(())
}

fn sub_refused(kind: Refused, code: &'static str, message: impl Into<String>) -> FlowError {
    FlowError::refused(kind, code, message)
}

/// [`cancel_subscription`] by `actor` (the console names the staff member), refusing with
/// documented codes: `subscription_not_found`, `invalid_transition` (not active),
/// `connector_error` (the carrier refused or its connector is not available in the merchant's
/// mode), `concurrent_change`. Returns the agreement as it is now.
pub async fn cancel_subscription_as(
    db: &Db,
    registry: &Arc<Registry>,
    id: &str,
    actor: &str,
    now: i64,
) -> FlowResult<subscriptions::SubscriptionRow> {
    let s = subscription(db, id).await?.ok_or_else(|| {
        sub_refused(
            Refused::NotFound,
            "subscription_not_found",
            format!("no subscription {id}"),
        )
    })?;
    let status = SubscriptionStatus::parse(&s.status)
        .ok_or_else(|| anyhow::anyhow!("subscription status {}", s.status))?;
    let action = SubscriptionAction::Cancel;
    apply_subscription(status, action).map_err(|e| {
        sub_refused(
            Refused::Conflict,
            "invalid_transition",
            format!("subscription {id}: {e}"),
        )
    })?;
    let c = Carrier::parse(&s.carrier).ok_or_else(|| anyhow::anyhow!("carrier {}", s.carrier))?;
    let first = payments::get(db, &s.payment_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("subscription {id} has no payment"))?;
    let (conn, _) = subscription_connector(db, registry, &first)
        .await
        .map_err(|e| sub_refused(Refused::Upstream, "connector_error", e.to_string()))?;
    conn.cancel(&CancelRequest::Subscription {
        carrier: c,
        subscription_ref: s.subscription_ref.clone(),
    })
    .await
    .map_err(|e| {
        sub_refused(
            Refused::Upstream,
            "connector_error",
            format!("carrier refused the cancellation: {}", e.code()),
        )
    })?;
    let mut tx = db.begin().await?;
    if !subscriptions::cancel(&mut tx, id, now).await? {
        return Err(sub_refused(
            Refused::Conflict,
            "concurrent_change",
            format!("subscription {id} changed concurrently"),
        ));
    }
    let p = payments::get_tx(&mut tx, &s.payment_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("subscription {id} has no payment"))?;
    let mut details = p.details_json();
    details["subscription_status"] = json!(SubscriptionStatus::Cancelled.code());
    // The payment keeps its status; the event and notification record the agreement's end.
    let mut change = Change::new(p.status, action.event_type(), actor);
    change.details = Some(details);
    change.data = json!({ "subscription_id": id });
    payments::transition(&mut tx, &p, &change, now)
        .await
        .map_err(|e| anyhow::anyhow!("subscription {id}: {e}"))?;
    tx.commit().await?;
    Ok(subscription(db, id).await?.unwrap_or(s))
}
