//! KOMOJU (komoju.com): konbini, Pay-easy and bank-transfer (`bank_transfer.rs`) payments through its Payments API, and its
//! signed webhooks. Built only from KOMOJU's public API reference:
//!
//! - Authentication: HTTP Basic with the secret key as user name and no password
//!   (doc.komoju.com, "Authentication"; docs.komoju.com/en/api/overview).
//! - `POST /api/v1/payments` with `payment_details` of type `konbini` (`store`, `email`, `phone`)
//!   or `pay_easy` (`email`, `phone`, names in kanji and katakana); the answer carries the
//!   number in `payment_details` (`receipt`, `confirmation_code`, `instructions_url` for
//!   konbini; `bank_id`, `customer_id`, `confirmation_id`, `instructions_url` for Pay-easy) and
//!   the deadline in `payment_deadline` (doc.komoju.com "Payment details";
//!   docs.komoju.com/en/api/resources/payments).
//! - `GET /api/v1/payments/{id}` to read a payment back.
//! - `POST /api/v1/payments/{id}/cancel` withdraws a payment whose state is `pending` (an unpaid
//!   number) or `authorized`; other states are refused (doc.komoju.com, "Cancel Payment").
//! - Webhooks: `X-Komoju-Signature` is the hex HMAC-SHA256 of the raw body with the webhook's
//!   secret token; the body is an event `{id, type, resource: "event", data: <payment>}`
//!   (doc.komoju.com, "Webhooks").
//!
//! Every create call sends our payment id as `Idempotency-Key` (and as `external_order_num`),
//! so a retried issue returns the number KOMOJU already issued instead of a second one.

use std::sync::Arc;
use std::time::Duration;

pub mod bank_transfer;
pub mod card;
pub mod carrier;
mod redirect;
pub mod wallet;

use async_trait::async_trait;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::connectors::carrier::CarrierConnector;
use crate::connectors::driver::{Credentials, ProcessorDriver};
use crate::connectors::konbini::{
    CancelRequest, ConnectorError, IssueRequest, IssueTarget, IssuedNumber, NumberConnector,
};
use crate::connectors::webhook::{Effect, WebhookError, WebhookEvent};
use crate::domain::konbini::{Chain, NumberAction};
use crate::domain::processor::{Family, Processor};
use crate::ssrf::{check_url, UrlPolicy};

/// KOMOJU's API host (`KAKEHASHI_KOMOJU_API_BASE` overrides it, e.g. for a local fake).
pub const DEFAULT_API_BASE: &str = crate::config::DEFAULT_KOMOJU_API_BASE;
/// The header carrying a webhook's signature.
pub const SIGNATURE_HEADER: &str = "x-komoju-signature";
/// How long one API call may take before it counts as unavailable (safe to retry: idempotent).
const TIMEOUT: Duration = Duration::from_secs(20);

/// Connector error codes (stable; documented in docs/komoju.md).
pub const EMAIL_REQUIRED: &str = "komoju_email_required";
pub const PHONE_REQUIRED: &str = "komoju_phone_required";
pub const NAME_REQUIRED: &str = "komoju_name_required";
pub const REJECTED: &str = "komoju_rejected";

/// KOMOJU's name of a konbini chain (`payment_details[store]`).
pub fn store_of(c: Chain) -> &'static str {
    match c {
        Chain::SevenEleven => "seven-eleven",
        Chain::Lawson => "lawson",
        Chain::FamilyMart => "family-mart",
        Chain::Ministop => "ministop",
        Chain::DailyYamazaki => "daily-yamazaki",
        Chain::Seicomart => "seicomart",
    }
}

/// The HTTP side: base URL and client, shared by every account's connectors.
pub struct KomojuApi {
    base: String,
    http: reqwest::Client,
}

impl std::fmt::Debug for KomojuApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KomojuApi")
            .field("base", &self.base)
            .finish()
    }
}

/// Why an API call failed.
#[derive(Debug)]
enum ApiError {
    /// Not reached, timed out, or a 5xx: retry later.
    Unavailable(String),
    /// KOMOJU refused the request (4xx) with its error code.
    Refused { status: u16, code: String },
}

