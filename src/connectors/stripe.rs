//! Stripe: a processor driver for the card family. Cards are collected by Stripe.js (Elements)
//! in the shopper's browser; this server creates the PaymentIntent, retrieves it to learn the
//! outcome, and captures, cancels and refunds through Stripe's form-encoded REST API
//! (`Authorization: Bearer <secret key>`, an `Idempotency-Key` on every POST). Inbound events
//! are verified against the account's webhook signing secret (`Stripe-Signature`).
//!
//! Field names follow Stripe's published API (PaymentIntents, Refunds, Events); localstripe is
//! the test oracle (tests/api/stripe.rs).

use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use url::Url;
use zeroize::Zeroizing;

use crate::connectors::card::{
    AuthenticateOutcome, AuthenticateRequest, AuthorizeOutcome, AuthorizeRequest, CardConnector,
    ChallengeOutcome, ConnectorError, DeclineReason, FoundAuthorization, RemoteStatus,
};
use crate::connectors::client_card::{
    BrowserIntent, CardSummary, ClientCardConnector, CspSources, Failure, Intent, IntentRequest,
    IntentState, PageSetup, WebhookError, WebhookEvent,
};
use crate::connectors::driver::{Credentials, ProcessorDriver};
use crate::connectors::konbini::NumberConnector;
use crate::domain::card::{CardStatus, PaymentOption, ThreeDsResult, ThreeDsStatus};
use crate::domain::processor::{Family, Processor};
use crate::ssrf::{check_url, UrlPolicy};

pub const DEFAULT_API_BASE: &str = crate::config::DEFAULT_STRIPE_API_BASE;
pub const DEFAULT_JS_URL: &str = crate::config::DEFAULT_STRIPE_JS_URL;
/// How far a `Stripe-Signature` timestamp may be from our clock (Stripe's libraries use 300 s).
pub const SIGNATURE_TOLERANCE_S: i64 = 300;
/// The metadata key holding our payment id on every PaymentIntent.
pub const META_PAYMENT_ID: &str = "kakehashi_payment_id";
/// The metadata key holding the merchant's order id.
pub const META_ORDER_ID: &str = "kakehashi_order_id";
/// [`META_PAYMENT_ID`] as a form field.
const META_PAYMENT_ID_FIELD: &str = "metadata[kakehashi_payment_id]";

pub mod konbini;

const BROWSER_ONLY: &str =
    "Stripe collects the card in the shopper's browser (Stripe.js); this server never takes card data";

pub use crate::config::StripeSettings;

/// The Stripe driver: builds a connector per account from its opened credentials.
pub struct StripeDriver {
    http: reqwest::Client,
    api: Url,
    js: Url,
}

impl StripeDriver {
    /// Checks the URLs once, at startup: https and a public host, unless loopback is
    /// explicitly allowed (`KAKEHASHI_ALLOW_LOOPBACK_CALLBACKS`, local development and tests,
    /// which also admits plain http there).
    pub fn new(s: &StripeSettings, allow_loopback: bool) -> anyhow::Result<StripeDriver> {
        let policy = if allow_loopback {
            UrlPolicy::AllowLoopback
        } else {
            UrlPolicy::Production
        };
        let api = check_url(&s.api_base, policy)
            .map_err(|e| anyhow::anyhow!("KAKEHASHI_STRIPE_API_BASE {:?}: {e}", s.api_base))?;
        let js = check_url(&s.js_url, policy)
            .map_err(|e| anyhow::anyhow!("KAKEHASHI_STRIPE_JS_URL {:?}: {e}", s.js_url))?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            // Below the 30 s request timeout of our routes, so a slow Stripe is answered.
            .timeout(Duration::from_secs(20))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(StripeDriver { http, api, js })
    }

    fn conn(&self, c: &Credentials) -> Arc<StripeConnector> {
        Arc::new(StripeConnector {
            http: self.http.clone(),
            api: self.api.clone(),
            js: self.js.clone(),
            secret_key: c.secret_key.clone(),
            publishable_key: c.publishable_key.clone(),
            webhook_secret: c.webhook_secret.clone(),
        })
    }
}

impl ProcessorDriver for StripeDriver {
    fn processor(&self) -> Processor {
        Processor::Stripe
    }
    fn families(&self) -> &[Family] {
        &[Family::Card, Family::Number]
    }
    fn card(&self, c: &Credentials) -> Option<Arc<dyn CardConnector>> {
        Some(self.conn(c))
    }
    /// Konbini through Stripe's `konbini` payment method (`stripe/konbini.rs`).
    fn number(&self, c: &Credentials) -> Option<Arc<dyn NumberConnector>> {
        Some(Arc::new(konbini::StripeKonbini::new(self.conn(c))))
    }
    fn client_card(&self, c: &Credentials) -> Option<Arc<dyn ClientCardConnector>> {
        Some(self.conn(c))
    }
}

/// One Stripe account's connector.
pub struct StripeConnector {
    http: reqwest::Client,
    api: Url,
    js: Url,
    secret_key: Zeroizing<String>,
    publishable_key: Option<String>,
    webhook_secret: Option<Zeroizing<String>>,
}

