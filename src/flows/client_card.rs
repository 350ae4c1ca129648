//! Card payments collected in the shopper's browser by the processor's script (Stripe.js):
//! the card number never reaches this server.
//!
//! 1. [`prepare`]: the shopper submits the card page; the payment is created (`awaiting_3ds`,
//!    committed), then the processor's intent, outside any transaction, with an idempotency key
//!    derived from our payment id. The browser gets the intent's client secret and confirms it
//!    with the processor (3-D Secure included).
//! 2. [`settle`]: on the return URL, an inbound event, or the sweep, the server retrieves the
//!    intent and records the outcome — never what the browser says. Only forward transitions
//!    of the card state machine are applied, so events arriving late or twice change nothing.
//! 3. [`reconcile`]: intents whose outcome never came are retrieved; those still waiting for
//!    the shopper after [`PENDING_TTL`] are cancelled at the processor and the payment fails.
//!
//! Capture, cancel and refund are the usual [`crate::flows::card`] actions.

use std::sync::Arc;

use serde_json::json;

use crate::connectors::client_card::{
    ClientCardConnector, Intent, IntentRequest, IntentState, WebhookError,
};
use crate::connectors::registry::Registry;
use crate::context::Ctx;
use crate::db::payments::{self, Change, NewPayment, PaymentError, PaymentRow};
use crate::db::{Db, Tx};
use crate::domain::card::{
    self, Brand, CardAction, CardStatus, PaymentOption, ThreeDsResult, ThreeDsStatus,
};
use crate::domain::processor::{ConnectorId, Processor};
use crate::domain::reason::Reason;
use crate::domain::CheckoutStatus;
use crate::domain::Method;
use crate::flows::card::{
    card_state, check_lock, key_for, record_failure, PENDING_TTL, RECONCILE_AFTER_MS,
};
use crate::flows::checkout::Opened;
use crate::flows::error::{FlowError, FlowResult, Refused};

pub use crate::flows::card::BROWSER_ENTRY;

/// What the browser needs to confirm the payment with the processor.
pub struct Prepared {
    pub payment_id: String,
    pub client_secret: String,
    /// With a payment method given: the plans (besides 一括) the shopper may choose, those the
    /// processor offers for the card and the merchant enabled. The server then confirms
    /// ([`confirm`]).
    pub plans: Vec<PaymentOption>,
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared")
            .field("payment_id", &self.payment_id)
            .finish_non_exhaustive()
    }
}

fn connector_failed(e: crate::connectors::card::ConnectorError) -> FlowError {
    FlowError::Refused {
        kind: Refused::Upstream,
        code: "connector_error",
        message: format!("the card processor refused: {}", e.code()),
    }
}

fn in_progress() -> FlowError {
    FlowError::Refused {
        kind: Refused::Conflict,
        code: "payment_in_progress",
        message: "this checkout already has a payment in progress".into(),
    }
}

/// Checks a change with the pure state machine, then writes it (event + outbox).
/// `now` is the caller's clock reading (the row's `updated_at`, the event's time).
#[allow(clippy::too_many_arguments)]
async fn apply(
    tx: &mut Tx,
    p: &PaymentRow,
    action: &CardAction,
    event: &str,
    actor: &str,
    data: serde_json::Value,
    details: Option<serde_json::Value>,
    now: i64,
) -> Result<PaymentRow, Applied> {
    let next = card::apply(&card_state(p).map_err(Applied::Err)?, action)
        .map_err(|_| Applied::NotForward)?;
    let mut change = Change::new(next.status, event, actor);
    change.captured_amount = Some(next.captured_amount);
    change.refunded_amount = Some(next.refunded_amount);
    change.amount = data.get("amount").and_then(|a| a.as_i64());
    change.data = data;
    change.details = details;
    if next.status == CardStatus::Captured && p.paid_at.is_none() {
        change.paid_at = Some(now);
    }
    payments::transition(tx, p, &change, now)
        .await
        .map_err(|e| match e {
            PaymentError::Conflict => Applied::Conflict,
            PaymentError::Db(e) => Applied::Err(FlowError::Db(e)),
            PaymentError::AlreadyLive => Applied::Err(FlowError::shopper(Reason::CheckoutClosed)),
        })
}

