//! A **contract fake** of Stripe's konbini PaymentIntents, written from Stripe's public API
//! reference (localstripe does not implement the `konbini` payment method): a real HTTP server
//! on loopback that checks the requests the way the reference describes them and answers the
//! documented shapes. Field names were checked against the published schema
//! (`stripe/openapi`, `spec3.json`: `payment_intent_next_action_konbini`,
//! `payment_intent_next_action_konbini_stores`, `payment_method_options_konbini`).
//!
//! Endpoints:
//! - `POST /v1/payment_intents` — https://docs.stripe.com/api/payment_intents/create and
//!   https://docs.stripe.com/payments/konbini/accept-a-payment : `amount` (JPY, 120–300,000),
//!   `currency=jpy`, `payment_method_types[]=konbini`, `payment_method_data[type]=konbini` with
//!   `payment_method_data[billing_details][name|email]` (required for konbini),
//!   `payment_method_options[konbini]`: `expires_at` or `expires_after_days` (1–60, not both),
//!   `product_description` (up to 22 characters), `confirmation_number` (10–11 digits, not all
//!   zeroes); `confirm=true` answers `status: requires_action` with
//!   `next_action.type = konbini_display_details` and `konbini_display_details`
//!   (`expires_at`, `hosted_voucher_url`, `stores.{familymart,lawson,ministop,seicomart}.
//!   {confirmation_number,payment_code}`). `Idempotency-Key`
//!   (https://docs.stripe.com/api/idempotent_requests): the same key and body answer the same
//!   PaymentIntent; the same key with another body is a `400 idempotency_error`.
//! - `GET /v1/payment_intents/{id}` — https://docs.stripe.com/api/payment_intents/retrieve ;
//!   `expand[]=latest_charge` (https://docs.stripe.com/expand) gives the charge object
//!   instead of its id.
//! - `POST /v1/payment_intents/{id}/cancel` — https://docs.stripe.com/api/payment_intents/cancel :
//!   allowed while `requires_payment_method`, `requires_confirmation`, `requires_action` (a
//!   konbini voucher not paid yet); otherwise `400 payment_intent_unexpected_state`.
//!
//! What the shopper and Stripe do outside the API is driven by the test: [`StripeKonbiniFake::pay`]
//! (paid at the store: `succeeded`, a charge) and [`StripeKonbiniFake::expire`] (not paid in
//! time: Stripe cancels the PaymentIntent at `expires_at`). Events are built by
//! [`StripeKonbiniFake::event`] with the PaymentIntent as `data.object`, as Stripe sends them
//! (https://docs.stripe.com/api/events/object).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde_json::{json, Value};

pub const FAKE_SK: &str = "sk_test_konbini_fake_0123456789";

const STORES: [&str; 4] = ["familymart", "lawson", "ministop", "seicomart"];

/// A create request as received: its `Idempotency-Key` and its form fields.
pub type CreateRequest = (Option<String>, Vec<(String, String)>);

#[derive(Default)]
struct Inner {
    intents: HashMap<String, Value>,
    /// Idempotency key → (request body, answer).
    keys: HashMap<String, (String, (u16, Value))>,
    /// `METHOD path` of every request.
    requests: Vec<String>,
    /// The form of every create request, with its idempotency key.
    creates: Vec<CreateRequest>,
    n: u64,
}

struct Shared {
    base: String,
    inner: Mutex<Inner>,
}

/// The fake on a loopback port; stops with the test's runtime.
pub struct StripeKonbiniFake {
    pub base: String,
    shared: Arc<Shared>,
}

fn now_s() -> i64 {
    (kakehashi::util::now_ms()) / 1000
}

fn error(status: StatusCode, kind: &str, code: &str, param: &str) -> (u16, Value) {
    (
        status.as_u16(),
        json!({ "error": { "type": kind, "code": code, "param": param,
            "message": format!("{code}: {param}") } }),
    )
}

fn invalid(code: &str, param: &str) -> (u16, Value) {
    error(
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
        code,
        param,
    )
}

impl StripeKonbiniFake {
    pub async fn start() -> StripeKonbiniFake {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let shared = Arc::new(Shared {
            base: base.clone(),
            inner: Mutex::new(Inner::default()),
        });
        let app = Router::new().fallback(handle).with_state(shared.clone());
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        StripeKonbiniFake { base, shared }
    }

    pub fn intent(&self, id: &str) -> Value {
        self.shared.inner.lock().unwrap().intents[id].clone()
    }

    pub fn requests(&self) -> Vec<String> {
        self.shared.inner.lock().unwrap().requests.clone()
    }

