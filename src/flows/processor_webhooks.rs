//! Inbound processor webhooks (KOMOJU's go to `POST /webhooks/komoju/{account_id}`), for numbers,
//! carrier payments (`flows::carrier_sync`), wallets (`flows::wallet`) and cards
//! (`flows::card`): the
//! account's driver verifies the signature with the account's webhook secret (through the
//! registry), then the event is applied to the payment that account served, once:
//!
//! - the event id is recorded in `processor_events` in the same transaction as the state
//!   change, so a redelivered or duplicated event changes nothing the second time;
//! - changes go through the payment's domain state machine, so events arriving out of order
//!   only ever move a payment forward (a late `expired` after `captured` is ignored, a
//!   `captured` after `expired` is a late payment, exactly as the institution's notices are);
//! - event types we do not act on are acknowledged and ignored.

use serde_json::json;

use crate::connectors::webhook::{Effect, WebhookError, WebhookEvent};
use crate::context::Ctx;
use crate::db::payments::{PaymentError, PaymentRow};
use crate::db::processor_events;
use crate::db::Tx;
use crate::domain::carrier::Carrier;
use crate::domain::konbini::{NumberAction, NumberMethod};
use crate::domain::processor::Processor;
use crate::flows::carrier_sync;
use crate::flows::konbini::{apply_action_in, ActionError};

/// What became of a verified event (answered with 200).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The payment changed to this status.
    Applied(crate::domain::payment::PaymentStatus),
    /// This event id was applied before: nothing changed.
    Duplicate,
    /// Verified, recorded, and nothing to change (unknown type, stale or repeated state).
    Ignored(&'static str),
}

impl Outcome {
    pub fn code(&self) -> &'static str {
        match self {
            Outcome::Applied(_) => "applied",
            Outcome::Duplicate => "duplicate",
            Outcome::Ignored(why) => why,
        }
    }
}

/// Why a delivery was not accepted. `code()` is stable; `status()` tells the processor whether
/// to retry (5xx) or not (4xx).
#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    #[error("no account of this processor with that id")]
    UnknownAccount,
    #[error(transparent)]
    Webhook(#[from] WebhookError),
    /// A concurrent change won: the processor should deliver again.
    #[error("payment changed concurrently; retry")]
    Retry,
    #[error(transparent)]
    Db(#[from] crate::db::Error),
}

impl ReceiveError {
    pub fn code(&self) -> &'static str {
        match self {
            ReceiveError::UnknownAccount => "webhook_unknown_account",
            ReceiveError::Webhook(e) => e.code(),
            ReceiveError::Retry => "webhook_retry",
            ReceiveError::Db(_) => "internal_error",
        }
    }

    pub fn status(&self) -> u16 {
        match self {
            ReceiveError::UnknownAccount => 404,
            ReceiveError::Webhook(WebhookError::BadSignature) => 401,
            ReceiveError::Webhook(WebhookError::Malformed(_)) => 400,
            ReceiveError::Webhook(WebhookError::Unverifiable(_)) => 503,
            ReceiveError::Retry => 503,
            ReceiveError::Db(_) => 500,
        }
    }
}