/// Why [`apply`] wrote nothing.
enum Applied {
    /// The state machine refuses the change: the payment moved on (a late or repeated event).
    NotForward,
    /// Another writer changed the payment first.
    Conflict,
    Err(FlowError),
}

/// Creates the payment and its intent, or returns the secret of the checkout's intent still
/// waiting for the shopper (a reload). Card-testing limits apply as for cards typed on our page.
///
/// With a payment method ([`Choice`]: the card the shopper typed, or a saved one), the intent
/// is created with it attached and not confirmed: the processor answers the card's
/// installment plans, the shopper picks one, and [`confirm`] confirms.
pub async fn prepare(state: &Ctx, o: &Opened, ip: &str, choice: &Choice) -> FlowResult<Prepared> {
    let resolved = o
        .connectors
        .client_card()
        .ok_or(FlowError::shopper(Reason::MethodNotAvailable))?;
    let conn = resolved.connector;
    check_lock(state, &key_for(o, ip, None)).await?;
    let card = resolve_choice(state, o, conn.as_ref(), &resolved.id, choice).await?;
    if let Some(p) = payments::live_for_checkout(&state.db, &o.checkout.id).await? {
        return reuse(state, o, conn.as_ref(), &resolved.id, p, &card).await;
    }
    let mut details = json!({
        "card_entry": BROWSER_ENTRY,
        "option": PaymentOption::Lump.code(),
        "option_label": PaymentOption::Lump.label_ja(),
    });
    if let Some(save) = &card.save {
        details["save_card"] = json!(save);
    }
    if let Some(id) = &card.saved_card {
        details["saved_card"] = json!(id);
    }
    let mut tx = state.db.begin().await?;
    let created = payments::create(
        &mut tx,
        &NewPayment {
            merchant_id: &o.merchant.id,
            checkout_id: &o.checkout.id,
            order_id: &o.checkout.order_id,
            method: Method::Card,
            institution: None,
            status: CardStatus::Awaiting3ds.into(),
            amount: o.checkout.amount,
            fee: 0,
            deadline_at: None,
            details,
            connector: &resolved.id,
        },
        "shopper",
        state.now_ms(),
    )
    .await;
    let p = match created {
        Ok(p) => p,
        Err(PaymentError::AlreadyLive) => return Err(in_progress()),
        Err(PaymentError::Db(e)) => return Err(FlowError::Db(e)),
        Err(PaymentError::Conflict) => return Err(in_progress()),
    };
    tx.commit().await?;

    let created = conn.create_intent(&intent_request(o, &p, &card)).await;
    let intent = match created {
        Ok(i) => i,
        Err(e) => {
            let mut tx = state.db.begin().await?;
            let _ = fail(
                &mut tx,
                &p,
                "processing_error",
                e.code(),
                "shopper",
                state.now_ms(),
            )
            .await;
            tx.commit().await?;
            state.wake_notifier();
            record_failure(state, &key_for(o, ip, None)).await?;
            return Err(connector_failed(e));
        }
    };
    store_ref(&state.db, &p.id, &intent.intent_id).await?;
    Ok(Prepared {
        payment_id: p.id,
        client_secret: intent.client_secret,
        plans: offered_plans(o, &card, &intent.available_plans),
    })
}

/// How the shopper pays on the card page, as posted by our script.
#[derive(Debug, Default, Clone)]
pub struct Choice {
    /// The processor's id of the card typed into its field (`pm_…`).
    pub payment_method: Option<String>,
    /// One of the checkout customer's saved cards (our id, `card_…`).
    pub saved_card: Option<String>,
    /// The shopper ticked "save this card" (needs the link's `customer_id`).
    pub save: bool,
}

/// A [`Choice`] checked against the checkout: what the intent is created with.
#[derive(Debug, Default)]
struct CardChoice {
    payment_method: Option<String>,
    customer: Option<String>,
    /// Kept in the payment's details: where to save the card once it is paid.
    save: Option<SaveTarget>,
    saved_card: Option<String>,
}

/// Where a card paid with consent is saved (in the payment's details until it is paid).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SaveTarget {
    pub customer_ref: String,
    pub account_id: String,
    pub processor_customer: String,
}