fn origin(u: &Url) -> String {
    u.origin().ascii_serialization()
}

/// Maps a Stripe error response to ours, keeping Stripe's code and decline code.
fn map_error(status: u16, body: &Value) -> ConnectorError {
    let e = &body["error"];
    let code = e["code"].as_str().unwrap_or("");
    let decline = e["decline_code"].as_str().unwrap_or("");
    let kind = e["type"].as_str().unwrap_or("");
    let label = match (code, decline) {
        ("", "") => kind.to_owned(),
        (c, "") => c.to_owned(),
        (c, d) => format!("{c}/{d}"),
    };
    match status {
        402 => ConnectorError::Rejected(label),
        404 => ConnectorError::UnknownTransaction,
        401 | 403 => ConnectorError::Rejected(format!("authentication: {label}")),
        429 => ConnectorError::Unavailable("rate limited".into()),
        s if s >= 500 => ConnectorError::Unavailable(format!("HTTP {s}")),
        _ => match code {
            "amount_too_large" => ConnectorError::AmountExceeded,
            "resource_missing" => ConnectorError::UnknownTransaction,
            "payment_intent_unexpected_state"
            | "charge_already_captured"
            | "charge_already_refunded"
            | "charge_expired_for_capture"
            | "charge_disputed" => ConnectorError::InvalidState(label),
            _ => ConnectorError::Invalid(if label.is_empty() {
                format!("HTTP {status}")
            } else {
                label
            }),
        },
    }
}

/// Our decline reason for Stripe's error code / decline code.
pub fn decline_reason(code: &str, decline_code: &str) -> Option<DeclineReason> {
    let c = if decline_code.is_empty() {
        code
    } else {
        decline_code
    };
    Some(match c {
        "payment_intent_authentication_failure" | "authentication_required" => return None,
        "insufficient_funds" | "card_velocity_exceeded" | "withdrawal_count_limit_exceeded" => {
            DeclineReason::InsufficientFunds
        }
        "expired_card" => DeclineReason::ExpiredCard,
        "incorrect_number"
        | "invalid_number"
        | "incorrect_cvc"
        | "invalid_cvc"
        | "invalid_expiry_month"
        | "invalid_expiry_year"
        | "incorrect_zip" => DeclineReason::InvalidNumber,
        "processing_error" | "issuer_not_available" | "try_again_later" => {
            DeclineReason::ProcessingError
        }
        _ => DeclineReason::DoNotHonour,
    })
}

fn three_ds_of(charge: &Value) -> Option<ThreeDsResult> {
    let t = &charge["payment_method_details"]["card"]["three_d_secure"];
    let status = match t["result"].as_str()? {
        "authenticated" => ThreeDsStatus::Authenticated,
        "attempt_acknowledged" | "exempted" => ThreeDsStatus::Attempted,
        "failed" => ThreeDsStatus::Failed,
        "not_supported" | "processing_error" => ThreeDsStatus::Unavailable,
        _ => return None,
    };
    Some(ThreeDsResult {
        status,
        eci: t["electronic_commerce_indicator"]
            .as_str()
            .map(str::to_owned),
    })
}

/// Our option for one of Stripe's installment plans (`{type, count, interval}`, PaymentIntent
/// `payment_method_options.card.installments`): `fixed_count` monthly plans with a count we
/// offer, `bonus` (ボーナス一括) and `revolving` (リボ). Other plans are not offered.
pub fn plan_option(plan: &Value) -> Option<PaymentOption> {
    match plan["type"].as_str()? {
        "fixed_count" => {
            if plan["interval"].as_str().is_some_and(|i| i != "month") {
                return None;
            }
            let n = u8::try_from(plan["count"].as_u64()?).ok()?;
            Some(PaymentOption::Installments(n)).filter(|o| o.is_valid())
        }
        "bonus" => Some(PaymentOption::BonusLump),
        "revolving" => Some(PaymentOption::Revolving),
        _ => None,
    }
}

/// The form fields selecting `option` when confirming (nothing for 一括).
pub fn plan_fields(option: PaymentOption) -> Vec<(&'static str, String)> {
    match option {
        PaymentOption::Lump => vec![],
        PaymentOption::Installments(n) => vec![
            (
                "payment_method_options[card][installments][plan][type]",
                "fixed_count".into(),
            ),
            (
                "payment_method_options[card][installments][plan][count]",
                n.to_string(),
            ),
            (
                "payment_method_options[card][installments][plan][interval]",
                "month".into(),
            ),
        ],
        PaymentOption::BonusLump => vec![(
            "payment_method_options[card][installments][plan][type]",
            "bonus".into(),
        )],
        PaymentOption::Revolving => vec![(
            "payment_method_options[card][installments][plan][type]",
            "revolving".into(),
        )],
    }
}

