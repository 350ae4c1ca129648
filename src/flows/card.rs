//! The card flow: validate the form, run EMV 3-D Secure and authorization through the
//! connector, and capture / cancel / refund later. Every change goes through
//! [`payments::transition`] after the pure [`card::apply`] check.
//!
//! Card data never touches logs, and the database only sealed: between a sandbox 3-D Secure
//! challenge and the authorization that follows it, the card waits in `pending_cards` for at
//! most [`PENDING_TTL`] ([`card_hold`]: PCI DSS allows sensitive data until authorization), so
//! any instance can finish the challenge. A processor that authenticates on its own page
//! (KOMOJU) keeps the card itself: the shopper is redirected there and back to our signed
//! return ([`complete_redirect`]), and nothing is held here.

use std::sync::Arc;

use serde_json::json;

use crate::connectors::card::{
    AuthenticateOutcome, AuthenticateRequest, AuthenticatedAuthorizeRequest, AuthorizeOutcome,
    AuthorizeRequest, CardConnector, ChallengeOutcome, ConnectorError, MAX_CHALLENGE_ATTEMPTS,
};
use crate::connectors::registry::Registry;
use crate::connectors::signed_return::{
    signed_query, verify_signed_params, RETURN_MAX_AGE_MS, SIG_FIELD, TS_FIELD,
};
use crate::context::Ctx;
use crate::db::card_attempts::{self, AttemptKey};
use crate::db::operations::{self, OpKind};
use crate::db::payments::{self, Change, NewPayment, PaymentError, PaymentRow};
use crate::db::{Db, Tx};
use crate::domain::card::{self, CardAction, CardNumber, CardPayment, CardStatus, ThreeDsResult};
use crate::domain::reason::Reason;
use crate::domain::CaptureMode;
use crate::domain::CheckoutStatus;
use crate::domain::Method;
use crate::flows::card_hold;
use crate::flows::checkout::Opened;
use crate::flows::error::{FlowError, FlowResult, Refused};

pub use crate::context::PENDING_TTL;
pub use crate::domain::card_form::{merchant_card_settings, parse_form, CardInput, FieldErrors};

/// What happened to a pay or challenge submission.
pub enum PayOutcome {
    /// Authorized (and captured, with automatic capture).
    Done(PaymentRow),
    /// The issuer wants a one-time code.
    Challenge {
        payment: PaymentRow,
        attempts_left: u32,
        wrong_code: bool,
    },
    /// Declined or 3-D Secure failed: the shopper may retry or choose another method.
    Failed {
        payment: PaymentRow,
        message_ja: String,
        message_en: String,
    },
    /// Another submission for this checkout is being processed (double submit).
    InProgress(PaymentRow),
    /// 3-D Secure on the processor's own page: send the shopper to `url`; they come back to
    /// our signed return ([`complete_redirect`]).
    Redirect { payment: PaymentRow, url: String },
}

/// The fields of our signed 3-D Secure return (anything the processor appends is dropped).
const RETURN_FIELDS: [&str; 3] = ["payment_id", TS_FIELD, SIG_FIELD];

/// The key 3-D Secure return URLs are signed with: derived from the server secret (its own
/// purpose), so every instance verifies what another signed.
fn return_key(state: &Ctx) -> Vec<u8> {
    crate::connectors::registry::derived_secret(&state.secret, "card-3ds-return")
}

/// Where the processor's 3-D Secure page sends the shopper back: our payment id and the time,
/// signed, valid [`RETURN_MAX_AGE_MS`].
fn return_url(state: &Ctx, token: &str, payment_id: &str) -> String {
    let ts = state.now_ms().to_string();
    let q = signed_query(
        &return_key(state),
        &[("payment_id", payment_id), (TS_FIELD, &ts)],
    );
    format!("{}/pay/{token}/card/3ds-return?{q}", state.public_url)
}

/// The stored payment as the card state machine sees it.
pub(crate) fn card_state(p: &PaymentRow) -> FlowResult<CardPayment> {
    let status = p
        .status
        .card()
        .ok_or_else(|| anyhow::anyhow!("payment {} has non-card status {}", p.id, p.status))?;
    let authorized_amount = if matches!(
        status,
        CardStatus::Awaiting3ds | CardStatus::Challenge | CardStatus::Failed
    ) {
        0
    } else {
        p.amount
    };
    Ok(CardPayment {
        status,
        amount: p.amount,
        authorized_amount,
        captured_amount: p.captured_amount,
        refunded_amount: p.refunded_amount,
    })
}

/// Checks the transition with the pure state machine, then writes it.
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
) -> FlowResult<PaymentRow> {
    let change = change_for(p, action, event, actor, data, details, now)?;
    payments::transition(tx, p, &change, now)
        .await
        .map_err(pay_err)
}

/// The change `action` makes to `p`, refused when the state machine forbids it.
fn change_for<'a>(
    p: &PaymentRow,
    action: &CardAction,
    event: &'a str,
    actor: &'a str,
    data: serde_json::Value,
    details: Option<serde_json::Value>,
    now: i64,
) -> FlowResult<Change<'a>> {
    let next = card::apply(&card_state(p)?, action).map_err(|e| FlowError::Refused {
        kind: Refused::Conflict,
        code: e.code(),
        message: format!(
            "{} is not allowed while the payment is {}",
            action.name(),
            p.status
        ),
    })?;
    let mut change = Change::new(next.status, event, actor);
    change.captured_amount = Some(next.captured_amount);
    change.refunded_amount = Some(next.refunded_amount);
    change.amount = data.get("amount").and_then(|a| a.as_i64());
    change.data = data;
    change.details = details;
    if next.status == CardStatus::Captured && p.paid_at.is_none() {
        change.paid_at = Some(now);
    }
    Ok(change)
}