fn saved_card_unknown() -> FlowError {
    FlowError::Refused {
        kind: Refused::NotFound,
        code: "saved_card_not_found",
        message: "no such saved card for this customer".into(),
    }
}

async fn resolve_choice(
    state: &Ctx,
    o: &Opened,
    conn: &dyn ClientCardConnector,
    id: &ConnectorId,
    choice: &Choice,
) -> FlowResult<CardChoice> {
    let account = match id {
        ConnectorId::Account(a) => Some(a.as_str()),
        ConnectorId::Sandbox => None,
    };
    let customer_ref = o.checkout.customer_ref.as_deref();
    if let Some(saved) = &choice.saved_card {
        let (Some(r), Some(account)) = (customer_ref, account) else {
            return Err(saved_card_unknown());
        };
        let card = crate::db::saved_cards::get(&state.db, &o.merchant.id, r, saved)
            .await?
            .filter(|c| c.account_id == account)
            .ok_or_else(saved_card_unknown)?;
        return Ok(CardChoice {
            payment_method: Some(card.processor_method),
            customer: Some(card.processor_customer),
            save: None,
            saved_card: Some(card.id),
        });
    }
    let Some(pm) = choice.payment_method.clone() else {
        return Ok(CardChoice::default());
    };
    let (Some(r), Some(account), true) = (customer_ref, account, choice.save) else {
        return Ok(CardChoice {
            payment_method: Some(pm),
            ..CardChoice::default()
        });
    };
    let db = &state.db;
    let customer = match crate::db::saved_cards::customer(db, &o.merchant.id, r, account).await? {
        Some(c) => c,
        None => {
            // Idempotent per merchant customer and account: a lost answer or a race creates
            // one customer at the processor.
            let key = format!("kakehashi-customer-{}-{account}-{r}", o.merchant.id);
            let c = conn
                .create_customer(r, &key)
                .await
                .map_err(connector_failed)?;
            crate::db::saved_cards::put_customer(db, &o.merchant.id, r, account, &c, state.now_ms())
                .await?
        }
    };
    Ok(CardChoice {
        payment_method: Some(pm),
        customer: Some(customer.clone()),
        save: Some(SaveTarget {
            customer_ref: r.to_owned(),
            account_id: account.to_owned(),
            processor_customer: customer,
        }),
        saved_card: None,
    })
}

/// The merchant's card options (分割 counts, ボーナス, リボ) other than 一括.
fn merchant_plans(o: &Opened) -> Vec<PaymentOption> {
    let (opts, _) = crate::domain::card_form::merchant_card_settings(&o.merchant.card_options);
    opts.options()
        .iter()
        .copied()
        .filter(|p| *p != PaymentOption::Lump)
        .collect()
}

/// The plans to show: those the processor offers for the card that the merchant enabled, in
/// the merchant's order. None without a payment method (the browser confirms alone).
fn offered_plans(o: &Opened, card: &CardChoice, available: &[PaymentOption]) -> Vec<PaymentOption> {
    if card.payment_method.is_none() {
        return vec![];
    }
    merchant_plans(o)
        .into_iter()
        .filter(|p| available.contains(p))
        .collect()
}

/// The intent of a payment. The idempotency key is derived from our payment id, so asking
/// again (after a lost answer) returns the same intent.
fn intent_request(o: &Opened, p: &PaymentRow, card: &CardChoice) -> IntentRequest {
    IntentRequest {
        payment_id: p.id.clone(),
        order_id: o.checkout.order_id.clone(),
        amount: p.amount,
        capture_now: o.merchant.capture_mode == crate::domain::CaptureMode::Auto,
        idempotency_key: format!("kakehashi-intent-{}", p.id),
        payment_method: card.payment_method.clone(),
        // Plans are asked for only when the merchant offers some and the card is attached.
        installments: card.payment_method.is_some() && !merchant_plans(o).is_empty(),
        customer: card.customer.clone(),
        save: card.save.is_some(),
    }
}

/// Not a state change: the intent id is recorded before its secret leaves this server, so
/// every intent a browser could confirm is one we can retrieve.
async fn store_ref(db: &Db, payment_id: &str, intent_id: &str) -> FlowResult<()> {
    payments::set_connector_ref_once(db, payment_id, intent_id).await?;
    Ok(())
}