/// The plans of `payment_method_options.card.installments.available_plans` we can offer.
fn available_plans(pi: &Value) -> Vec<PaymentOption> {
    let mut v: Vec<PaymentOption> = pi["payment_method_options"]["card"]["installments"]
        ["available_plans"]
        .as_array()
        .map(|a| a.iter().filter_map(plan_option).collect())
        .unwrap_or_default();
    v.dedup();
    v
}

/// Reads a retrieved PaymentIntent (with `latest_charge` and `payment_method` expanded).
pub fn parse_intent(v: &Value) -> Result<Intent, ConnectorError> {
    let id = v["id"]
        .as_str()
        .ok_or_else(|| ConnectorError::Unavailable("PaymentIntent without id".into()))?
        .to_owned();
    let amount = v["amount"].as_i64().unwrap_or(0);
    let charge = &v["latest_charge"];
    let status = v["status"].as_str().unwrap_or("");
    let captured_charge = charge["captured"].as_bool().unwrap_or(false);
    let amount_received = v["amount_received"]
        .as_i64()
        .or_else(|| charge["amount_captured"].as_i64())
        .unwrap_or(if status == "succeeded" && captured_charge {
            // localstripe reports neither field: the charge was captured in full, less what
            // a partial capture released.
            charge["amount"].as_i64().unwrap_or(amount)
        } else {
            0
        });
    let state = match status {
        "requires_capture" => IntentState::Authorized,
        "succeeded" => IntentState::Captured,
        "canceled" => IntentState::Cancelled,
        "processing" => IntentState::Processing,
        "requires_payment_method" if v["last_payment_error"].is_object() => {
            let e = &v["last_payment_error"];
            let code = e["code"].as_str().unwrap_or("");
            let decline = e["decline_code"].as_str().unwrap_or("");
            let processor_code = if decline.is_empty() {
                code.to_owned()
            } else {
                format!("{code}/{decline}")
            };
            IntentState::Failed(match decline_reason(code, decline) {
                Some(r) => Failure::decline(r, processor_code),
                None => Failure {
                    reason: "authentication_failed".into(),
                    processor_code,
                },
            })
        }
        "requires_payment_method" | "requires_confirmation" | "requires_action" => {
            IntentState::AwaitingShopper
        }
        other => {
            return Err(ConnectorError::Unavailable(format!(
                "unknown PaymentIntent status {other:?}"
            )))
        }
    };
    let installments = &v["payment_method_options"]["card"]["installments"];
    let pm_card = &v["payment_method"]["card"];
    let ch_card = &charge["payment_method_details"]["card"];
    let pick = |k: &str| -> Value {
        if !ch_card[k].is_null() {
            ch_card[k].clone()
        } else {
            pm_card[k].clone()
        }
    };
    Ok(Intent {
        id,
        state,
        amount,
        currency: v["currency"].as_str().unwrap_or("").to_owned(),
        amount_received,
        payment_id: v["metadata"][META_PAYMENT_ID].as_str().map(str::to_owned),
        card: CardSummary {
            brand: pick("brand").as_str().map(str::to_owned),
            last4: pick("last4").as_str().map(str::to_owned),
            exp_month: pick("exp_month").as_u64().map(|m| m as u32),
            exp_year: pick("exp_year").as_i64().map(|y| y as i32),
        },
        three_ds: three_ds_of(charge),
        approval_code: ch_card["authorization_code"].as_str().map(str::to_owned),
        available_plans: available_plans(v),
        plan: plan_option(&installments["plan"]),
        payment_method: v["payment_method"]
            .as_str()
            .or_else(|| v["payment_method"]["id"].as_str())
            .map(str::to_owned),
        customer: v["customer"]
            .as_str()
            .or_else(|| v["customer"]["id"].as_str())
            .map(str::to_owned),
        saves_card: matches!(
            v["setup_future_usage"].as_str(),
            Some("on_session" | "off_session")
        ),
    })
}

impl StripeConnector {
    fn url(&self, path: &str) -> Result<Url, ConnectorError> {
        self.api
            .join(path)
            .map_err(|e| ConnectorError::Invalid(format!("bad Stripe path: {e}")))
    }