/// Writes an approved authorization: the payment authorized with the processor's reference
/// (`token`), and its checkout paid. The reference rides the state change's UPDATE: one new
/// version of the row instead of two. `connector_ref` is indexed, so on PostgreSQL a second
/// UPDATE could never be a HOT one and wrote an entry into every index of `payments`
/// (bench/README.md, change 26).
#[allow(clippy::too_many_arguments)]
async fn write_authorized(
    tx: &mut Tx,
    p: &PaymentRow,
    three_ds: ThreeDsResult,
    token: &str,
    actor: &str,
    data: serde_json::Value,
    details: serde_json::Value,
    now: i64,
) -> FlowResult<PaymentRow> {
    let action = CardAction::Authorized {
        amount: p.amount,
        three_ds,
    };
    let mut change = change_for(
        p,
        &action,
        "payment.authorized",
        actor,
        data,
        Some(details),
        now,
    )?;
    change.connector_ref = Some(token);
    let row = payments::transition(tx, p, &change, now)
        .await
        .map_err(pay_err)?;
    payments::set_checkout_status(tx, &p.checkout_id, CheckoutStatus::Paid, now).await?;
    Ok(row)
}

fn pay_err(e: PaymentError) -> FlowError {
    match e {
        PaymentError::Conflict => FlowError::Refused {
            kind: Refused::Conflict,
            code: "concurrent_change",
            message: "the payment changed concurrently; reload and retry".into(),
        },
        PaymentError::AlreadyLive => FlowError::shopper(Reason::CheckoutClosed),
        PaymentError::Db(e) => FlowError::Db(e),
    }
}

/// The keyed hash a card is counted under: HMAC-SHA256 of its digits with the server secret,
/// so the attempts table can link one card's failures across checkouts without holding
/// anything that identifies the card to someone who reads the table.
pub fn card_key(secret: &[u8], card: &CardNumber) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret).expect("HMAC takes any key size");
    mac.update(b"kakehashi/card-attempts/v1\0");
    mac.update(card.expose_digits().as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Refuses a card attempt past a limit: the checkout's own failures, the card's failures on
/// any checkout in the last hour, or the client address's failures in the last hour.
///
/// The address limit is the weakest signal (shoppers behind carrier NAT, an office or a
/// proxy not listed in `KAKEHASHI_TRUSTED_PROXIES` share one), so a checkout that has not
/// failed itself is refused by address only at card-testing volume (ten times the limit);
/// once it has failed, three times the limit is enough.
pub async fn check_lock(state: &Ctx, key: &AttemptKey<'_>) -> FlowResult<()> {
    let max = state.config.card_max_failures;
    let since = state.now_ms() - 3_600_000;
    let f = card_attempts::failures(&state.db, key, since).await?;
    let address_limit = if f.checkout > 0 { max * 3 } else { max * 10 };
    if f.checkout >= max || f.card >= max || f.address >= address_limit {
        return Err(FlowError::shopper(Reason::Locked));
    }
    Ok(())
}

/// Records a failed card attempt; at a limit the lock is logged for the merchant (never the
/// card or its key).
pub async fn record_failure(state: &Ctx, key: &AttemptKey<'_>) -> FlowResult<()> {
    card_attempts::record_failure(&state.db, key, state.now_ms()).await?;
    if check_lock(state, key).await.is_err() {
        tracing::warn!(
            checkout = key.checkout_id,
            "card attempts locked: too many failures"
        );
    }
    Ok(())
}

/// The attempt key of a checkout's card payment from `ip`.
pub fn key_for<'a>(o: &'a Opened, ip: &'a str, card: Option<&'a str>) -> AttemptKey<'a> {
    AttemptKey {
        checkout_id: &o.checkout.id,
        client_ip: ip,
        card_key: card,
    }
}

fn card_details(input: &CardInput) -> serde_json::Value {
    json!({
        "brand": input.card.brand().code(),
        "brand_name": input.card.brand().display_name(),
        "bin6": input.card.bin6(),
        "last4": input.card.last4(),
        "expiry": input.expiry.to_string(),
        "option": input.option.code(),
        "option_label": input.option.label_ja(),
    })
}