/// The checkout already has a live payment: hand out its intent again only while it still
/// waits for the shopper on the same connector. A payment whose intent id was never recorded
/// (the request creating it was cut off) gets it now: the same idempotency key returns the
/// same intent. A card chosen again (after leaving the plan choice) is attached to the intent;
/// saving it needs a new payment (the consent is recorded with the payment), so it is not
/// saved then.
async fn reuse(
    state: &Ctx,
    o: &Opened,
    conn: &dyn ClientCardConnector,
    id: &ConnectorId,
    p: PaymentRow,
    card: &CardChoice,
) -> FlowResult<Prepared> {
    let reusable = p.method == Method::Card
        && p.status == CardStatus::Awaiting3ds
        && p.connector == id.as_str()
        && p.details_json()["card_entry"] == BROWSER_ENTRY;
    if !reusable {
        return Err(in_progress());
    }
    let r = match p.connector_ref.clone() {
        Some(r) => r,
        None => {
            let intent = conn
                .create_intent(&intent_request(o, &p, card))
                .await
                .map_err(connector_failed)?;
            store_ref(&state.db, &p.id, &intent.intent_id).await?;
            intent.intent_id
        }
    };
    let mut intent = conn.retrieve_intent(&r).await.map_err(connector_failed)?;
    if intent.state != IntentState::AwaitingShopper {
        return Err(in_progress());
    }
    if let Some(pm) = &card.payment_method {
        if intent.payment_method.as_deref() != Some(pm.as_str()) {
            conn.set_payment_method(&r, pm, card.customer.as_deref())
                .await
                .map_err(connector_failed)?;
            intent = conn.retrieve_intent(&r).await.map_err(connector_failed)?;
        }
    }
    let client_secret = conn.client_secret(&r).await.map_err(connector_failed)?;
    Ok(Prepared {
        payment_id: p.id,
        client_secret,
        plans: offered_plans(o, card, &intent.available_plans),
    })
}

/// What the browser does after [`confirm`].
#[derive(Clone)]
pub enum Confirmed {
    /// The issuer asks for 3-D Secure: the processor's script completes it with this secret,
    /// then the browser comes back to the return URL.
    Action { client_secret: String },
    /// The processor decided (paid or declined): show the result.
    Done,
}

impl std::fmt::Debug for Confirmed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Confirmed::Action { .. } => "Action",
            Confirmed::Done => "Done",
        })
    }
}

/// Confirms the checkout's waiting intent (its card attached by [`prepare`]) with the plan
/// the shopper chose. The plan must be one the processor offers for this card (read from the
/// intent, not from the browser) and one the merchant enabled; 一括 always is.
///
/// A saved card of a merchant that asks for the security code again
/// ([`crate::db::merchants::MerchantRow::saved_card_cvc`]) is confirmed only with
/// `cvc_token`, the processor's token of the code the shopper typed into its field: without
/// one, `cvc_required` and nothing is sent. The processor checks the code with the payment.
pub async fn confirm(
    state: &Ctx,
    o: &Opened,
    ip: &str,
    option: PaymentOption,
    cvc_token: Option<&str>,
) -> FlowResult<Confirmed> {
    let resolved = o
        .connectors
        .client_card()
        .ok_or(FlowError::shopper(Reason::MethodNotAvailable))?;
    let conn = resolved.connector;
    check_lock(state, &key_for(o, ip, None)).await?;
    let p = payments::live_for_checkout(&state.db, &o.checkout.id)
        .await?
        .ok_or_else(in_progress)?;
    let waiting = p.method == Method::Card
        && p.status == CardStatus::Awaiting3ds
        && p.connector == resolved.id.as_str()
        && p.details_json()["card_entry"] == BROWSER_ENTRY;
    let Some(r) = p.connector_ref.clone().filter(|_| waiting) else {
        return Err(in_progress());
    };
    let intent = conn.retrieve_intent(&r).await.map_err(connector_failed)?;
    if intent.state != IntentState::AwaitingShopper {
        return Err(in_progress());
    }
    let allowed = option == PaymentOption::Lump
        || (merchant_plans(o).contains(&option) && intent.available_plans.contains(&option));
    if !allowed {
        return Err(FlowError::Refused {
            kind: Refused::Invalid,
            code: "option_not_available",
            message: format!(
                "the payment option {} is not offered for this card",
                option.code()
            ),
        });
    }
    let saved = p.details_json()["saved_card"].is_string();
    let cvc = if saved && o.merchant.saved_card_cvc() {
        Some(
            cvc_token
                .filter(|t| !t.is_empty())
                .ok_or_else(|| FlowError::Refused {
                    kind: Refused::Invalid,
                    code: "cvc_required",
                    message: "this shop asks for the security code of a saved card".into(),
                })?,
        )
    } else {
        // Not asked for: a token posted anyway is not sent (the merchant's setting decides).
        None
    };
    let plan = (option != PaymentOption::Lump).then_some(option);
    // A new security code is a new request to Stripe (same key, other parameters is an
    // error there): the token, single-use, is part of the key.
    let key = match cvc {
        Some(t) => format!("kakehashi-confirm-{}-{}-{t}", p.id, option.code()),
        None => format!("kakehashi-confirm-{}-{}", p.id, option.code()),
    };
    let after = conn
        .confirm_intent(&r, plan, cvc, &key)
        .await
        .map_err(connector_failed)?;
    if after.state == IntentState::AwaitingShopper {
        let client_secret = conn.client_secret(&r).await.map_err(connector_failed)?;
        return Ok(Confirmed::Action { client_secret });
    }
    let before = p.status;
    let row = settle(&state.db, conn.as_ref(), p, "shopper", state.now_ms()).await?;
    if row.status != before {
        state.wake_notifier();
        if row.status == CardStatus::Failed {
            record_failure(state, &key_for(o, ip, None)).await?;
        }
    }
    Ok(Confirmed::Done)
}

