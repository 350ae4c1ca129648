//! Inbound processor webhooks, as the flows see them: a driver verifies the signature with the
//! account's webhook secret and reads the processor's event into a [`WebhookEvent`]; the flow
//! applies its [`Effect`] to the payment through the domain state machine.

use thiserror::Error;

/// What an event says happened to a payment, in processor-neutral terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// The money arrived (konbini / Pay-easy: 速報) at `at_ms`.
    Paid { at_ms: i64 },
    /// The payment can no longer be paid: its deadline passed at the processor.
    Expired,
    /// The payment was cancelled at the processor before it was paid.
    Cancelled,
    /// The processor (or the carrier behind it) refused the payment.
    Failed,
    /// A completed payment was refunded in full at the processor.
    Refunded,
    /// Nothing for us to do (an event type we do not act on).
    Ignored,
}

impl Effect {
    pub fn code(self) -> &'static str {
        match self {
            Effect::Paid { .. } => "paid",
            Effect::Expired => "expired",
            Effect::Cancelled => "cancelled",
            Effect::Failed => "failed",
            Effect::Refunded => "refunded",
            Effect::Ignored => "ignored",
        }
    }
}

/// A verified event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEvent {
    /// The processor's event id: the same for every redelivery of the event.
    pub id: String,
    /// The processor's event type, e.g. `payment.captured`.
    pub kind: String,
    /// The processor's id of the payment (our `payments.connector_ref`), if the event is about one.
    pub payment_ref: Option<String>,
    /// Our payment id as we sent it to the processor, if the event carries it.
    pub order_ref: Option<String>,
    pub effect: Effect,
}

/// Why an inbound webhook was refused. `code()` is stable.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WebhookError {
    /// The signature header is missing or matches none of the account's secrets.
    #[error("signature does not verify")]
    BadSignature,
    /// Signed correctly but not an event we can read.
    #[error("malformed event: {0}")]
    Malformed(String),
    /// The account has no webhook secret, or its credentials cannot be opened: nothing can be
    /// verified until the operator fixes it.
    #[error("cannot verify: {0}")]
    Unverifiable(String),
}

impl WebhookError {
    pub fn code(&self) -> &'static str {
        match self {
            WebhookError::BadSignature => "webhook_bad_signature",
            WebhookError::Malformed(_) => "webhook_malformed",
            WebhookError::Unverifiable(_) => "webhook_unverifiable",
        }
    }
}