    fn check_id(id: &str, prefix: &str) -> Result<(), ConnectorError> {
        let ok = id.starts_with(prefix)
            && id.len() < 255
            && id[prefix.len()..]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_');
        if ok && id.len() > prefix.len() {
            Ok(())
        } else {
            Err(ConnectorError::UnknownTransaction)
        }
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<Value, ConnectorError> {
        let resp = req
            .bearer_auth(self.secret_key.as_str())
            .header("Stripe-Version", "2024-06-20")
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    ConnectorError::Timeout
                } else {
                    ConnectorError::Unavailable("cannot reach Stripe".into())
                }
            })?;
        let status = resp.status().as_u16();
        let body: Value = resp
            .json()
            .await
            .map_err(|_| ConnectorError::Unavailable(format!("HTTP {status}: not JSON")))?;
        if (200..300).contains(&status) {
            Ok(body)
        } else {
            let e = map_error(status, &body);
            // Stripe's code and decline code only (never the message, which may echo input).
            tracing::info!(status, error = %e, "Stripe refused a request");
            Err(e)
        }
    }

    async fn post(
        &self,
        path: &str,
        form: &[(&str, String)],
        idempotency_key: &str,
    ) -> Result<Value, ConnectorError> {
        let req = self
            .http
            .post(self.url(path)?)
            .header("Idempotency-Key", idempotency_key)
            .form(form);
        self.send(req).await
    }

    async fn get(&self, path: &str, query: &[(&str, &str)]) -> Result<Value, ConnectorError> {
        let req = self.http.get(self.url(path)?).query(query);
        self.send(req).await
    }

    async fn retrieve(&self, id: &str) -> Result<Value, ConnectorError> {
        Self::check_id(id, "pi_")?;
        self.get(
            &format!("/v1/payment_intents/{id}"),
            &[
                ("expand[]", "latest_charge"),
                ("expand[]", "payment_method"),
            ],
        )
        .await
    }

    async fn refund_call(
        &self,
        id: &str,
        amount: Option<i64>,
        key: &str,
    ) -> Result<(), ConnectorError> {
        let mut form = vec![("payment_intent", id.to_owned())];
        if let Some(a) = amount {
            form.push(("amount", a.to_string()));
        }
        self.post("/v1/refunds", &form, key).await.map(|_| ())
    }
}

#[async_trait::async_trait]
impl CardConnector for StripeConnector {
    async fn authenticate(
        &self,
        _req: &AuthenticateRequest,
    ) -> Result<AuthenticateOutcome, ConnectorError> {
        Err(ConnectorError::InvalidRequest(BROWSER_ONLY))
    }
    async fn complete_challenge(
        &self,
        _challenge_id: &str,
        _otp: &str,
    ) -> Result<ChallengeOutcome, ConnectorError> {
        Err(ConnectorError::InvalidRequest(BROWSER_ONLY))
    }
    async fn authorize(&self, _req: &AuthorizeRequest) -> Result<AuthorizeOutcome, ConnectorError> {
        Err(ConnectorError::InvalidRequest(BROWSER_ONLY))
    }

    /// `POST /v1/payment_intents/{id}/capture` with `amount_to_capture`.
    async fn capture(&self, token: &str, amount: i64, key: &str) -> Result<(), ConnectorError> {
        Self::check_id(token, "pi_")?;
        if amount <= 0 {
            return Err(ConnectorError::Invalid("amount must be positive".into()));
        }
        self.post(
            &format!("/v1/payment_intents/{token}/capture"),
            &[("amount_to_capture", amount.to_string())],
            key,
        )
        .await
        .map(|_| ())
    }

    /// 取消: an uncaptured intent is cancelled (the hold is released); a captured one is
    /// refunded in full. An intent already cancelled is a success (idempotent).
    async fn cancel(&self, token: &str, key: &str) -> Result<(), ConnectorError> {
        let pi = self.retrieve(token).await?;
        match pi["status"].as_str().unwrap_or("") {
            "canceled" => Ok(()),
            "succeeded" => self.refund_call(token, None, key).await,
            "requires_capture"
            | "requires_payment_method"
            | "requires_confirmation"
            | "requires_action" => self
                .post(&format!("/v1/payment_intents/{token}/cancel"), &[], key)
                .await
                .map(|_| ()),
            other => Err(ConnectorError::InvalidState(format!(
                "PaymentIntent is {other}"
            ))),
        }
    }

    /// `POST /v1/refunds` for part or all of the captured amount.
    async fn refund(&self, token: &str, amount: i64, key: &str) -> Result<(), ConnectorError> {
        Self::check_id(token, "pi_")?;
        if amount <= 0 {
            return Err(ConnectorError::Invalid("amount must be positive".into()));
        }
        self.refund_call(token, Some(amount), key).await
    }

    async fn query(&self, token: &str) -> Result<RemoteStatus, ConnectorError> {
        let v = self.retrieve(token).await?;
        let i = parse_intent(&v)?;
        let charge = &v["latest_charge"];
        let charge_refunded = charge["amount_refunded"].as_i64().unwrap_or(0);
        // A partial capture releases the rest, which Stripe counts as refunded on the charge.
        let released = if i.state == IntentState::Captured {
            i.amount - i.amount_received
        } else {
            0
        };
        let refunded = (charge_refunded - released).max(0);
        let status = match i.state {
            IntentState::AwaitingShopper | IntentState::Processing => CardStatus::Awaiting3ds,
            IntentState::Authorized => CardStatus::Authorized,
            IntentState::Captured if refunded >= i.amount_received && refunded > 0 => {
                CardStatus::Refunded
            }
            IntentState::Captured => CardStatus::Captured,
            IntentState::Failed(_) => CardStatus::Failed,
            IntentState::Cancelled => CardStatus::Cancelled,
        };
        let authorized = match status {
            CardStatus::Awaiting3ds | CardStatus::Failed => 0,
            _ => i.amount,
        };
        Ok(RemoteStatus {
            status,
            authorized_amount: authorized,
            captured_amount: i.amount_received,
            refunded_amount: refunded,
        })
    }