impl KomojuApi {
    /// The API at `base` (no trailing slash needed). `allow_loopback` admits http and loopback
    /// hosts (local fakes in tests); otherwise the base must be https on a public host, by the
    /// same rules as merchant callback URLs.
    pub fn new(base: &str, allow_loopback: bool) -> anyhow::Result<KomojuApi> {
        let policy = if allow_loopback {
            UrlPolicy::AllowLoopback
        } else {
            UrlPolicy::Production
        };
        let url = check_url(base, policy)
            .map_err(|e| anyhow::anyhow!("KAKEHASHI_KOMOJU_API_BASE {base:?}: {e}"))?;
        anyhow::ensure!(
            url.query().is_none() && url.fragment().is_none(),
            "KAKEHASHI_KOMOJU_API_BASE {base:?}: no query or fragment allowed"
        );
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(KomojuApi {
            base: base.trim_end_matches('/').to_owned(),
            http,
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    async fn call(
        &self,
        key: &str,
        method: reqwest::Method,
        path: &str,
        idempotency_key: Option<&str>,
        body: Option<&Value>,
    ) -> Result<Value, ApiError> {
        let mut rb = self
            .http
            .request(method, format!("{}{path}", self.base))
            .basic_auth(key, None::<&str>)
            .header("accept", "application/json");
        if let Some(k) = idempotency_key {
            rb = rb.header("idempotency-key", k);
        }
        if let Some(b) = body {
            rb = rb.json(b);
        }
        let r = rb
            .send()
            .await
            .map_err(|e| ApiError::Unavailable(format!("komoju: {}", e.without_url())))?;
        let status = r.status();
        let text = r
            .text()
            .await
            .map_err(|e| ApiError::Unavailable(format!("komoju body: {}", e.without_url())))?;
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(v);
        }
        let code = v["error"]["code"]
            .as_str()
            .unwrap_or("unknown")
            .chars()
            .take(64)
            .collect();
        if status.is_server_error() || status.as_u16() == 429 {
            return Err(ApiError::Unavailable(format!("komoju {status}: {code}")));
        }
        Err(ApiError::Refused {
            status: status.as_u16(),
            code,
        })
    }
}

/// The KOMOJU driver: builds an account's connectors from its credentials.
pub struct KomojuDriver {
    api: Arc<KomojuApi>,
}

impl KomojuDriver {
    pub fn new(api: KomojuApi) -> KomojuDriver {
        KomojuDriver { api: Arc::new(api) }
    }
}

impl ProcessorDriver for KomojuDriver {
    fn processor(&self) -> Processor {
        Processor::Komoju
    }

    fn families(&self) -> &[Family] {
        &[
            Family::Number,
            Family::Carrier,
            Family::Wallet,
            Family::Card,
        ]
    }

    /// Cards server to server (the operator handles card data: docs/komoju.md §4f).
    fn card(&self, c: &Credentials) -> Option<Arc<dyn crate::connectors::card::CardConnector>> {
        Some(Arc::new(card::KomojuCard {
            api: self.api.clone(),
            key: c.secret_key.clone(),
        }))
    }

    fn wallet(
        &self,
        c: &Credentials,
    ) -> Option<Arc<dyn crate::connectors::wallet::WalletConnector>> {
        Some(Arc::new(wallet::KomojuWallet {
            api: self.api.clone(),
            key: c.secret_key.clone(),
        }))
    }

    fn carrier(&self, c: &Credentials) -> Option<Arc<dyn CarrierConnector>> {
        Some(Arc::new(carrier::KomojuCarrier {
            api: self.api.clone(),
            key: c.secret_key.clone(),
        }))
    }

    fn number(&self, c: &Credentials) -> Option<Arc<dyn NumberConnector>> {
        Some(Arc::new(KomojuNumber {
            api: self.api.clone(),
            key: c.secret_key.clone(),
        }))
    }

    fn webhook(
        &self,
        c: &Credentials,
        headers: &axum::http::HeaderMap,
        body: &[u8],
    ) -> Option<Result<WebhookEvent, WebhookError>> {
        let Some(secret) = c.webhook_secret.as_ref() else {
            return Some(Err(WebhookError::Unverifiable(
                "the account has no webhook secret".into(),
            )));
        };
        let signature = headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok());
        Some(read_webhook(&secrets_of(secret), signature, body))
    }
}

/// The secrets of a stored webhook secret: several may be stored, separated by commas or
/// whitespace, so a new KOMOJU webhook secret can be added before the old one is removed.
pub fn secrets_of(stored: &str) -> Vec<&str> {
    stored
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Hex HMAC-SHA256 of `body` with `secret`: the value of `X-Komoju-Signature`.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC accepts any key length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// Whether `signature` (hex) is the HMAC of `body` under any of `secrets`. Each comparison is
/// constant-time.
pub fn signature_ok(secrets: &[&str], signature: &str, body: &[u8]) -> bool {
    let Ok(sig) = hex::decode(signature.trim()) else {
        return false;
    };
    secrets.iter().any(|s| {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(s.as_bytes()).expect("HMAC accepts any key length");
        mac.update(body);
        mac.verify_slice(&sig).is_ok()
    })
}

/// Verifies a webhook delivery and reads its event. Nothing in the body is looked at before
/// the signature checks out.
pub fn read_webhook(
    secrets: &[&str],
    signature: Option<&str>,
    body: &[u8],
) -> Result<WebhookEvent, WebhookError> {
    let sig = signature.ok_or(WebhookError::BadSignature)?;
    if secrets.is_empty() || !signature_ok(secrets, sig, body) {
        return Err(WebhookError::BadSignature);
    }
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| WebhookError::Malformed(format!("not JSON: {e}")))?;
    let id = v["id"]
        .as_str()
        .filter(|s| !s.is_empty() && s.len() <= 128)
        .ok_or_else(|| WebhookError::Malformed("event id missing".into()))?;
    let kind = v["type"]
        .as_str()
        .filter(|s| !s.is_empty() && s.len() <= 128)
        .ok_or_else(|| WebhookError::Malformed("event type missing".into()))?;
    let data = &v["data"];
    let about_payment = kind.starts_with("payment.") && data.is_object();
    let text = |k: &str| {
        about_payment
            .then(|| data[k].as_str())
            .flatten()
            .filter(|s| !s.is_empty() && s.len() <= 128)
            .map(str::to_owned)
    };
    let effect = match kind {
        "payment.captured" => {
            let at = text("captured_at")
                .or_else(|| v["created_at"].as_str().map(str::to_owned))
                .and_then(|t| parse_time(&t))
                // Connectors hold no app clock; an event without a time is dated on arrival.
                .unwrap_or_else(crate::util::now_ms);
            Effect::Paid { at_ms: at }
        }
        "payment.expired" => Effect::Expired,
        "payment.cancelled" => Effect::Cancelled,
        "payment.failed" => Effect::Failed,
        "payment.refunded" => Effect::Refunded,
        _ => Effect::Ignored,
    };
    Ok(WebhookEvent {
        id: id.to_owned(),
        kind: kind.to_owned(),
        payment_ref: text("id"),
        order_ref: text("external_order_num"),
        effect,
    })
}

/// RFC 3339 time → unix ms.
fn parse_time(s: &str) -> Option<i64> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

/// Digits only (KOMOJU takes the phone number without hyphens too).
fn digits(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}

/// Splits a full name at its first space (ASCII or full-width): family name, given name.
fn split_name(full: &str) -> Option<(String, String)> {
    let full = full.trim();
    let (family, given) = full.split_once([' ', '\u{3000}'])?;
    let (family, given) = (family.trim(), given.trim());
    (!family.is_empty() && !given.is_empty()).then(|| (family.to_owned(), given.to_owned()))
}

/// The konbini / Pay-easy connector of one KOMOJU account.
pub struct KomojuNumber {
    api: Arc<KomojuApi>,
    key: Zeroizing<String>,
}

impl KomojuNumber {
    /// The `payment_details` of the create request, or why the request cannot be made.
    fn details(req: &IssueRequest) -> Result<Value, ConnectorError> {
        let email = req
            .shopper_email
            .as_deref()
            .map(str::trim)
            .filter(|e| e.contains('@'))
            .ok_or(ConnectorError::InvalidRequest(EMAIL_REQUIRED))?;
        let phone = req
            .shopper_phone
            .as_deref()
            .map(digits)
            .filter(|p| (10..=11).contains(&p.len()));
        match req.target {
            IssueTarget::Konbini(chain) => {
                let mut d = json!({ "type": "konbini", "store": store_of(chain), "email": email });
                if let Some(p) = phone {
                    d["phone"] = json!(p);
                }
                Ok(d)
            }
            IssueTarget::Payeasy => {
                let phone = phone.ok_or(ConnectorError::InvalidRequest(PHONE_REQUIRED))?;
                let (family, given) = req
                    .shopper_name
                    .as_deref()
                    .and_then(split_name)
                    .ok_or(ConnectorError::InvalidRequest(NAME_REQUIRED))?;
                let (family_kana, given_kana) = req
                    .shopper_name_kana
                    .as_deref()
                    .and_then(split_name)
                    .ok_or(ConnectorError::InvalidRequest(NAME_REQUIRED))?;
                Ok(json!({
                    "type": "pay_easy",
                    "email": email,
                    "phone": phone,
                    "family_name": family,
                    "given_name": given,
                    "family_name_kana": family_kana,
                    "given_name_kana": given_kana,
                }))
            }
            IssueTarget::BankTransfer => bank_transfer::details(req, email, phone),
        }
    }