/// Pays a checkout by card: creates the payment (the unique index admits one live payment per
/// checkout, so concurrent submissions cannot double-charge), then 3-D Secure and authorization.
/// `token` is the shopper's session token, for the 3-D Secure return URL.
pub async fn pay(
    state: &Ctx,
    o: &Opened,
    input: CardInput,
    ip: &str,
    token: &str,
) -> FlowResult<PayOutcome> {
    let ck = card_key(&state.secret, &input.card);
    let key = key_for(o, ip, Some(&ck));
    check_lock(state, &key).await?;
    let resolved = o
        .connectors
        .card()
        .ok_or(FlowError::shopper(Reason::MethodNotAvailable))?;
    let connector = resolved.connector;
    let mut tx = state.db.begin().await?;
    let created = payments::create(
        &mut tx,
        &NewPayment {
            merchant_id: &o.merchant.id,
            checkout_id: &o.checkout.id,
            order_id: &o.checkout.order_id,
            method: Method::Card,
            institution: Some(input.card.brand().display_name()),
            status: CardStatus::Awaiting3ds.into(),
            amount: o.checkout.amount,
            fee: 0,
            deadline_at: None,
            details: card_details(&input),
            connector: &resolved.id,
        },
        "shopper",
        state.now_ms(),
    )
    .await;
    let p = match created {
        Ok(p) => p,
        Err(PaymentError::AlreadyLive) => {
            let live = payments::live_after_conflict(&state.db, tx, &o.checkout.id)
                .await?
                .ok_or(FlowError::shopper(Reason::CheckoutClosed))?;
            return Ok(PayOutcome::InProgress(live));
        }
        Err(e) => return Err(pay_err(e)),
    };
    tx.commit().await?;

    let auth = connector
        .authenticate(&AuthenticateRequest {
            payment_id: p.id.clone(),
            mode: o.connectors.mode(),
            card: input.card.clone(),
            expiry: input.expiry,
            amount: p.amount,
            cvc: input.cvc.clone(),
            holder: input.holder.clone(),
            return_url: return_url(state, token, &p.id),
        })
        .await;
    match auth {
        Ok(AuthenticateOutcome::Frictionless(three_ds)) => {
            authorize(state, o, &connector, p, input, three_ds, &key).await
        }
        Ok(AuthenticateOutcome::Challenge {
            challenge_id,
            acs_url: Some(url),
        }) => {
            // The processor keeps the card for the authorization that follows: nothing is held
            // here, and the card leaves scope with this request.
            drop(input);
            let mut details = p.details_json();
            details["challenge_id"] = json!(challenge_id);
            details["acs_url"] = json!(url);
            let mut tx = state.db.begin().await?;
            let p = apply(
                &mut tx,
                &p,
                &CardAction::ChallengeRequired,
                "payment.challenge_required",
                "shopper",
                json!({}),
                Some(details),
                state.now_ms(),
            )
            .await?;
            tx.commit().await?;
            Ok(PayOutcome::Redirect { payment: p, url })
        }
        Ok(AuthenticateOutcome::Challenge { challenge_id, .. }) => {
            let mut details = p.details_json();
            details["challenge_id"] = json!(challenge_id);
            details["wrong_codes"] = json!(0);
            let mut tx = state.db.begin().await?;
            let p = apply(
                &mut tx,
                &p,
                &CardAction::ChallengeRequired,
                "payment.challenge_required",
                "shopper",
                json!({}),
                Some(details),
                state.now_ms(),
            )
            .await?;
            card_hold::put(&mut tx, state, &p.id, &input).await?;
            tx.commit().await?;
            Ok(PayOutcome::Challenge {
                payment: p,
                attempts_left: MAX_CHALLENGE_ATTEMPTS,
                wrong_code: false,
            })
        }
        Err(e) => fail(state, p, "processing_error", e.code(), &key).await,
    }
}

/// Authorizes after a successful 3-D Secure result; captures at once with automatic capture.
async fn authorize(
    state: &Ctx,
    o: &Opened,
    connector: &Arc<dyn CardConnector>,
    p: PaymentRow,
    input: CardInput,
    three_ds: ThreeDsResult,
    key: &AttemptKey<'_>,
) -> FlowResult<PayOutcome> {
    let mut details = p.details_json();
    details["three_ds"] = json!({ "status": three_ds.status.code(), "eci": three_ds.eci });
    if !three_ds.allows_authorization() {
        return fail_with(
            state,
            p,
            "authentication_failed",
            three_ds.status.code(),
            key,
            Some(details),
        )
        .await;
    }
    let result = connector
        .authorize(&AuthorizeRequest {
            payment_id: p.id.clone(),
            mode: o.connectors.mode(),
            card: input.card,
            expiry: input.expiry,
            cvc: input.cvc,
            holder: input.holder,
            amount: p.amount,
            option: input.option,
            three_ds: three_ds.clone(),
        })
        .await;
    record_authorization(state, o, p, details, three_ds, result, key).await
}

/// Records the connector's answer to an authorization: approved (captured at once with
/// automatic capture), declined, or failed.
async fn record_authorization(
    state: &Ctx,
    o: &Opened,
    p: PaymentRow,
    mut details: serde_json::Value,
    three_ds: ThreeDsResult,
    result: Result<AuthorizeOutcome, ConnectorError>,
    key: &AttemptKey<'_>,
) -> FlowResult<PayOutcome> {
    match result {
        Ok(AuthorizeOutcome::Approved {
            token,
            approval_code,
        }) => {
            // Some processors (KOMOJU) do not tell the 承認番号: no empty row for staff then.
            if !approval_code.is_empty() {
                details["approval_code"] = json!(approval_code);
            }
            let mut tx = state.db.begin().await?;
            let mut change_data = json!({ "amount": p.amount });
            change_data["eci"] = details["three_ds"]["eci"].clone();
            let p2 = write_authorized(
                &mut tx,
                &p,
                three_ds,
                &token,
                "shopper",
                change_data,
                details,
                state.now_ms(),
            )
            .await?;
            tx.commit().await?;
            state.wake_notifier();
            if o.merchant.capture_mode == CaptureMode::Auto {
                // 即時売上: capture the full amount now. A failed capture leaves the payment
                // authorized for the merchant to capture later; the shopper has still paid.
                match capture(state, &p2.id, None, "system:auto-capture").await {
                    Ok(p3) => return Ok(PayOutcome::Done(p3)),
                    Err(e) => {
                        tracing::warn!(payment = %p2.id, error = %e, "automatic capture failed")
                    }
                }
            }
            Ok(PayOutcome::Done(p2))
        }
        Ok(AuthorizeOutcome::Declined { reason }) => {
            fail_with(state, p, reason.code(), reason.code(), key, Some(details)).await
        }
        Err(e) => fail_with(state, p, "processing_error", e.code(), key, Some(details)).await,
    }
}