/// Marks a waiting payment failed.
async fn fail(
    tx: &mut Tx,
    p: &PaymentRow,
    reason: &str,
    detail: &str,
    actor: &str,
    now: i64,
) -> Result<PaymentRow, Applied> {
    let mut d = p.details_json();
    d["failure"] = json!(reason);
    apply(
        tx,
        p,
        &CardAction::Fail,
        "payment.failed",
        actor,
        json!({ "reason": reason, "detail": detail }),
        Some(d),
        now,
    )
    .await
}

/// The card details an intent reports, in the shape the console and receipts read.
fn with_card(p: &PaymentRow, i: &Intent) -> serde_json::Value {
    let mut d = p.details_json();
    if let Some(b) = &i.card.brand {
        // Stripe's brand codes (visa, mastercard, jcb, amex, diners) are ours.
        let brand = Brand::from_code(b);
        d["brand"] = json!(brand.map(|b| b.code()).unwrap_or(b.as_str()));
        d["brand_name"] = json!(brand.map(|b| b.display_name()).unwrap_or(b.as_str()));
    }
    if let Some(l) = &i.card.last4 {
        d["last4"] = json!(l);
    }
    if let (Some(m), Some(y)) = (i.card.exp_month, i.card.exp_year) {
        d["expiry"] = json!(format!("{m:02}/{:02}", y % 100));
    }
    d
}