    /// (Idempotency-Key, form) of each create request.
    pub fn creates(&self) -> Vec<CreateRequest> {
        self.shared.inner.lock().unwrap().creates.clone()
    }

    /// The shopper pays at the store: the PaymentIntent succeeds with a charge.
    pub fn pay(&self, id: &str) -> Value {
        let mut inner = self.shared.inner.lock().unwrap();
        let pi = inner.intents.get_mut(id).unwrap();
        assert_eq!(
            pi["status"], "requires_action",
            "only a waiting voucher is paid"
        );
        let now = now_s();
        pi["status"] = json!("succeeded");
        pi["amount_received"] = pi["amount"].clone();
        pi["next_action"] = Value::Null;
        pi["latest_charge"] = json!({
            "id": format!("ch_{}", &id[3..]), "object": "charge", "created": now,
            "amount": pi["amount"], "paid": true, "status": "succeeded",
            "payment_method_details": { "type": "konbini", "konbini": { "store": { "chain": "lawson" } } },
        });
        pi.clone()
    }

    /// Not paid in time: Stripe cancels the PaymentIntent at its `expires_at`.
    pub fn expire(&self, id: &str) -> Value {
        let mut inner = self.shared.inner.lock().unwrap();
        let pi = inner.intents.get_mut(id).unwrap();
        let expires = pi["payment_method_options"]["konbini"]["expires_at"]
            .as_i64()
            .unwrap();
        pi["status"] = json!("canceled");
        pi["canceled_at"] = json!(expires);
        pi["cancellation_reason"] = json!("abandoned");
        pi["next_action"] = Value::Null;
        pi.clone()
    }

    /// An event about a PaymentIntent, as Stripe delivers it.
    pub fn event(&self, id: &str, kind: &str, pi: &Value) -> Value {
        json!({
            "id": id, "object": "event", "api_version": "2024-06-20", "type": kind,
            "created": now_s(), "livemode": false,
            "data": { "object": pi },
        })
    }
}

fn form_of(body: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

fn field<'a>(f: &'a [(String, String)], k: &str) -> Option<&'a str> {
    f.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
}

async fn handle(
    State(s): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    let auth_ok = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Bearer {FAKE_SK}"));
    let (status, v) = if !auth_ok {
        error(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            "api_key_invalid",
            "",
        )
    } else {
        route(
            &s,
            &method,
            &path,
            uri.query().unwrap_or(""),
            &headers,
            &body,
        )
    };
    (StatusCode::from_u16(status).unwrap(), Json(v)).into_response()
}