async fn fail(
    state: &Ctx,
    p: PaymentRow,
    reason: &str,
    detail: &str,
    key: &AttemptKey<'_>,
) -> FlowResult<PayOutcome> {
    fail_with(state, p, reason, detail, key, None).await
}

/// Marks the payment failed (event + notification), counts the failure, and explains it.
#[allow(clippy::too_many_arguments)]
async fn fail_with(
    state: &Ctx,
    p: PaymentRow,
    reason: &str,
    detail: &str,
    key: &AttemptKey<'_>,
    details: Option<serde_json::Value>,
) -> FlowResult<PayOutcome> {
    let mut details = details.unwrap_or_else(|| p.details_json());
    details["failure"] = json!(reason);
    let mut tx = state.db.begin().await?;
    let p = apply(
        &mut tx,
        &p,
        &CardAction::Fail,
        "payment.failed",
        "shopper",
        json!({ "reason": reason, "detail": detail }),
        Some(details),
        state.now_ms(),
    )
    .await?;
    card_hold::drop_in(&mut tx, &p.id).await?;
    tx.commit().await?;
    state.wake_notifier();
    record_failure(state, key).await?;
    let (ja, en) = failure_message(reason);
    Ok(PayOutcome::Failed {
        payment: p,
        message_ja: ja.into(),
        message_en: en.into(),
    })
}

/// Shopper-readable reason for a failure code.
pub fn failure_message(reason: &str) -> (&'static str, &'static str) {
    use crate::connectors::card::DeclineReason;
    if let Some(d) = DeclineReason::parse(reason) {
        return (d.message_ja(), d.message_en());
    }
    match reason {
        "authentication_failed" => (
            "カード会社の本人認証（3Dセキュア）に失敗しました。別のカードまたはお支払い方法をお試しください。",
            "3-D Secure authentication failed. Please try another card or payment method.",
        ),
        "challenge_cancelled" => (
            "本人認証を中止しました。",
            "You cancelled the card authentication.",
        ),
        "challenge_expired" => (
            "本人認証の有効時間が過ぎました。もう一度カード情報を入力してください。",
            "The authentication session expired. Please enter your card again.",
        ),
        _ => (
            "カード決済を処理できませんでした。時間をおいて再度お試しください。",
            "The card payment could not be processed. Please try again later.",
        ),
    }
}

/// The shopper left the issuer's challenge page for another method: the payment fails
/// (`challenge_cancelled`, event + notification) and its card data is dropped. Not counted as a
/// failed attempt (nothing was wrong with the card). A payment no longer in the challenge is
/// left as it is.
pub async fn abandon_challenge(state: &Ctx, o: &Opened, payment_id: &str) -> FlowResult<()> {
    let Some(p) = payments::get(&state.db, payment_id)
        .await?
        .filter(|p| p.checkout_id == o.checkout.id && p.method == Method::Card)
    else {
        return Ok(());
    };
    if p.status != CardStatus::Challenge {
        return Ok(());
    }
    let mut d = p.details_json();
    d["failure"] = json!("challenge_cancelled");
    let mut tx = state.db.begin().await?;
    apply(
        &mut tx,
        &p,
        &CardAction::Fail,
        "payment.failed",
        "shopper",
        json!({ "reason": "challenge_cancelled", "detail": "shopper chose another method" }),
        Some(d),
        state.now_ms(),
    )
    .await?;
    card_hold::drop_in(&mut tx, &p.id).await?;
    tx.commit().await?;
    state.wake_notifier();
    Ok(())
}