    /// Finds an authorized intent by our payment id with Stripe's search API.
    async fn find_authorization(
        &self,
        payment_id: &str,
    ) -> Result<Option<FoundAuthorization>, ConnectorError> {
        if !payment_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(ConnectorError::Invalid("bad payment id".into()));
        }
        let query = format!("metadata['{META_PAYMENT_ID}']:'{payment_id}'");
        let v = self
            .get("/v1/payment_intents/search", &[("query", query.as_str())])
            .await?;
        let Some(hit) = v["data"].as_array().and_then(|d| {
            d.iter().find(|pi| {
                matches!(
                    pi["status"].as_str(),
                    Some("requires_capture" | "succeeded")
                )
            })
        }) else {
            return Ok(None);
        };
        let id = hit["id"].as_str().unwrap_or_default().to_owned();
        let full = parse_intent(&self.retrieve(&id).await?)?;
        Ok(Some(FoundAuthorization {
            token: id,
            approval_code: full.approval_code.unwrap_or_default(),
            three_ds: full.three_ds.unwrap_or(ThreeDsResult {
                status: ThreeDsStatus::Attempted,
                eci: None,
            }),
        }))
    }
}

#[async_trait::async_trait]
impl ClientCardConnector for StripeConnector {
    fn page(&self) -> Result<PageSetup, ConnectorError> {
        let publishable_key = self.publishable_key.clone().ok_or_else(|| {
            ConnectorError::Invalid(
                "the Stripe account has no publishable key (pk_…): add it to the account".into(),
            )
        })?;
        let js = origin(&self.js);
        let api = origin(&self.api);
        let mut csp = CspSources::default();
        if js == "https://js.stripe.com" {
            // Stripe's published CSP requirements for Stripe.js and Elements.
            csp.script = vec![js.clone(), "https://*.js.stripe.com".into()];
            csp.frame = vec![
                js.clone(),
                "https://*.js.stripe.com".into(),
                "https://hooks.stripe.com".into(),
            ];
        } else {
            // A stand-in (localstripe): its script talks to its own origin.
            csp.script = vec![js.clone()];
            csp.frame = vec![js.clone()];
            csp.connect.push(js.clone());
        }
        if !csp.connect.contains(&api) {
            csp.connect.push(api);
        }
        Ok(PageSetup {
            script_url: self.js.to_string(),
            publishable_key,
            csp,
        })
    }

    async fn create_intent(&self, req: &IntentRequest) -> Result<BrowserIntent, ConnectorError> {
        if req.amount <= 0 {
            return Err(ConnectorError::Invalid("amount must be positive".into()));
        }
        let mut form = vec![
            ("amount", req.amount.to_string()),
            ("currency", "jpy".to_owned()),
            (
                "capture_method",
                (if req.capture_now {
                    "automatic"
                } else {
                    "manual"
                })
                .to_owned(),
            ),
            ("payment_method_types[]", "card".to_owned()),
            ("metadata[kakehashi_payment_id]", req.payment_id.clone()),
            ("metadata[kakehashi_order_id]", req.order_id.clone()),
        ];
        if let Some(pm) = &req.payment_method {
            Self::check_id(pm, "pm_")
                .map_err(|_| ConnectorError::Invalid("bad payment method id".into()))?;
            // Attached, not confirmed: Stripe answers the card's installment plans, and this
            // server confirms after the shopper chose one (Stripe's installments flow).
            form.push(("payment_method", pm.clone()));
        }
        if let Some(c) = &req.customer {
            Self::check_id(c, "cus_")
                .map_err(|_| ConnectorError::Invalid("bad customer id".into()))?;
            form.push(("customer", c.clone()));
            if req.save {
                // Stripe attaches the card to the customer once the payment succeeds (and
                // runs 3-D Secure for it when the issuer asks); it is reused with the shopper
                // present only.
                form.push(("setup_future_usage", "on_session".to_owned()));
            }
        }
        if req.installments {
            form.push((
                "payment_method_options[card][installments][enabled]",
                "true".to_owned(),
            ));
        }
        let v = self
            .post("/v1/payment_intents", &form, &req.idempotency_key)
            .await?;
        let intent_id = v["id"].as_str().unwrap_or_default().to_owned();
        let client_secret = v["client_secret"].as_str().unwrap_or_default().to_owned();
        Self::check_id(&intent_id, "pi_")
            .map_err(|_| ConnectorError::Unavailable("PaymentIntent without id".into()))?;
        if client_secret.is_empty() || v["amount"].as_i64() != Some(req.amount) {
            return Err(ConnectorError::Unavailable(
                "PaymentIntent does not match the request".into(),
            ));
        }
        Ok(BrowserIntent {
            intent_id,
            client_secret,
            available_plans: available_plans(&v),
        })
    }

    async fn client_secret(&self, intent_id: &str) -> Result<String, ConnectorError> {
        let v = self.retrieve(intent_id).await?;
        v["client_secret"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| ConnectorError::Unavailable("PaymentIntent without secret".into()))
    }