    /// Reads KOMOJU's payment into our number, refusing anything that does not fit the target.
    fn number_of(&self, req: &IssueRequest, p: &Value) -> Result<IssuedNumber, ConnectorError> {
        let bad = |what: &str| ConnectorError::Unavailable(format!("komoju answer: {what}"));
        let id = p["id"]
            .as_str()
            .filter(|s| !s.is_empty() && s.len() <= 64)
            .ok_or_else(|| bad("no payment id"))?;
        if p["amount"].as_i64() != Some(req.amount) {
            return Err(bad("amount differs"));
        }
        if !matches!(p["status"].as_str(), Some("pending" | "authorized")) {
            return Err(bad("payment is not awaiting payment"));
        }
        let d = &p["payment_details"];
        let field = |k: &str| d[k].as_str().map(str::trim).map(str::to_owned);
        let mut n = IssuedNumber {
            target: req.target,
            receipt_no: None,
            customer_no: None,
            confirm_no: None,
            institution_no: None,
            payment_url: field("instructions_url").filter(|u| self.link_ok(u)),
            deadline_ms: p["payment_deadline"]
                .as_str()
                .and_then(parse_time)
                .unwrap_or(req.deadline_ms),
            connector_ref: id.to_owned(),
            account: None,
        };
        match req.target {
            IssueTarget::Konbini(chain) => {
                if d["type"].as_str() != Some("konbini")
                    || d["store"].as_str() != Some(store_of(chain))
                {
                    return Err(bad("another method or store"));
                }
                match chain.shape() {
                    crate::domain::konbini::NumberShape::CustomerAndConfirm => {
                        n.customer_no = field("receipt");
                        n.confirm_no = field("confirmation_code");
                    }
                    _ => n.receipt_no = field("receipt"),
                }
            }
            IssueTarget::Payeasy => {
                if d["type"].as_str() != Some("pay_easy") {
                    return Err(bad("another method"));
                }
                n.institution_no = field("bank_id");
                n.customer_no = field("customer_id");
                n.confirm_no = field("confirmation_id");
            }
            IssueTarget::BankTransfer => {
                n.account =
                    Some(bank_transfer::account_of(d).ok_or_else(|| bad("no whole account"))?);
            }
        }
        if !n.has_processor_shape() {
            return Err(bad("number does not have the shape of its store"));
        }
        Ok(n)
    }