/// Records what the processor says about a payment still waiting for its outcome: the intent
/// is retrieved (the browser's word is never taken), checked against the payment, and only a
/// forward change is applied. Returns the payment as it is now. A failed payment's intent is
/// cancelled at the processor afterwards, so its client secret cannot pay any more.
pub async fn settle(
    db: &Db,
    conn: &dyn ClientCardConnector,
    p: PaymentRow,
    actor: &str,
    now: i64,
) -> FlowResult<PaymentRow> {
    let waiting = matches!(
        p.status.card(),
        Some(CardStatus::Awaiting3ds | CardStatus::Challenge)
    );
    if p.method != Method::Card || !waiting {
        return Ok(p);
    }
    let Some(r) = p.connector_ref.clone() else {
        return Ok(p);
    };
    let i = conn.retrieve_intent(&r).await.map_err(connector_failed)?;
    if i.payment_id.as_deref() != Some(p.id.as_str())
        || i.amount != p.amount
        || !i.currency.eq_ignore_ascii_case("jpy")
    {
        tracing::error!(payment = %p.id, intent = %i.id, "the intent does not match the payment");
        return Err(FlowError::Refused {
            kind: Refused::Upstream,
            code: "connector_error",
            message: "the processor's intent does not match the payment".into(),
        });
    }
    let mut tx = db.begin().await?;
    let result = match &i.state {
        IntentState::AwaitingShopper | IntentState::Processing => return Ok(p),
        IntentState::Authorized | IntentState::Captured => {
            record_paid(&mut tx, &p, &i, actor, now).await
        }
        IntentState::Failed(f) => fail(&mut tx, &p, &f.reason, &f.processor_code, actor, now).await,
        IntentState::Cancelled => {
            fail(
                &mut tx,
                &p,
                "cancelled",
                "cancelled at the processor",
                actor,
                now,
            )
            .await
        }
    };
    match result {
        Ok(row) => {
            tx.commit().await?;
            if matches!(i.state, IntentState::Failed(_)) {
                if let Err(e) = conn
                    .cancel_intent(&r, &format!("kakehashi-cancel-{}", p.id))
                    .await
                {
                    tracing::warn!(payment = %p.id, code = e.code(), "cancelling a failed intent");
                }
            }
            Ok(row)
        }
        Err(Applied::NotForward | Applied::Conflict) => {
            drop(tx);
            Ok(payments::get(db, &p.id).await?.unwrap_or(p))
        }
        Err(Applied::Err(e)) => Err(e),
    }
}

/// Authorized (and, with automatic capture, captured) at the processor: both events in one
/// transaction, and the checkout paid.
async fn record_paid(
    tx: &mut Tx,
    p: &PaymentRow,
    i: &Intent,
    actor: &str,
    now: i64,
) -> Result<PaymentRow, Applied> {
    let mut d = with_card(p, i);
    // The processor ran 3-D Secure in the browser. When it reports no result (an exemption, or
    // a processor that does not say), the authorization is recorded as attempted (A).
    let three_ds = match &i.three_ds {
        Some(t) if t.allows_authorization() => t.clone(),
        other => ThreeDsResult {
            status: ThreeDsStatus::Attempted,
            eci: other.as_ref().and_then(|t| t.eci.clone()),
        },
    };
    d["three_ds"] = json!({ "status": three_ds.status.code(), "eci": three_ds.eci });
    d["processor_intent"] = json!(i.id);
    // The plan as the processor confirmed it (分割 / ボーナス / リボ), never the browser's word.
    let option = i.plan.unwrap_or(PaymentOption::Lump);
    d["option"] = json!(option.code());
    d["option_label"] = json!(option.label_ja());
    if let Some(code) = &i.approval_code {
        d["approval_code"] = json!(code);
    }
    let data = json!({ "amount": p.amount, "eci": three_ds.eci });
    let action = CardAction::Authorized {
        amount: p.amount,
        three_ds,
    };
    let mut row = apply(
        tx,
        p,
        &action,
        "payment.authorized",
        actor,
        data,
        Some(d),
        now,
    )
    .await?;
    if i.state == IntentState::Captured {
        let amount = if i.amount_received > 0 {
            i.amount_received
        } else {
            p.amount
        };
        row = apply(
            tx,
            &row,
            &CardAction::Capture { amount },
            "payment.captured",
            actor,
            json!({ "amount": amount }),
            None,
            now,
        )
        .await?;
    }
    payments::set_checkout_status(tx, &p.checkout_id, CheckoutStatus::Paid, now)
        .await
        .map_err(|e| Applied::Err(FlowError::Db(e)))?;
    save_card(tx, p, i, now)
        .await
        .map_err(|e| Applied::Err(FlowError::Db(e)))?;
    Ok(row)
}