    async fn retrieve_intent(&self, intent_id: &str) -> Result<Intent, ConnectorError> {
        parse_intent(&self.retrieve(intent_id).await?)
    }

    /// `POST /v1/payment_intents/{id}` with `payment_method`.
    async fn set_payment_method(
        &self,
        intent_id: &str,
        payment_method: &str,
        customer: Option<&str>,
    ) -> Result<(), ConnectorError> {
        Self::check_id(intent_id, "pi_")?;
        Self::check_id(payment_method, "pm_")
            .map_err(|_| ConnectorError::Invalid("bad payment method id".into()))?;
        let mut form = vec![("payment_method", payment_method.to_owned())];
        if let Some(c) = customer {
            Self::check_id(c, "cus_")
                .map_err(|_| ConnectorError::Invalid("bad customer id".into()))?;
            form.push(("customer", c.to_owned()));
        }
        // One key per intent and method: the same update, retried, is applied once.
        let key = format!("kakehashi-pm-{intent_id}-{payment_method}");
        self.post(&format!("/v1/payment_intents/{intent_id}"), &form, &key)
            .await
            .map(|_| ())
    }

    /// `POST /v1/payment_intents/{id}/confirm` with
    /// `payment_method_options[card][installments][plan]` (absent for 一括) and, for a saved
    /// card whose security code was re-entered, `payment_method_options[card][cvc_token]`
    /// (a `cvctok_…` from Stripe.js `createToken('cvc_update', cardCvcElement)`; Stripe
    /// accepts it during confirmation only: https://docs.stripe.com/api/payment_intents/confirm).
    /// A decline answers 402; the intent then reports the error, which [`parse_intent`] reads.
    async fn confirm_intent(
        &self,
        intent_id: &str,
        plan: Option<PaymentOption>,
        cvc_token: Option<&str>,
        key: &str,
    ) -> Result<Intent, ConnectorError> {
        Self::check_id(intent_id, "pi_")?;
        let mut form = plan.map(plan_fields).unwrap_or_default();
        if let Some(t) = cvc_token {
            Self::check_id(t, "cvctok_")
                .map_err(|_| ConnectorError::Invalid("cvc_token_invalid".into()))?;
            form.push(("payment_method_options[card][cvc_token]", t.to_owned()));
        }
        match self
            .post(
                &format!("/v1/payment_intents/{intent_id}/confirm"),
                &form,
                key,
            )
            .await
        {
            Ok(_) | Err(ConnectorError::Rejected(_)) => self.retrieve_intent(intent_id).await,
            Err(e) => Err(e),
        }
    }

    /// `POST /v1/customers` with `metadata[kakehashi_customer]`.
    async fn create_customer(
        &self,
        customer_ref: &str,
        key: &str,
    ) -> Result<String, ConnectorError> {
        let v = self
            .post(
                "/v1/customers",
                &[("metadata[kakehashi_customer]", customer_ref.to_owned())],
                key,
            )
            .await?;
        let id = v["id"].as_str().unwrap_or_default().to_owned();
        Self::check_id(&id, "cus_")
            .map_err(|_| ConnectorError::Unavailable("Customer without id".into()))?;
        Ok(id)
    }