/// Receives one delivery for `account_id` of `processor`. Nothing is read from the body before
/// the signature is verified; nothing is written for a delivery that does not verify.
pub async fn receive(
    state: &Ctx,
    processor: Processor,
    account_id: &str,
    headers: &axum::http::HeaderMap,
    body: &[u8],
) -> Result<Outcome, ReceiveError> {
    let account = crate::db::processors::get(&state.db, account_id)
        .await?
        .filter(|a| a.processor == processor)
        .ok_or(ReceiveError::UnknownAccount)?;
    let event = state.connectors.webhook(&account, headers, body)?;
    if event.effect == Effect::Ignored {
        tracing::info!(account = %account.id, event = %event.id, kind = %event.kind, "processor event ignored");
        return Ok(Outcome::Ignored("ignored_type"));
    }
    let mut tx = state.db.begin().await?;
    if !processor_events::record(&mut tx, &account.id, &event.id, &event.kind, state.now_ms())
        .await?
    {
        return Ok(Outcome::Duplicate);
    }
    let Some(p) = crate::db::payments::by_account_refs(
        &mut tx,
        &account.id,
        event.payment_ref.as_deref().unwrap_or(""),
        event.order_ref.as_deref().unwrap_or(""),
    )
    .await?
    else {
        // Not a payment this account made through us (e.g. created in KOMOJU's dashboard):
        // acknowledged, and not recorded, so nothing is lost should it become known.
        drop(tx);
        tracing::warn!(account = %account.id, event = %event.id, kind = %event.kind, "processor event for an unknown payment");
        return Ok(Outcome::Ignored("unknown_payment"));
    };
    let mut void = None;
    let outcome = if NumberMethod::of(p.method).is_some() {
        apply_to_number(&mut tx, &p, &event, state.now_ms()).await?
    } else if let Some(c) = Carrier::of(p.method) {
        match carrier_sync::apply_event_in(&mut tx, &p, c, &event, state.now_ms()).await {
            Ok((Some(status), undo)) => {
                void = undo;
                Outcome::Applied(status)
            }
            Ok((None, _)) => Outcome::Ignored("no_change"),
            Err(PaymentError::Conflict) => return Err(ReceiveError::Retry),
            Err(PaymentError::Db(e)) => return Err(ReceiveError::Db(e)),
            Err(PaymentError::AlreadyLive) => Outcome::Ignored("not_applicable"),
        }
    } else if p.method == crate::flows::wallet::METHOD {
        match crate::flows::wallet::apply_event_in(&mut tx, &p, &event, state.now_ms()).await {
            Ok(Some(row)) => Outcome::Applied(row.status),
            Ok(None) => Outcome::Ignored("no_change"),
            Err(PaymentError::Conflict) => return Err(ReceiveError::Retry),
            Err(PaymentError::Db(e)) => return Err(ReceiveError::Db(e)),
            Err(PaymentError::AlreadyLive) => Outcome::Ignored("not_applicable"),
        }
    } else if p.method == crate::domain::Method::Card {
        match crate::flows::card::apply_event_in(&mut tx, &p, &event, state.now_ms()).await {
            Ok(Some(row)) => Outcome::Applied(row.status),
            Ok(None) => Outcome::Ignored("no_change"),
            Err(PaymentError::Conflict) => return Err(ReceiveError::Retry),
            Err(PaymentError::Db(e)) => return Err(ReceiveError::Db(e)),
            Err(PaymentError::AlreadyLive) => Outcome::Ignored("not_applicable"),
        }
    } else {
        Outcome::Ignored("unsupported_method")
    };
    processor_events::set_outcome(&mut tx, &account.id, &event.id, &p.id, outcome.code()).await?;
    tx.commit().await?;
    if let Some(undo) = &void {
        carrier_sync::void_for_event(state, &p, undo).await;
    }
    if matches!(outcome, Outcome::Applied(_)) {
        state.wake_notifier();
    }
    tracing::info!(account = %account.id, event = %event.id, kind = %event.kind, payment = %p.id, outcome = outcome.code(), "processor event");
    Ok(outcome)
}

/// Konbini / Pay-easy: captured → 速報 (paid, or late if after the deadline); expired or
/// cancelled → 期限切れ (the number can no longer be paid). Anything the state machine calls a
/// duplicate or forbids (an out-of-order event) is recorded and ignored.
async fn apply_to_number(
    tx: &mut Tx,
    p: &PaymentRow,
    e: &WebhookEvent,
    now: i64,
) -> Result<Outcome, ReceiveError> {
    let action = match e.effect {
        Effect::Paid { at_ms } => NumberAction::Paid { at_ms },
        // The processor says the number is dead: expire it even if our stored deadline is a
        // moment later (clocks differ), never earlier than the processor's word.
        Effect::Expired | Effect::Cancelled => NumberAction::Expire {
            now_ms: now.max(p.deadline_at.unwrap_or(0).saturating_add(1)),
        },
        // Not something a number reports (refunds of paid numbers are the merchant's own).
        Effect::Ignored | Effect::Failed | Effect::Refunded => {
            return Ok(Outcome::Ignored("ignored_type"))
        }
    };
    match apply_action_in(tx, &p.id, action, "processor", now).await {
        Ok(row) => Ok(Outcome::Applied(row.status)),
        Err(ActionError::Transition(t)) => {
            tracing::info!(payment = %p.id, event = %e.id, error = %t, "processor event does not change the payment");
            Ok(Outcome::Ignored("no_change"))
        }
        Err(ActionError::Conflict) => Err(ReceiveError::Retry),
        Err(ActionError::Db(d)) => Err(ReceiveError::Db(d)),
        Err(other) => {
            tracing::warn!(payment = %p.id, error = %other, "processor event not applicable");
            Ok(Outcome::Ignored("not_applicable"))
        }
    }
}

/// The JSON answer for a delivery.
pub fn answer(r: &Result<Outcome, ReceiveError>) -> (u16, serde_json::Value) {
    match r {
        Ok(o) => (200, json!({ "received": true, "result": o.code() })),
        Err(e) => (
            e.status(),
            json!({ "error": { "code": e.code(), "message": e.to_string() } }),
        ),
    }
}