    /// The instructions page is shown to the shopper as a link: https only (or the configured
    /// API host itself, for a local fake).
    fn link_ok(&self, url: &str) -> bool {
        url.len() <= 512
            && (url.starts_with("https://") || url.starts_with(&format!("{}/", self.api.base)))
            && !url
                .chars()
                .any(|c| c.is_whitespace() || c == '"' || c == '<')
    }
}

#[async_trait]
impl NumberConnector for KomojuNumber {
    fn precheck(&self, req: &IssueRequest) -> Result<(), ConnectorError> {
        req.target
            .validate_amount(req.amount)
            .map_err(|e| ConnectorError::InvalidRequest(e.code()))?;
        Self::details(req).map(|_| ())
    }

    async fn issue(&self, req: &IssueRequest) -> Result<IssuedNumber, ConnectorError> {
        if req.payment_id.is_empty() {
            return Err(ConnectorError::InvalidRequest("payment_id_missing"));
        }
        req.target
            .validate_amount(req.amount)
            .map_err(|e| ConnectorError::InvalidRequest(e.code()))?;
        let body = json!({
            "amount": req.amount,
            "currency": "JPY",
            "external_order_num": req.payment_id,
            "payment_details": Self::details(req)?,
        });
        let p = self
            .api
            .call(
                &self.key,
                reqwest::Method::POST,
                "/api/v1/payments",
                Some(&req.payment_id),
                Some(&body),
            )
            .await
            .map_err(|e| match e {
                ApiError::Unavailable(m) => ConnectorError::Unavailable(m),
                ApiError::Refused { status, code } => {
                    tracing::warn!(status, code = %code, payment = %req.payment_id, "komoju refused the payment");
                    ConnectorError::InvalidRequest(REJECTED)
                }
            })?;
        self.number_of(req, &p)
    }