fn route(
    s: &Shared,
    method: &Method,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> (u16, Value) {
    let mut inner = s.inner.lock().unwrap();
    inner.requests.push(format!("{method} {path}"));
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let raw = String::from_utf8_lossy(body).into_owned();
    if let (true, Some(k)) = (method == Method::POST, &key) {
        if let Some((seen, answer)) = inner.keys.get(k) {
            return if *seen == format!("{path}?{raw}") {
                answer.clone()
            } else {
                error(
                    StatusCode::BAD_REQUEST,
                    "idempotency_error",
                    "idempotency_key_in_use",
                    "",
                )
            };
        }
    }
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let answer = match (method.clone(), segments.as_slice()) {
        (Method::POST, ["v1", "payment_intents"]) => {
            let f = form_of(body);
            inner.creates.push((key.clone(), f.clone()));
            create(s, &mut inner, &f)
        }
        (Method::GET, ["v1", "payment_intents", id]) => match inner.intents.get(*id) {
            Some(pi) => {
                let mut pi = pi.clone();
                let expand = form_of(query.as_bytes())
                    .iter()
                    .any(|(k, v)| k == "expand[]" && v == "latest_charge");
                if !expand {
                    if let Some(ch) = pi["latest_charge"]["id"].as_str().map(str::to_owned) {
                        pi["latest_charge"] = json!(ch);
                    }
                }
                (200, pi)
            }
            None => error(
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                "resource_missing",
                "intent",
            ),
        },
        (Method::POST, ["v1", "payment_intents", id, "cancel"]) => {
            match inner.intents.get_mut(*id) {
                Some(pi) => match pi["status"].as_str() {
                    Some(
                        "requires_payment_method" | "requires_confirmation" | "requires_action",
                    ) => {
                        pi["status"] = json!("canceled");
                        pi["canceled_at"] = json!(now_s());
                        pi["cancellation_reason"] = json!("requested_by_customer");
                        pi["next_action"] = Value::Null;
                        (200, pi.clone())
                    }
                    _ => invalid("payment_intent_unexpected_state", ""),
                },
                None => error(
                    StatusCode::NOT_FOUND,
                    "invalid_request_error",
                    "resource_missing",
                    "intent",
                ),
            }
        }
        _ => error(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "url_invalid",
            path,
        ),
    };
    if let (true, Some(k)) = (method == Method::POST, key) {
        inner
            .keys
            .insert(k, (format!("{path}?{raw}"), answer.clone()));
    }
    answer
}

/// `POST /v1/payment_intents` for the `konbini` payment method, confirmed at once.
fn create(s: &Shared, inner: &mut Inner, f: &[(String, String)]) -> (u16, Value) {
    const OPT: &str = "payment_method_options[konbini]";
    let Some(amount) = field(f, "amount").and_then(|a| a.parse::<i64>().ok()) else {
        return invalid("parameter_missing", "amount");
    };
    if field(f, "currency") != Some("jpy") {
        return invalid("parameter_invalid", "currency");
    }
    if !(120..=300_000).contains(&amount) {
        return invalid("amount_too_small", "amount");
    }
    let types: Vec<&str> = f
        .iter()
        .filter(|(k, _)| k == "payment_method_types[]")
        .map(|(_, v)| v.as_str())
        .collect();
    if types != ["konbini"] || field(f, "payment_method_data[type]") != Some("konbini") {
        return invalid("parameter_invalid", "payment_method_types");
    }
    for p in ["name", "email"] {
        let k = format!("payment_method_data[billing_details][{p}]");
        if field(f, &k).is_none_or(str::is_empty) {
            return invalid("parameter_missing", &k);
        }
    }
    let now = now_s();
    let at = field(f, &format!("{OPT}[expires_at]")).and_then(|v| v.parse::<i64>().ok());
    let days = field(f, &format!("{OPT}[expires_after_days]")).and_then(|v| v.parse::<i64>().ok());
    let expires_at = match (at, days) {
        (Some(_), Some(_)) => return invalid("parameter_invalid", "expires_at"),
        (Some(t), None) if t > now && t <= now + 61 * 86_400 => t,
        (None, Some(d)) if (1..=60).contains(&d) => now + d * 86_400,
        (None, None) => now + 3 * 86_400,
        _ => return invalid("parameter_invalid", "expires_at"),
    };
    let description = field(f, &format!("{OPT}[product_description]"));
    if description.is_some_and(|d| d.chars().count() > 22) {
        return invalid("parameter_invalid", "product_description");
    }
    let confirmation = field(f, &format!("{OPT}[confirmation_number]"));
    if let Some(c) = confirmation {
        let ok = (10..=11).contains(&c.len())
            && c.bytes().all(|b| b.is_ascii_digit())
            && c.bytes().any(|b| b != b'0');
        if !ok {
            return invalid("parameter_invalid", "confirmation_number");
        }
    }
    if field(f, "confirm") != Some("true") {
        return invalid("parameter_missing", "confirm");
    }
    inner.n += 1;
    let n = inner.n;
    let id = format!("pi_konbinifake{n}");
    let metadata: serde_json::Map<String, Value> = f
        .iter()
        .filter_map(|(k, v)| {
            let name = k.strip_prefix("metadata[")?.strip_suffix(']')?;
            Some((name.to_owned(), json!(v)))
        })
        .collect();
    let stores: serde_json::Map<String, Value> = STORES
        .iter()
        .enumerate()
        .map(|(i, store)| {
            let code = format!("{:011}", 20_000_000_000 + n * 1_000 + i as u64);
            let confirm = confirmation
                .map(str::to_owned)
                .unwrap_or_else(|| format!("{:011}", 30_000_000_000 + n));
            (
                (*store).to_owned(),
                json!({ "payment_code": code, "confirmation_number": confirm }),
            )
        })
        .collect();
    let pi = json!({
        "id": id, "object": "payment_intent", "amount": amount, "amount_received": 0,
        "currency": "jpy", "status": "requires_action", "created": now,
        "canceled_at": null, "cancellation_reason": null, "latest_charge": null,
        "client_secret": format!("{id}_secret_fake"), "livemode": false,
        "metadata": metadata,
        "payment_method": format!("pm_konbinifake{n}"),
        "payment_method_types": ["konbini"],
        "payment_method_options": { "konbini": {
            "expires_at": expires_at, "expires_after_days": days,
            "product_description": description, "confirmation_number": confirmation,
        }},
        "next_action": { "type": "konbini_display_details", "konbini_display_details": {
            "expires_at": expires_at,
            "hosted_voucher_url": format!("{}/vouchers/{id}", s.base),
            "stores": stores,
        }},
    });
    inner.intents.insert(id, pi.clone());
    (200, pi)
}
