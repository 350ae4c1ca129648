//! Card payments whose card data the processor collects in the shopper's browser (Stripe.js
//! Elements): the card number never reaches this server. The server creates a payment intent,
//! the processor's own script collects the card and runs 3-D Secure in the browser, and the
//! server then retrieves the intent to learn the outcome — it never trusts what the browser
//! says. Capture, cancel and refund still go through [`crate::connectors::card::CardConnector`].
//!
//! The registry hands this out for the card family when the account's processor collects cards
//! in the browser (`MerchantConnectors::client_card` in the registry); routes
//! and flows only ever see this trait.

use crate::connectors::card::{ConnectorError, DeclineReason};
use crate::domain::card::{PaymentOption, ThreeDsResult};

/// A new payment intent for one of our payments.
#[derive(Debug, Clone)]
pub struct IntentRequest {
    /// Our payment id (sent as metadata; the processor indexes it).
    pub payment_id: String,
    /// The merchant's order id (sent as metadata).
    pub order_id: String,
    /// Yen.
    pub amount: i64,
    /// Capture at once (即時売上) instead of authorizing only (仮売上).
    pub capture_now: bool,
    /// Derived from our payment id: a retried create returns the same intent.
    pub idempotency_key: String,
    /// The payment method the processor's script created from the card the shopper typed
    /// (`pm_…`): the intent is created with it attached and confirmed by this server later
    /// ([`ClientCardConnector::confirm_intent`]), after the shopper chose a plan. `None`: the
    /// browser confirms the intent with the card itself.
    pub payment_method: Option<String>,
    /// Ask the processor which installment plans (分割払い etc.) the card allows.
    pub installments: bool,
    /// The processor's customer (`cus_…`) paying with a saved card, or saving this one.
    pub customer: Option<String>,
    /// The shopper agreed to save the card: the processor keeps it on `customer` once the
    /// payment succeeds (Stripe `setup_future_usage=on_session`).
    pub save: bool,
}

/// What the browser needs to confirm the intent. The client secret lets the holder confirm
/// this one intent only; it is handed to the shopper's browser and never stored.
#[derive(Clone)]
pub struct BrowserIntent {
    pub intent_id: String,
    pub client_secret: String,
    /// The installment plans the processor offers for the attached card (see
    /// [`Intent::available_plans`]).
    pub available_plans: Vec<PaymentOption>,
}

impl std::fmt::Debug for BrowserIntent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrowserIntent")
            .field("intent_id", &self.intent_id)
            .finish_non_exhaustive()
    }
}

/// The origins a page embedding the processor's script must allow, per CSP directive.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CspSources {
    pub script: Vec<String>,
    pub frame: Vec<String>,
    pub connect: Vec<String>,
}

/// What the card page needs to load the processor's script.
#[derive(Debug, Clone)]
pub struct PageSetup {
    /// The processor's script (e.g. `https://js.stripe.com/v3/`).
    pub script_url: String,
    /// The account's publishable key (public by design).
    pub publishable_key: String,
    pub csp: CspSources,
}

/// The outcome of an intent as the processor reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IntentState {
    /// No outcome yet: waiting for the card or for 3-D Secure in the browser.
    AwaitingShopper,
    /// The processor is still deciding (asynchronous methods).
    Processing,
    /// Authorized, not captured (仮売上).
    Authorized,
    /// Captured (`amount_received` yen).
    Captured,
    /// The last attempt failed (declined or failed authentication).
    Failed(Failure),
    /// Cancelled at the processor.
    Cancelled,
}

/// Why an intent's attempt failed: our reason code, and the processor's own codes kept for the
/// merchant's records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// One of [`DeclineReason`]'s codes, or `authentication_failed`.
    pub reason: String,
    /// The processor's error code and decline code, e.g. `card_declined/insufficient_funds`.
    pub processor_code: String,
}

impl Failure {
    pub fn decline(reason: DeclineReason, processor_code: String) -> Failure {
        Failure {
            reason: reason.code().to_owned(),
            processor_code,
        }
    }
}

/// The card an intent was paid with (never the number).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CardSummary {
    pub brand: Option<String>,
    pub last4: Option<String>,
    pub exp_month: Option<u32>,
    pub exp_year: Option<i32>,
}