/// Checks the shopper's one-time code on the sandbox issuer page.
pub async fn complete_challenge(
    state: &Ctx,
    o: &Opened,
    payment_id: &str,
    otp: &str,
    ip: &str,
) -> FlowResult<PayOutcome> {
    let p = payments::get(&state.db, payment_id)
        .await?
        .filter(|p| p.checkout_id == o.checkout.id && p.method == Method::Card)
        .ok_or(FlowError::shopper(Reason::NotFound))?;
    // A challenge on the processor's own page is finished by the shopper's return, never by a
    // code posted here.
    if p.status != CardStatus::Challenge || p.details_json()["acs_url"].is_string() {
        return Ok(outcome_of(p));
    }
    let connector = o
        .connectors
        .card_for(&p.connector_id())
        .ok_or(FlowError::shopper(Reason::MethodNotAvailable))?;
    let details = p.details_json();
    let challenge_id = details["challenge_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let wrong = details["wrong_codes"].as_u64().unwrap_or(0) as u32;
    if !card_hold::held(state, &p.id).await? {
        // The card is no longer held (too slow: expired, or swept).
        let key = key_for(o, ip, None);
        return fail(state, p, "challenge_expired", "card data gone", &key).await;
    }
    match connector
        .complete_challenge(&challenge_id, otp.trim())
        .await
    {
        Ok(ChallengeOutcome::Completed(three_ds)) => {
            // Taken (deleted) before the authorization is sent: never held after it.
            let Some(input) = card_hold::take(state, &p.id).await? else {
                // Another submission took it first (a double submit to two instances), or it
                // expired just now: answer with the payment as it stands.
                let current = payments::get(&state.db, &p.id).await?.unwrap_or(p);
                return Ok(outcome_of(current));
            };
            let ck = card_key(&state.secret, &input.card);
            let key = key_for(o, ip, Some(&ck));
            authorize(state, o, &connector, p, input, three_ds, &key).await
        }
        Ok(ChallengeOutcome::WrongCode) => {
            let wrong = wrong + 1;
            if wrong >= MAX_CHALLENGE_ATTEMPTS {
                let ck = card_hold::take(state, &p.id)
                    .await?
                    .map(|input| card_key(&state.secret, &input.card));
                let key = key_for(o, ip, ck.as_deref());
                let mut d = details.clone();
                d["three_ds"] = json!({ "status": "N", "eci": null });
                return fail_with(
                    state,
                    p,
                    "authentication_failed",
                    "too many wrong codes",
                    &key,
                    Some(d),
                )
                .await;
            }
            let mut d = details.clone();
            d["wrong_codes"] = json!(wrong);
            let mut tx = state.db.begin().await?;
            payments::set_details_if(
                &mut tx,
                &p,
                &d,
                CardStatus::Challenge.into(),
                state.now_ms(),
            )
            .await?;
            tx.commit().await?;
            let p = payments::get(&state.db, &p.id)
                .await?
                .ok_or(FlowError::shopper(Reason::NotFound))?;
            Ok(PayOutcome::Challenge {
                payment: p,
                attempts_left: MAX_CHALLENGE_ATTEMPTS - wrong,
                wrong_code: true,
            })
        }
        Err(e) => {
            fail(
                state,
                p,
                "processing_error",
                e.code(),
                &key_for(o, ip, None),
            )
            .await
        }
    }
}

/// The shopper is back from the processor's 3-D Secure page. The return must carry our
/// signature (else `ReturnRejected`, nothing changes); the outcome is never read from it: the
/// connector is asked for the authentication result, and only a verified one is authorized —
/// by the challenge id, the card itself being at the processor. A reload after the payment
/// moved on shows it as it stands.
pub async fn complete_redirect(
    state: &Ctx,
    o: &Opened,
    params: &[(String, String)],
    ip: &str,
) -> FlowResult<PayOutcome> {
    let ours: Vec<(String, String)> = params
        .iter()
        .filter(|(k, _)| RETURN_FIELDS.contains(&k.as_str()))
        .cloned()
        .collect();
    let f = verify_signed_params(&return_key(state), &ours, state.now_ms(), RETURN_MAX_AGE_MS)
        .map_err(|e| {
            tracing::warn!(error = %e, "card 3-D Secure return refused");
            FlowError::shopper(Reason::ReturnRejected)
        })?;
    let payment_id = f.get("payment_id").map(String::as_str).unwrap_or("");
    let p = payments::get(&state.db, payment_id)
        .await?
        .filter(|p| p.checkout_id == o.checkout.id && p.method == Method::Card)
        .ok_or(FlowError::shopper(Reason::ReturnRejected))?;
    let details = p.details_json();
    let Some(challenge_id) = details["challenge_id"]
        .as_str()
        .filter(|_| p.status == CardStatus::Challenge && details["acs_url"].is_string())
        .map(str::to_owned)
    else {
        return Ok(outcome_of(p));
    };
    let connector = o
        .connectors
        .card_for(&p.connector_id())
        .ok_or(FlowError::shopper(Reason::MethodNotAvailable))?;
    let key = key_for(o, ip, None);
    let three_ds = match connector.complete_challenge(&challenge_id, "").await {
        Ok(ChallengeOutcome::Completed(r)) => r,
        Ok(ChallengeOutcome::WrongCode) => {
            return fail(state, p, "authentication_failed", "wrong code", &key).await
        }
        Err(e) => return fail(state, p, "processing_error", e.code(), &key).await,
    };
    let mut d = details.clone();
    d["three_ds"] = json!({ "status": three_ds.status.code(), "eci": three_ds.eci });
    if !three_ds.allows_authorization() {
        return fail_with(
            state,
            p,
            "authentication_failed",
            three_ds.status.code(),
            &key,
            Some(d),
        )
        .await;
    }
    let option = details["option"]
        .as_str()
        .and_then(|c| crate::domain::card::PaymentOption::parse(c).ok())
        .unwrap_or(crate::domain::card::PaymentOption::Lump);
    let result = connector
        .authorize_authenticated(&AuthenticatedAuthorizeRequest {
            payment_id: p.id.clone(),
            mode: o.connectors.mode(),
            challenge_id,
            amount: p.amount,
            option,
            three_ds: three_ds.clone(),
        })
        .await;
    let id = p.id.clone();
    match record_authorization(state, o, p, d, three_ds, result, &key).await {
        // A second return (a double click, two tabs) got the same idempotent answer and
        // recorded it first: show the payment as it stands.
        Err(FlowError::Refused {
            kind: Refused::Conflict,
            ..
        }) => {
            let now = payments::get(&state.db, &id)
                .await?
                .ok_or(FlowError::shopper(Reason::NotFound))?;
            Ok(outcome_of(now))
        }
        other => other,
    }
}

/// The outcome a stored payment represents (for reloads and double submits).
pub fn outcome_of(p: PaymentRow) -> PayOutcome {
    use CardStatus as S;
    match p.status.card() {
        Some(S::Authorized | S::Captured | S::Refunded | S::Cancelled) => PayOutcome::Done(p),
        Some(S::Challenge) if p.details_json()["acs_url"].is_string() => {
            let url = p.details_json()["acs_url"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            PayOutcome::Redirect { payment: p, url }
        }
        Some(S::Challenge) => {
            let wrong = p.details_json()["wrong_codes"].as_u64().unwrap_or(0) as u32;
            PayOutcome::Challenge {
                attempts_left: MAX_CHALLENGE_ATTEMPTS.saturating_sub(wrong),
                payment: p,
                wrong_code: false,
            }
        }
        Some(S::Failed) => {
            let reason = p.details_json()["failure"]
                .as_str()
                .unwrap_or("processing_error")
                .to_owned();
            let (ja, en) = failure_message(&reason);
            PayOutcome::Failed {
                payment: p,
                message_ja: ja.into(),
                message_en: en.into(),
            }
        }
        _ => PayOutcome::InProgress(p),
    }
}

async fn load_for_action(
    state: &Ctx,
    payment_id: &str,
) -> FlowResult<(PaymentRow, Arc<dyn CardConnector>)> {
    let p = payments::get(&state.db, payment_id)
        .await?
        .filter(|p| p.method == Method::Card)
        .ok_or(FlowError::Refused {
            kind: Refused::NotFound,
            code: "payment_not_found",
            message: format!("no card payment {payment_id}"),
        })?;
    let merchant = crate::db::merchants::get(&state.db, &p.merchant_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("payment without merchant"))?;
    let connector = crate::flows::merchant_connectors(state, &merchant)
        .await?
        .card_for(&p.connector_id())
        .ok_or(FlowError::Refused {
            kind: Refused::Conflict,
            code: "no_connector",
            message: "the connector that took this payment is not available in the merchant's \
                      current mode (a test payment of a live merchant, or a processor account \
                      this server cannot open)"
                .into(),
        })?;
    Ok((p, connector))
}

fn check_only(p: &PaymentRow, action: &CardAction) -> FlowResult<()> {
    card::apply(&card_state(p)?, action)
        .map(|_| ())
        .map_err(|e| FlowError::Refused {
            kind: Refused::Conflict,
            code: e.code(),
            message: format!(
                "{} is not allowed while the payment is {}",
                action.name(),
                p.status
            ),
        })
}

fn connector_failed(e: crate::connectors::card::ConnectorError) -> FlowError {
    FlowError::Refused {
        kind: Refused::Upstream,
        code: "connector_error",
        message: format!("the card connector refused: {}", e.code()),
    }
}

/// 売上確定: captures `amount` (default: the full authorization).
pub async fn capture(
    state: &Ctx,
    payment_id: &str,
    amount: Option<i64>,
    actor: &str,
) -> FlowResult<PaymentRow> {
    let (p, connector) = load_for_action(state, payment_id).await?;
    let amount = amount.unwrap_or(p.amount);
    let row = run_action(state, p, connector, Op::Capture(amount), actor).await?;
    state.wake_notifier();
    Ok(row)
}

/// 取消: cancels an authorization or a captured sale.
pub async fn cancel(state: &Ctx, payment_id: &str, actor: &str) -> FlowResult<PaymentRow> {
    let (p, connector) = load_for_action(state, payment_id).await?;
    let row = run_action(state, p, connector, Op::Cancel, actor).await?;
    state.wake_notifier();
    Ok(row)
}

/// 返金: refunds part or all of a captured sale.
pub async fn refund(
    state: &Ctx,
    payment_id: &str,
    amount: i64,
    actor: &str,
) -> FlowResult<PaymentRow> {
    let (p, connector) = load_for_action(state, payment_id).await?;
    let row = run_action(state, p, connector, Op::Refund(amount), actor).await?;
    state.wake_notifier();
    Ok(row)
}

/// A card action and its amount.
#[derive(Clone, Copy, Debug)]
enum Op {
    Capture(i64),
    Cancel,
    Refund(i64),
}

impl Op {
    fn of(kind: OpKind, amount: Option<i64>) -> Op {
        match kind {
            OpKind::Capture => Op::Capture(amount.unwrap_or(0)),
            OpKind::Cancel => Op::Cancel,
            OpKind::Refund => Op::Refund(amount.unwrap_or(0)),
        }
    }
    fn kind(self) -> OpKind {
        match self {
            Op::Capture(_) => OpKind::Capture,
            Op::Cancel => OpKind::Cancel,
            Op::Refund(_) => OpKind::Refund,
        }
    }
    fn amount(self) -> Option<i64> {
        match self {
            Op::Capture(a) | Op::Refund(a) => Some(a),
            Op::Cancel => None,
        }
    }
    fn action(self) -> CardAction {
        match self {
            Op::Capture(amount) => CardAction::Capture { amount },
            Op::Cancel => CardAction::Cancel,
            Op::Refund(amount) => CardAction::Refund { amount },
        }
    }
    fn event(self) -> &'static str {
        match self {
            Op::Capture(_) => "payment.captured",
            Op::Cancel => "payment.cancelled",
            Op::Refund(_) => "payment.refunded",
        }
    }
    /// The connector call, with the operation id as its idempotency key.
    async fn call(
        self,
        connector: &Arc<dyn CardConnector>,
        token: &str,
        key: &str,
    ) -> Result<(), crate::connectors::card::ConnectorError> {
        match self {
            Op::Capture(amount) => connector.capture(token, amount, key).await,
            Op::Cancel => connector.cancel(token, key).await,
            Op::Refund(amount) => connector.refund(token, amount, key).await,
        }
    }
}

/// One card action: claim the payment (one operation in flight per payment), call the
/// connector outside any transaction with the operation id as idempotency key, then record the
/// outcome — state, event, notification and the operation's end — in one transaction.
async fn run_action(
    state: &Ctx,
    p: PaymentRow,
    connector: Arc<dyn CardConnector>,
    op: Op,
    actor: &str,
) -> FlowResult<PaymentRow> {
    check_only(&p, &op.action())?;
    let op_id = operations::claim(
        &state.db,
        &p.id,
        op.kind(),
        op.amount(),
        actor,
        state.now_ms(),
    )
    .await?
    .ok_or(FlowError::Refused {
        kind: Refused::Conflict,
        code: "operation_in_progress",
        message: "another capture, cancel or refund of this payment is in progress; retry shortly"
            .into(),
    })?;
    // A concurrent action may have finished between our read and our claim: check again on
    // the row as it is now.
    let p = payments::get(&state.db, &p.id).await?.unwrap_or(p);
    if let Err(e) = check_only(&p, &op.action()) {
        operations::fail(&state.db, &op_id, "refused", state.now_ms()).await?;
        return Err(e);
    }
    let token = p.connector_ref.clone().unwrap_or_default();
    if let Err(e) = op.call(&connector, &token, &op_id).await {
        operations::fail(&state.db, &op_id, e.code(), state.now_ms()).await?;
        return Err(connector_failed(e));
    }
    record(&state.db, &p, &op_id, op, actor, state.now_ms()).await
}

/// Records a connector-confirmed action, with the operation finished in the same transaction:
/// if it is no longer pending, its outcome was recorded already, and the transaction is
/// rolled back so that nothing is applied twice.
async fn record(
    db: &Db,
    p: &PaymentRow,
    op_id: &str,
    op: Op,
    actor: &str,
    now: i64,
) -> FlowResult<PaymentRow> {
    let mut tx = db.begin().await?;
    // On SQLite the operation's UPDATE goes to the writer with the payment's, one call fewer
    // (bench/README.md, change 27); its answer is looked at after the payment's change, and an
    // operation no longer pending rolls both back.
    operations::finish_ahead(&mut tx, op_id, None, now);
    let data = match op.amount() {
        Some(a) => json!({ "amount": a }),
        None => json!({}),
    };
    let applied = apply(&mut tx, p, &op.action(), op.event(), actor, data, None, now).await;
    if matches!(applied, Err(FlowError::Db(_))) {
        // The transaction cannot go on (PostgreSQL aborted it): that error, not the next one.
        return applied;
    }
    if !operations::finish(&mut tx, op_id, None, now).await? {
        drop(tx);
        return Ok(payments::get(db, &p.id).await?.unwrap_or_else(|| p.clone()));
    }
    let row = applied?;
    if matches!(op, Op::Cancel) {
        payments::set_checkout_status(&mut tx, &row.checkout_id, CheckoutStatus::Cancelled, now)
            .await?;
    }
    tx.commit().await?;
    Ok(row)
}

/// A processor's webhook event about a card payment it served, applied in the caller's
/// transaction (the event id is recorded there too, so it applies once):
///
/// - `payment.captured` on an authorized payment: captured whole (a capture made in the
///   processor's dashboard);
/// - `payment.cancelled` / `payment.expired` on an authorized payment: cancelled;
/// - `payment.refunded` on a captured payment nothing was refunded of through us: refunded
///   whole (a refund made in the dashboard). After a partial refund through us the event may be
///   about that refund, so nothing is guessed: the merchant refunds the rest here.
///
/// Anything else, and anything the state machine forbids (our own capture or refund already
/// recorded, an out-of-order event), changes nothing (`Ok(None)`).
pub async fn apply_event_in(
    tx: &mut Tx,
    p: &PaymentRow,
    e: &crate::connectors::webhook::WebhookEvent,
    now: i64,
) -> Result<Option<PaymentRow>, PaymentError> {
    use crate::connectors::webhook::Effect;
    let Ok(state) = card_state(p) else {
        return Ok(None);
    };
    let (action, event) = match e.effect {
        Effect::Paid { .. } if state.status == CardStatus::Authorized => {
            (CardAction::Capture { amount: p.amount }, "payment.captured")
        }
        Effect::Cancelled | Effect::Expired if state.status == CardStatus::Authorized => {
            (CardAction::Cancel, "payment.cancelled")
        }
        Effect::Refunded if state.status == CardStatus::Captured && p.refunded_amount == 0 => (
            CardAction::Refund {
                amount: p.captured_amount,
            },
            "payment.refunded",
        ),
        _ => return Ok(None),
    };
    let Ok(next) = card::apply(&state, &action) else {
        return Ok(None);
    };
    let mut change = Change::new(next.status, event, "processor");
    change.captured_amount = Some(next.captured_amount);
    change.refunded_amount = Some(next.refunded_amount);
    change.data = match &action {
        CardAction::Capture { amount } | CardAction::Refund { amount } => {
            json!({ "amount": amount, "processor_event": e.id })
        }
        _ => json!({ "processor_event": e.id }),
    };
    change.amount = change.data.get("amount").and_then(|a| a.as_i64());
    if next.status == CardStatus::Captured && p.paid_at.is_none() {
        change.paid_at = Some(now);
    }
    let row = payments::transition(tx, p, &change, now).await?;
    if matches!(action, CardAction::Cancel) {
        payments::set_checkout_status(tx, &p.checkout_id, CheckoutStatus::Cancelled, now)
            .await
            .map_err(PaymentError::Db)?;
    }
    Ok(Some(row))
}

/// How long an operation may stay pending before [`resume_operations`] finishes it.
pub const RESUME_AFTER_MS: i64 = 120_000;

/// Finishes card operations whose outcome was never recorded (the server stopped between the
/// connector call and the commit): the connector is asked again with the same idempotency key,
/// so it answers what it did the first time without acting twice, and the outcome is recorded
/// once. One operation's failure does not stop the others. Returns how many were finished.
pub async fn resume_operations(
    db: &Db,
    registry: &Arc<Registry>,
    now: i64,
) -> anyhow::Result<usize> {
    let mut n = 0;
    for o in operations::stale(db, now - RESUME_AFTER_MS).await? {
        match resume_one(db, registry, &o, now).await {
            Ok(()) => n += 1,
            Err(e) => {
                tracing::warn!(operation = %o.id, error = %e, "resuming a card operation failed")
            }
        }
    }
    Ok(n)
}

async fn resume_one(
    db: &Db,
    registry: &Arc<Registry>,
    o: &operations::Operation,
    now: i64,
) -> anyhow::Result<()> {
    let p = payments::get(db, &o.payment_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("operation {} without payment", o.id))?;
    let m = crate::db::merchants::get(db, &p.merchant_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("payment {} without merchant", p.id))?;
    // Wallet refunds share the operations table; their connector is the wallet's.
    if p.method == crate::flows::wallet::METHOD {
        return crate::flows::wallet::resume(db, registry, o, &p, &m, now).await;
    }
    // So do cancels of unpaid numbers; their connector is the number's.
    if crate::flows::konbini::target_of(&p).is_some() {
        return crate::flows::number_cancel::resume(db, registry, o, &p, &m, now).await;
    }
    let op = Op::of(o.kind, o.amount);
    let Some(connector) = crate::flows::connectors_for(registry, db, &m)
        .await?
        .card_for(&p.connector_id())
    else {
        operations::fail(db, &o.id, "no_connector", now).await?;
        return Ok(());
    };
    let token = p.connector_ref.clone().unwrap_or_default();
    match op.call(&connector, &token, &o.id).await {
        Ok(()) => match record(db, &p, &o.id, op, &o.actor, now).await {
            Ok(_) => Ok(()),
            // The payment moved on meanwhile: the operation cannot be applied any more.
            Err(_) => Ok(operations::fail(db, &o.id, "not_applicable", now).await?),
        },
        Err(e) if e.retryable() => Err(anyhow::anyhow!("connector: {}", e.code())),
        Err(e) => Ok(operations::fail(db, &o.id, e.code(), now).await?),
    }
}

/// Authorizations older than `days` lapse (期限切れ): the issuer releases the hold.
pub async fn lapse_due(db: &Db, now: i64, days: i64) -> anyhow::Result<usize> {
    let cutoff = now - days * 86_400_000;
    let due = payments::untouched_since(db, Method::Card, &[CardStatus::Authorized.into()], cutoff)
        .await?;
    let mut n = 0;
    for p in due {
        let mut tx = db.begin().await?;
        match apply(
            &mut tx,
            &p,
            &CardAction::Lapse,
            "payment.expired",
            "system:lapse",
            json!({}),
            None,
            now,
        )
        .await
        {
            Ok(_) => {
                tx.commit().await?;
                n += 1;
            }
            Err(e) => tracing::info!(payment = %p.id, error = %e, "lapse skipped"),
        }
    }
    Ok(n)
}

/// The `details.card_entry` of a payment whose card was entered in the browser, at the
/// processor: [`reconcile_stale`] leaves these to the browser-card flow's own reconciliation.
pub const BROWSER_ENTRY: &str = "browser";

/// How long a card payment may sit in 3-D Secure before reconciliation asks the connector.
pub const RECONCILE_AFTER_MS: i64 = 60_000;

/// Reconciliation of card payments stuck between states: a payment still in 3-D Secure after
/// [`RECONCILE_AFTER_MS`] is looked up at the connector by its id. If the connector approved it
/// (the answer came but the commit did not happen), the authorization is recorded now (marked
/// `reconciled`; the merchant captures it as usual); if not and it is older than
/// [`PENDING_TTL`], it fails (the
/// card data is gone and the shopper has left). Conditional updates make each outcome exactly
/// one event, however many instances run this.
pub async fn reconcile_stale(db: &Db, registry: &Arc<Registry>, now: i64) -> anyhow::Result<usize> {
    let due = payments::untouched_since(
        db,
        Method::Card,
        &[CardStatus::Awaiting3ds.into(), CardStatus::Challenge.into()],
        now - RECONCILE_AFTER_MS,
    )
    .await?;
    let mut n = 0;
    for p in due {
        // Cards entered at the processor in the browser: `client_card::reconcile` settles them.
        if p.details_json()["card_entry"] == BROWSER_ENTRY {
            continue;
        }
        let Some(m) = crate::db::merchants::get(db, &p.merchant_id).await? else {
            continue;
        };
        let conn = crate::flows::connectors_for(registry, db, &m)
            .await?
            .card_for(&p.connector_id());
        let found = match conn {
            Some(c) => match c.find_authorization(&p.id).await {
                Ok(found) => found,
                // Not an answer: ask again on the next sweep rather than fail the payment.
                Err(e) => {
                    tracing::warn!(payment = %p.id, code = e.code(), "reconciliation lookup failed");
                    continue;
                }
            },
            None => None,
        };
        let mut tx = db.begin().await?;
        let done = if let Some(f) = found {
            let mut d = p.details_json();
            d["three_ds"] = json!({ "status": f.three_ds.status.code(), "eci": f.three_ds.eci });
            d["approval_code"] = json!(f.approval_code);
            let data = json!({ "amount": p.amount, "reconciled": true });
            write_authorized(
                &mut tx,
                &p,
                f.three_ds,
                &f.token,
                "system:reconcile",
                data,
                d,
                now,
            )
            .await
            .is_ok()
        } else if p.updated_at < now - PENDING_TTL.as_millis() as i64 {
            let mut d = p.details_json();
            d["failure"] = json!("challenge_expired");
            let data = json!({ "reason": "challenge_expired" });
            apply(
                &mut tx,
                &p,
                &CardAction::Fail,
                "payment.failed",
                "system:timeout",
                data,
                Some(d),
                now,
            )
            .await
            .is_ok()
        } else {
            false
        };
        if done {
            card_hold::drop_in(&mut tx, &p.id).await?;
            tx.commit().await?;
            n += 1;
        }
    }
    Ok(n)
}