    /// `POST /v1/payment_methods/{id}/detach`. A method already gone counts as detached.
    async fn detach_method(&self, payment_method: &str) -> Result<(), ConnectorError> {
        Self::check_id(payment_method, "pm_")?;
        let key = format!("kakehashi-detach-{payment_method}");
        match self
            .post(
                &format!("/v1/payment_methods/{payment_method}/detach"),
                &[],
                &key,
            )
            .await
        {
            Ok(_) | Err(ConnectorError::UnknownTransaction) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn cancel_intent(&self, intent_id: &str, key: &str) -> Result<(), ConnectorError> {
        Self::check_id(intent_id, "pi_")?;
        match self
            .post(&format!("/v1/payment_intents/{intent_id}/cancel"), &[], key)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => match self.retrieve_intent(intent_id).await {
                Ok(i) if i.state == IntentState::Cancelled => Ok(()),
                _ => Err(e),
            },
        }
    }

    fn verify_webhook(
        &self,
        payload: &[u8],
        header: &str,
        now_s: i64,
    ) -> Result<WebhookEvent, WebhookError> {
        let secret = self.webhook_secret.as_ref().ok_or(WebhookError::NoSecret)?;
        verify_signature(secret.as_bytes(), payload, header, now_s)?;
        let v: Value = serde_json::from_slice(payload).map_err(|_| WebhookError::BadPayload)?;
        let id = v["id"].as_str().ok_or(WebhookError::BadPayload)?.to_owned();
        let kind = v["type"]
            .as_str()
            .ok_or(WebhookError::BadPayload)?
            .to_owned();
        if id.is_empty() || id.len() > 255 || kind.len() > 255 {
            return Err(WebhookError::BadPayload);
        }
        let obj = &v["data"]["object"];
        let intent_id = match obj["object"].as_str() {
            Some("payment_intent") => obj["id"].as_str(),
            Some("charge" | "refund") => obj["payment_intent"].as_str(),
            _ => None,
        }
        .map(str::to_owned);
        Ok(WebhookEvent {
            id,
            kind,
            intent_id,
        })
    }
}

/// Verifies a `Stripe-Signature` header (`t=<unix s>,v1=<hex>[,v1=<hex>…]`): the timestamp
/// within [`SIGNATURE_TOLERANCE_S`] of `now_s`, and any `v1` equal (constant time) to
/// HMAC-SHA256(secret, "<t>.<payload>").
pub fn verify_signature(
    secret: &[u8],
    payload: &[u8],
    header: &str,
    now_s: i64,
) -> Result<(), WebhookError> {
    let mut t: Option<i64> = None;
    let mut sigs: Vec<Vec<u8>> = Vec::new();
    for part in header.split(',') {
        let Some((k, v)) = part.trim().split_once('=') else {
            continue;
        };
        match k {
            "t" => t = Some(v.parse().map_err(|_| WebhookError::MalformedSignature)?),
            "v1" => {
                if let Ok(b) = hex::decode(v) {
                    sigs.push(b)
                }
            }
            _ => {}
        }
    }
    let t = t.ok_or(WebhookError::MalformedSignature)?;
    if sigs.is_empty() {
        return Err(WebhookError::MalformedSignature);
    }
    if (now_s - t).abs() > SIGNATURE_TOLERANCE_S {
        return Err(WebhookError::StaleTimestamp);
    }
    let mut matched = false;
    for s in &sigs {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| WebhookError::NoSecret)?;
        mac.update(t.to_string().as_bytes());
        mac.update(b".");
        mac.update(payload);
        // `verify_slice` compares in constant time.
        matched |= mac.verify_slice(s).is_ok();
    }
    if matched {
        Ok(())
    } else {
        Err(WebhookError::BadSignature)
    }
}