/// The shopper agreed to save the card: once paid, and when the processor reports the card
/// kept on the customer, its ids, brand, last 4 and expiry are saved, in the same transaction.
async fn save_card(tx: &mut Tx, p: &PaymentRow, i: &Intent, now: i64) -> Result<(), sqlx::Error> {
    let Ok(target) = serde_json::from_value::<SaveTarget>(p.details_json()["save_card"].clone())
    else {
        return Ok(());
    };
    let (Some(pm), Some(brand), Some(last4), Some(m), Some(y)) = (
        &i.payment_method,
        &i.card.brand,
        &i.card.last4,
        i.card.exp_month,
        i.card.exp_year,
    ) else {
        return Ok(());
    };
    if !i.saves_card || i.customer.as_deref() != Some(target.processor_customer.as_str()) {
        tracing::warn!(payment = %p.id, "the processor did not keep the card on the customer");
        return Ok(());
    }
    let brand = Brand::from_code(brand)
        .map(|b| b.code().to_owned())
        .unwrap_or(brand.clone());
    crate::db::saved_cards::insert(
        tx,
        &crate::db::saved_cards::NewSavedCard {
            merchant_id: &p.merchant_id,
            customer_ref: &target.customer_ref,
            account_id: &target.account_id,
            processor_customer: &target.processor_customer,
            processor_method: pm,
            brand: &brand,
            last4,
            exp_month: i64::from(m),
            exp_year: i64::from(y),
        },
        now,
    )
    .await
}

/// The shopper came back from the processor's script: settles the checkout's newest browser
/// card payment. `None` when the checkout has none.
pub async fn settle_return(state: &Ctx, o: &Opened, ip: &str) -> FlowResult<Option<PaymentRow>> {
    let Some(p) = payments::latest_for_checkout(&state.db, &o.checkout.id).await? else {
        return Ok(None);
    };
    let Some(conn) = o.connectors.client_card_for(&p.connector_id()) else {
        return Ok(Some(p));
    };
    let before = p.status;
    let row = settle(&state.db, conn.as_ref(), p, "shopper", state.now_ms()).await?;
    if row.status != before {
        state.wake_notifier();
        if row.status == CardStatus::Failed {
            record_failure(state, &key_for(o, ip, None)).await?;
        }
    }
    Ok(Some(row))
}

/// What happened to an inbound event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookOutcome {
    /// About one of our payments: its intent was retrieved and any forward change applied.
    Applied,
    /// Seen before: acknowledged, nothing done.
    Duplicate,
    /// A type or object we do not act on: acknowledged.
    Ignored,
}

/// Why an inbound event was not acknowledged.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("no such account")]
    UnknownAccount,
    #[error("the account's credentials cannot be opened on this server")]
    Unavailable,
    #[error(transparent)]
    Refused(#[from] WebhookError),
    #[error("applying the event failed: {0}")]
    Failed(String),
}

impl From<crate::db::Error> for HookError {
    fn from(e: crate::db::Error) -> Self {
        HookError::Failed(e.to_string())
    }
}

/// An inbound event for one processor account: verified with the account's webhook secret,
/// applied at most once (its id is stored per account), and applied by retrieving the intent
/// it names — so an event that arrives late, twice or out of order cannot move a payment back.
pub async fn webhook(
    state: &Ctx,
    processor: Processor,
    account_id: &str,
    payload: &[u8],
    signature: &str,
) -> Result<HookOutcome, HookError> {
    let db = &state.db;
    let account = crate::db::processors::get(db, account_id)
        .await?
        .filter(|a| a.processor == processor)
        .ok_or(HookError::UnknownAccount)?;
    let merchant = crate::db::merchants::get(db, &account.merchant_id)
        .await?
        .ok_or(HookError::UnknownAccount)?;
    let id = ConnectorId::Account(account.id.clone());
    let connectors = crate::flows::merchant_connectors(state, &merchant).await?;
    let conn = connectors
        .client_card_for(&id)
        .ok_or(HookError::Unavailable)?;
    let event = conn.verify_webhook(payload, signature, state.now_ms() / 1000)?;
    if crate::db::processor_events::seen(db, &account.id, &event.id).await? {
        return Ok(HookOutcome::Duplicate);
    }
    let payment = match &event.intent_id {
        Some(intent) if event.kind.starts_with("payment_intent.") => {
            payments::card_by_account_ref(db, &account.id, intent).await?
        }
        _ => None,
    };
    // Not a card payment: a konbini number issued through the same account (Stripe's
    // `konbini` PaymentIntents send the same events).
    let number = match (&payment, &event.intent_id) {
        (None, Some(intent)) if event.kind.starts_with("payment_intent.") => {
            payments::number_by_account_ref(db, &account.id, intent).await?
        }
        _ => None,
    };
    let outcome = match &payment {
        Some(p) => {
            let before = p.status;
            let row = settle(
                db,
                conn.as_ref(),
                p.clone(),
                "processor:webhook",
                state.now_ms(),
            )
            .await
            .map_err(|e| HookError::Failed(e.to_string()))?;
            if row.status != before {
                state.wake_notifier();
                // A decline counts towards the checkout's card-testing limit even when the
                // browser never comes back (its intent is cancelled by `settle`).
                if row.status == CardStatus::Failed {
                    let source = format!("event:{}", row.checkout_id);
                    let key = crate::db::card_attempts::AttemptKey {
                        checkout_id: &row.checkout_id,
                        client_ip: &source,
                        card_key: None,
                    };
                    record_failure(state, &key)
                        .await
                        .map_err(|e| HookError::Failed(e.to_string()))?;
                }
            }
            HookOutcome::Applied
        }
        None => match &number {
            Some(p) => {
                let numbers = connectors.number_for(&id).ok_or(HookError::Unavailable)?;
                let changed = crate::flows::number_sync::from_processor(
                    db,
                    numbers.as_ref(),
                    p,
                    "processor:webhook",
                    state.now_ms(),
                )
                .await
                .map_err(|e| HookError::Failed(e.to_string()))?;
                if changed.is_some() {
                    state.wake_notifier();
                }
                HookOutcome::Applied
            }
            None => HookOutcome::Ignored,
        },
    };
    let mut tx = db.begin().await?;
    crate::db::processor_events::record_with(
        &mut tx,
        &account.id,
        &event.id,
        &event.kind,
        payment.as_ref().or(number.as_ref()).map(|p| p.id.as_str()),
        match outcome {
            HookOutcome::Applied => "applied",
            _ => "ignored",
        },
        state.now_ms(),
    )
    .await?;
    tx.commit().await?;
    Ok(outcome)
}