/// A retrieved intent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intent {
    pub id: String,
    pub state: IntentState,
    /// Yen.
    pub amount: i64,
    pub currency: String,
    /// Yen captured.
    pub amount_received: i64,
    /// Our payment id from the intent's metadata.
    pub payment_id: Option<String>,
    pub card: CardSummary,
    /// The 3-D Secure result the processor reports, if any.
    pub three_ds: Option<ThreeDsResult>,
    /// The issuer's approval code (承認番号), if reported.
    pub approval_code: Option<String>,
    /// The plans the processor says the attached card may pay with (besides 一括), when
    /// installments were asked for; empty when the card is not eligible.
    pub available_plans: Vec<PaymentOption>,
    /// The plan the intent was confirmed with (`None`: 一括 / lump sum).
    pub plan: Option<PaymentOption>,
    /// The processor's id of the card the intent is paid with (`pm_…`).
    pub payment_method: Option<String>,
    /// The processor's customer the intent belongs to.
    pub customer: Option<String>,
    /// The card is saved on the customer once the payment succeeds.
    pub saves_card: bool,
}

/// A verified inbound event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEvent {
    pub id: String,
    pub kind: String,
    /// The id of the intent the event is about, when it is about one.
    pub intent_id: Option<String>,
}

/// Why an inbound event was refused. Nothing is applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("the account has no webhook signing secret")]
    NoSecret,
    #[error("the signature header is missing or malformed")]
    MalformedSignature,
    #[error("the signature timestamp is outside the tolerance (replayed or delayed event)")]
    StaleTimestamp,
    #[error("no signature matches")]
    BadSignature,
    #[error("the event body is not a valid event")]
    BadPayload,
}

impl WebhookError {
    pub fn code(&self) -> &'static str {
        match self {
            WebhookError::NoSecret => "webhook_secret_missing",
            WebhookError::MalformedSignature => "signature_malformed",
            WebhookError::StaleTimestamp => "signature_expired",
            WebhookError::BadSignature => "signature_invalid",
            WebhookError::BadPayload => "event_invalid",
        }
    }
}

#[async_trait::async_trait]
pub trait ClientCardConnector: Send + Sync {
    /// The script and keys the card page loads.
    fn page(&self) -> Result<PageSetup, ConnectorError>;
    /// Creates (or, with the same idempotency key, returns again) the intent of a payment.
    async fn create_intent(&self, req: &IntentRequest) -> Result<BrowserIntent, ConnectorError>;
    /// The client secret of an existing intent, for a shopper who reloads the page.
    async fn client_secret(&self, intent_id: &str) -> Result<String, ConnectorError>;
    /// The processor's current view of an intent.
    async fn retrieve_intent(&self, intent_id: &str) -> Result<Intent, ConnectorError>;
    /// Attaches another payment method to an intent not yet confirmed (the shopper typed
    /// another card before choosing a plan).
    /// `customer`: the processor's customer a saved card belongs to.
    async fn set_payment_method(
        &self,
        intent_id: &str,
        payment_method: &str,
        customer: Option<&str>,
    ) -> Result<(), ConnectorError>;
    /// Confirms an intent that has its payment method attached, with the chosen plan
    /// (`None` or `Lump`: 一括). The answer may still wait for 3-D Secure in the browser.
    /// `cvc_token`: the security code the shopper re-entered for a saved card, as the
    /// processor's single-use token (the code itself never reaches this server); the
    /// processor verifies it with this payment attempt.
    async fn confirm_intent(
        &self,
        intent_id: &str,
        plan: Option<PaymentOption>,
        cvc_token: Option<&str>,
        idempotency_key: &str,
    ) -> Result<Intent, ConnectorError>;
    /// Creates the processor's customer for the merchant's customer `customer_ref`
    /// (idempotent per key). Returns its id.
    async fn create_customer(
        &self,
        customer_ref: &str,
        idempotency_key: &str,
    ) -> Result<String, ConnectorError>;
    /// Removes a saved card from its customer at the processor (it can no longer be charged).
    async fn detach_method(&self, payment_method: &str) -> Result<(), ConnectorError>;
    /// Cancels an intent nobody completed, so its client secret can no longer pay.
    async fn cancel_intent(
        &self,
        intent_id: &str,
        idempotency_key: &str,
    ) -> Result<(), ConnectorError>;
    /// Verifies an inbound event's signature against the account's webhook secret.
    fn verify_webhook(
        &self,
        payload: &[u8],
        signature_header: &str,
        now_s: i64,
    ) -> Result<WebhookEvent, WebhookError>;
}