/// The `Stripe-Signature` header Stripe would send for `payload` at `t` (tests and tooling).
pub fn sign(secret: &[u8], payload: &[u8], t: i64) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(payload);
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn signatures_verify_in_time_only() {
        let body = br#"{"id":"evt_1","type":"payment_intent.succeeded"}"#;
        let h = sign(b"whsec_x", body, 1_000);
        assert_eq!(verify_signature(b"whsec_x", body, &h, 1_000), Ok(()));
        assert_eq!(verify_signature(b"whsec_x", body, &h, 1_300), Ok(()));
        assert_eq!(
            verify_signature(b"whsec_x", body, &h, 1_301),
            Err(WebhookError::StaleTimestamp)
        );
        assert_eq!(
            verify_signature(b"whsec_y", body, &h, 1_000),
            Err(WebhookError::BadSignature)
        );
        assert_eq!(
            verify_signature(b"whsec_x", b"{}", &h, 1_000),
            Err(WebhookError::BadSignature)
        );
        // Several v1 signatures (secret rolling): any one matching is enough.
        let other = sign(b"whsec_old", body, 1_000);
        let both = format!("{},v1={},v0=abc", h, other.split("v1=").nth(1).unwrap());
        assert_eq!(verify_signature(b"whsec_old", body, &both, 1_000), Ok(()));
        for bad in ["", "t=1", "v1=00", "t=x,v1=00", "garbage"] {
            assert_eq!(
                verify_signature(b"whsec_x", body, bad, 1_000),
                Err(WebhookError::MalformedSignature),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn intents_map_to_our_states() {
        let base = json!({"id": "pi_1", "amount": 1000, "currency": "jpy",
            "metadata": {META_PAYMENT_ID: "pay_1"}});
        let with = |extra: Value| {
            let mut v = base.clone();
            for (k, x) in extra.as_object().unwrap() {
                v[k] = x.clone();
            }
            parse_intent(&v).unwrap()
        };
        assert_eq!(
            with(json!({"status": "requires_capture"})).state,
            IntentState::Authorized
        );
        let done = with(json!({"status": "succeeded", "amount_received": 1000}));
        assert_eq!(done.state, IntentState::Captured);
        assert_eq!(done.amount_received, 1000);
        assert_eq!(done.payment_id.as_deref(), Some("pay_1"));
        assert_eq!(
            with(json!({"status": "requires_action"})).state,
            IntentState::AwaitingShopper
        );
        let declined = with(json!({"status": "requires_payment_method",
            "last_payment_error": {"code": "card_declined", "decline_code": "insufficient_funds"}}));
        assert_eq!(
            declined.state,
            IntentState::Failed(Failure {
                reason: "insufficient_funds".into(),
                processor_code: "card_declined/insufficient_funds".into()
            })
        );
        let auth = with(json!({"status": "requires_payment_method",
            "last_payment_error": {"code": "payment_intent_authentication_failure"}}));
        assert!(
            matches!(auth.state, IntentState::Failed(f) if f.reason == "authentication_failed")
        );
        assert!(parse_intent(&json!({"id": "pi_1", "status": "weird"})).is_err());
    }

    #[test]
    fn installment_plans_map_to_our_options() {
        let plan = |t: &str, n: Value, i: Value| json!({"type": t, "count": n, "interval": i});
        assert_eq!(
            plan_option(&plan("fixed_count", json!(6), json!("month"))),
            Some(PaymentOption::Installments(6))
        );
        // A count Kakehashi does not offer, another interval, an unknown type: not offered.
        assert_eq!(
            plan_option(&plan("fixed_count", json!(2), json!("month"))),
            None
        );
        assert_eq!(
            plan_option(&plan("fixed_count", json!(6), json!("week"))),
            None
        );
        assert_eq!(plan_option(&plan("later", json!(null), json!(null))), None);
        assert_eq!(plan_option(&Value::Null), None);
        assert_eq!(
            plan_option(&plan("bonus", json!(null), json!(null))),
            Some(PaymentOption::BonusLump)
        );
        assert_eq!(
            plan_option(&plan("revolving", json!(null), json!(null))),
            Some(PaymentOption::Revolving)
        );
        // Each option confirms with the plan Stripe offered for it; 一括 with none.
        for o in [
            PaymentOption::Installments(6),
            PaymentOption::BonusLump,
            PaymentOption::Revolving,
        ] {
            let mut v = json!({});
            for (k, x) in plan_fields(o) {
                let key = k.rsplit('[').next().unwrap().trim_end_matches(']');
                v[key] = match x.parse::<u64>() {
                    Ok(n) => json!(n),
                    Err(_) => json!(x),
                };
            }
            assert_eq!(plan_option(&v), Some(o), "{v}");
        }
        assert!(plan_fields(PaymentOption::Lump).is_empty());
        let pi = json!({"id": "pi_1", "status": "requires_confirmation", "amount": 1000,
            "payment_method": "pm_1", "customer": "cus_1", "setup_future_usage": "on_session",
            "payment_method_options": {"card": {"installments": {"enabled": true,
                "available_plans": [plan("fixed_count", json!(3), json!("month")),
                                    plan("fixed_count", json!(2), json!("month")),
                                    plan("bonus", json!(null), json!(null))],
                "plan": plan("fixed_count", json!(3), json!("month"))}}}});
        let i = parse_intent(&pi).unwrap();
        assert_eq!(
            i.available_plans,
            vec![PaymentOption::Installments(3), PaymentOption::BonusLump]
        );
        assert_eq!(i.plan, Some(PaymentOption::Installments(3)));
        assert_eq!(i.payment_method.as_deref(), Some("pm_1"));
        assert_eq!(i.customer.as_deref(), Some("cus_1"));
        assert!(i.saves_card);
    }

    #[test]
    fn errors_keep_the_decline_code() {
        let e = map_error(
            402,
            &json!({"error": {"type": "card_error", "code": "card_declined", "decline_code": "do_not_honor"}}),
        );
        assert_eq!(
            e,
            ConnectorError::Rejected("card_declined/do_not_honor".into())
        );
        assert_eq!(
            map_error(400, &json!({"error": {"code": "amount_too_large"}})),
            ConnectorError::AmountExceeded
        );
        assert_eq!(
            map_error(404, &json!({"error": {"code": "resource_missing"}})),
            ConnectorError::UnknownTransaction
        );
        assert!(map_error(503, &json!({})).retryable());
        assert_eq!(
            map_error(
                400,
                &json!({"error": {"code": "payment_intent_unexpected_state"}})
            )
            .code(),
            "invalid_state"
        );
    }

    #[test]
    fn urls_are_checked_at_startup() {
        let local = StripeSettings {
            api_base: "http://127.0.0.1:9".into(),
            js_url: "http://127.0.0.1:9/js.stripe.com/v3/".into(),
        };
        assert!(StripeDriver::new(&local, false).is_err());
        assert!(StripeDriver::new(&local, true).is_ok());
        assert!(StripeDriver::new(&StripeSettings::default(), false).is_ok());
        let private = StripeSettings {
            api_base: "https://10.0.0.1".into(),
            ..StripeSettings::default()
        };
        assert!(StripeDriver::new(&private, true).is_err());
    }

    #[test]
    fn csp_lists_only_stripe_origins() {
        let d = StripeDriver::new(&StripeSettings::default(), false).unwrap();
        let c = d.conn(&Credentials {
            account_id: "pa_1".into(),
            mode: crate::domain::Mode::Test,
            secret_key: Zeroizing::new("sk_test_1".into()),
            publishable_key: Some("pk_test_1".into()),
            webhook_secret: None,
        });
        let p = c.page().unwrap();
        assert_eq!(p.script_url, DEFAULT_JS_URL);
        assert_eq!(
            p.csp.script,
            vec!["https://js.stripe.com", "https://*.js.stripe.com"]
        );
        assert_eq!(p.csp.connect, vec!["https://api.stripe.com"]);
        assert!(p.csp.frame.contains(&"https://hooks.stripe.com".to_owned()));
    }
}