/// Browser card payments whose outcome never came (the shopper closed the tab during 3-D
/// Secure, or the return and the events were lost): each is settled from its intent; one still
/// waiting for the shopper after [`PENDING_TTL`] has its intent cancelled at the processor and
/// fails (`challenge_expired`). Returns how many payments changed.
///
/// Stripe is asked about a waiting payment during its second minute (the shopper paid but
/// neither came back nor was an event received) and again once it is past the TTL, not on
/// every sweep in between: events and the return settle the rest.
pub async fn reconcile(db: &Db, registry: &Arc<Registry>, now: i64) -> anyhow::Result<usize> {
    let expired_before = now - PENDING_TTL.as_millis() as i64;
    let due = payments::browser_card_waiting(
        db,
        now - RECONCILE_AFTER_MS,
        now - 2 * RECONCILE_AFTER_MS,
        expired_before,
    )
    .await?;
    let mut n = 0;
    for p in due {
        let Some(m) = crate::db::merchants::get(db, &p.merchant_id).await? else {
            continue;
        };
        let Some(conn) = crate::flows::connectors_for(registry, db, &m)
            .await?
            .client_card_for(&p.connector_id())
        else {
            continue;
        };
        let expired = p.updated_at < expired_before;
        let row = match &p.connector_ref {
            Some(_) => match settle(db, conn.as_ref(), p.clone(), "system:reconcile", now).await {
                Ok(row) => row,
                Err(e) => {
                    tracing::warn!(payment = %p.id, error = %e, "browser card reconciliation");
                    continue;
                }
            },
            None => p.clone(),
        };
        if row.status != p.status {
            n += 1;
            continue;
        }
        if !expired {
            continue;
        }
        // Still waiting after the TTL: stop the intent first, so the shopper's browser can no
        // longer pay it, then fail the payment. If the cancel is refused (the intent just
        // succeeded), the next sweep settles it instead.
        if let Some(r) = &p.connector_ref {
            if let Err(e) = conn
                .cancel_intent(r, &format!("kakehashi-expire-{}", p.id))
                .await
            {
                tracing::warn!(payment = %p.id, code = e.code(), "cancelling an abandoned intent");
                continue;
            }
        }
        let mut tx = db.begin().await?;
        if fail(
            &mut tx,
            &row,
            "challenge_expired",
            "the shopper did not finish",
            "system:timeout",
            now,
        )
        .await
        .is_ok()
        {
            tx.commit().await?;
            n += 1;
        }
    }
    Ok(n)
}