    async fn query(&self, number: &IssuedNumber) -> Result<Vec<NumberAction>, ConnectorError> {
        let path = format!(
            "/api/v1/payments/{}",
            crate::connectors::carrier::percent_encode(&number.connector_ref)
        );
        let p = self
            .api
            .call(&self.key, reqwest::Method::GET, &path, None, None)
            .await
            .map_err(|e| match e {
                ApiError::Unavailable(m) => ConnectorError::Unavailable(m),
                ApiError::Refused { .. } => ConnectorError::InvalidRequest(REJECTED),
            })?;
        Ok(match p["status"].as_str() {
            Some("captured") => {
                let at = p["captured_at"]
                    .as_str()
                    .and_then(parse_time)
                    // Connectors hold no app clock; a capture without a time is dated now.
                    .unwrap_or_else(crate::util::now_ms);
                vec![NumberAction::Paid { at_ms: at }]
            }
            _ => Vec::new(),
        })
    }

    async fn cancel(&self, req: &CancelRequest) -> Result<(), ConnectorError> {
        let id = crate::connectors::carrier::percent_encode(&req.connector_ref);
        let key = format!("{}:cancel", req.payment_id);
        let refused = match self
            .api
            .call(
                &self.key,
                reqwest::Method::POST,
                &format!("/api/v1/payments/{id}/cancel"),
                Some(&key),
                None,
            )
            .await
        {
            Ok(_) => return Ok(()),
            Err(ApiError::Unavailable(m)) => return Err(ConnectorError::Unavailable(m)),
            Err(ApiError::Refused { status, code }) => (status, code),
        };
        // Refused: only a payment that is no longer pending. Read it back to tell "cancelled
        // already" (a retry after a lost answer: done) from "paid meanwhile" (keep the number).
        let p = self
            .api
            .call(
                &self.key,
                reqwest::Method::GET,
                &format!("/api/v1/payments/{id}"),
                None,
                None,
            )
            .await
            .map_err(|e| match e {
                ApiError::Unavailable(m) => ConnectorError::Unavailable(m),
                ApiError::Refused { .. } => ConnectorError::InvalidRequest(REJECTED),
            })?;
        match p["status"].as_str() {
            Some("cancelled") => Ok(()),
            Some("captured" | "authorized" | "refunded") => Err(ConnectorError::NotCancellable),
            other => {
                let (status, code) = refused;
                tracing::warn!(status, code = %code, state = ?other, payment = %req.payment_id, "komoju refused to cancel");
                Err(ConnectorError::InvalidRequest(REJECTED))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_with_any_configured_secret() {
        let body = br#"{"id":"evt_1","type":"ping","data":{}}"#;
        let sig = sign("new", body);
        assert!(signature_ok(&["old", "new"], &sig, body));
        assert!(!signature_ok(&["old"], &sig, body));
        assert!(!signature_ok(&["new"], &sig[..10], body));
        assert!(!signature_ok(&["new"], "zz", body));
        assert_eq!(secrets_of("a, b\nc"), vec!["a", "b", "c"]);
        let e = read_webhook(&["new"], Some(&sig), body).unwrap();
        assert_eq!((e.id.as_str(), e.effect), ("evt_1", Effect::Ignored));
        assert_eq!(
            read_webhook(&["new"], None, body).unwrap_err(),
            WebhookError::BadSignature
        );
        let tampered = br#"{"id":"evt_2","type":"ping","data":{}}"#;
        assert_eq!(
            read_webhook(&["new"], Some(&sig), tampered).unwrap_err(),
            WebhookError::BadSignature
        );
    }

    #[test]
    fn captured_events_carry_the_payment_and_time() {
        let body = json!({
            "id": "evt_9", "type": "payment.captured", "resource": "event",
            "data": {"id": "kp_1", "external_order_num": "pay_1", "status": "captured",
                     "captured_at": "2026-12-01T01:00:00Z"},
        })
        .to_string();
        let e = read_webhook(&["s"], Some(&sign("s", body.as_bytes())), body.as_bytes()).unwrap();
        assert_eq!(e.payment_ref.as_deref(), Some("kp_1"));
        assert_eq!(e.order_ref.as_deref(), Some("pay_1"));
        assert_eq!(
            e.effect,
            Effect::Paid {
                at_ms: 1_796_086_800_000
            }
        );
    }

    #[test]
    fn names_split_and_stores_map() {
        assert_eq!(
            split_name("山田　太郎"),
            Some(("山田".into(), "太郎".into()))
        );
        assert_eq!(split_name("ヤマダ タロウ").unwrap().1, "タロウ");
        assert_eq!(split_name("山田太郎"), None);
        assert_eq!(store_of(Chain::FamilyMart), "family-mart");
        assert_eq!(store_of(Chain::DailyYamazaki), "daily-yamazaki");
    }

    fn lawson_request() -> IssueRequest {
        IssueRequest {
            payment_id: "pay_1".into(),
            mode: crate::domain::Mode::Live,
            target: IssueTarget::Konbini(Chain::Lawson),
            amount: 1200,
            deadline_ms: 5,
            shopper_name_kana: None,
            shopper_phone: Some("090-1234-5678".into()),
            shopper_name: None,
            shopper_email: Some("a@example.jp".into()),
        }
    }

    fn lawson_answer() -> Value {
        json!({
            "id": "kp_1", "status": "authorized", "amount": 1200,
            "payment_deadline": "2026-12-04T14:59:59Z",
            "payment_details": {"type": "konbini", "store": "lawson", "receipt": "12345678901",
                "confirmation_code": "1234",
                "instructions_url": "https://komoju.com/ja/instructions/kp_1"},
        })
    }

    #[test]
    fn answers_are_read_into_our_number_or_refused() {
        let c = KomojuNumber {
            api: Arc::new(KomojuApi::new(DEFAULT_API_BASE, false).unwrap()),
            key: Zeroizing::new("sk".into()),
        };
        let req = lawson_request();
        let d = KomojuNumber::details(&req).unwrap();
        assert_eq!(d["store"], "lawson");
        assert_eq!(d["phone"], "09012345678");
        let n = c.number_of(&req, &lawson_answer()).unwrap();
        assert_eq!(n.customer_no.as_deref(), Some("12345678901"));
        assert_eq!(n.confirm_no.as_deref(), Some("1234"));
        assert_eq!(n.connector_ref, "kp_1");
        assert_eq!(n.deadline_ms, 1_796_396_399_000);
        assert!(n.payment_url.is_some());
        // Anything that does not fit is refused, never shown.
        for (path, value) in [
            ("/amount", json!(1300)),
            ("/status", json!("captured")),
            ("/payment_details/store", json!("seven-eleven")),
            ("/payment_details/receipt", json!("12-34")),
            ("/payment_details/confirmation_code", Value::Null),
        ] {
            let mut a = lawson_answer();
            *a.pointer_mut(path).unwrap() = value;
            let e = c.number_of(&req, &a).unwrap_err();
            assert_eq!(e.code(), "unavailable", "{path}");
        }
        // A link that is not https is dropped, the number kept.
        let mut a = lawson_answer();
        a["payment_details"]["instructions_url"] = json!("javascript:alert(1)");
        assert_eq!(c.number_of(&req, &a).unwrap().payment_url, None);
        // Requests KOMOJU would refuse are not sent.
        let mut r = lawson_request();
        r.shopper_email = None;
        assert_eq!(
            KomojuNumber::details(&r).unwrap_err().code(),
            EMAIL_REQUIRED
        );
        r.shopper_email = Some("a@example.jp".into());
        r.target = IssueTarget::Payeasy;
        r.shopper_name = Some("山田 太郎".into());
        assert_eq!(KomojuNumber::details(&r).unwrap_err().code(), NAME_REQUIRED);
        r.shopper_name_kana = Some("ヤマダ タロウ".into());
        let d = KomojuNumber::details(&r).unwrap();
        assert_eq!(
            (d["family_name"].as_str(), d["given_name_kana"].as_str()),
            (Some("山田"), Some("タロウ"))
        );
    }

    #[test]
    fn the_api_base_follows_the_ssrf_rules() {
        assert!(KomojuApi::new("https://komoju.com", false).is_ok());
        assert!(KomojuApi::new("http://komoju.com", false).is_err());
        assert!(KomojuApi::new("http://127.0.0.1:9", false).is_err());
        assert!(KomojuApi::new("http://127.0.0.1:9", true).is_ok());
        assert!(KomojuApi::new("https://10.0.0.1", true).is_err());
    }
}
