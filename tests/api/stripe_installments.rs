//! What localstripe does not implement of the Stripe API Kakehashi uses — Japan installments
//! (分割払い) and `setup_future_usage` (saving a card while paying) — added by a **proxy in
//! front of localstripe**: every request goes on to localstripe unchanged except those fields,
//! which the proxy takes out of the request and adds to the answer as Stripe's API reference
//! describes them. Everything else (payment methods, customers, attach / detach, confirmation,
//! 3-D Secure, capture, refunds) stays localstripe's.
//!
//! Endpoints the proxy extends, each following Stripe's public reference:
//! - `POST /v1/payment_methods` — https://docs.stripe.com/api/payment_methods/create : the
//!   proxy notes which payment methods carry a Japanese test card (eligible for installments).
//! - `POST /v1/payment_intents` — https://docs.stripe.com/api/payment_intents/create
//!   (`payment_method_options.card.installments.enabled`): with a payment method attached and
//!   eligible, the intent answers `payment_method_options.card.installments.available_plans`
//!   (https://docs.stripe.com/payments/jp-installments/accept-a-payment, "Retrieve installment
//!   plans on the server").
//! - `POST /v1/payment_intents/{id}` — https://docs.stripe.com/api/payment_intents/update :
//!   a new `payment_method` gets that method's plans.
//! - `POST /v1/payment_intents/{id}/confirm` — https://docs.stripe.com/api/payment_intents/confirm
//!   (`payment_method_options.card.installments.plan` `{type, count, interval}`): a plan that
//!   is not among `available_plans` is refused with `400 invalid_request_error`; the chosen
//!   plan is then reported as `payment_method_options.card.installments.plan`.
//! - `GET /v1/payment_intents/{id}` — https://docs.stripe.com/api/payment_intents/object
//!   (`payment_method_options.card.installments` `{enabled, available_plans, plan}`).
//! - `setup_future_usage` on `POST /v1/payment_intents` and `POST /v1/payment_intents/{id}` —
//!   https://docs.stripe.com/api/payment_intents/create#create_payment_intent-setup_future_usage
//!   ("Stripe attaches the payment method to the Customer after the PaymentIntent is confirmed
//!   and any required actions from the user are complete"): reported on the intent, and once
//!   the proxy sees the intent `requires_capture` or `succeeded`, it attaches the method to the
//!   intent's customer at localstripe (`POST /v1/payment_methods/{id}/attach`).
//! - CVC re-collection for saved cards: `POST /v1/tokens` with `cvc_update[cvc]` —
//!   https://docs.stripe.com/api/tokens/create_cvc_update — answers a single-use
//!   `{"object": "token", "type": "cvc_update", "id": "cvctok_…"}` (what Stripe.js
//!   `createToken('cvc_update', cardCvcElement)` does), and `POST /v1/payment_intents/{id}/confirm`
//!   takes `payment_method_options[card][cvc_token]` —
//!   https://docs.stripe.com/api/payment_intents/confirm ("A single-use cvc_update Token …
//!   can only be provided during confirmation"): an unknown or already used token is refused
//!   with `400 invalid_request_error`; the proxy records which token each confirm carried.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde_json::{json, Value};

/// Stripe's Japanese test card (Visa, issued in Japan): eligible for installments. Other
/// cards (4242…, issued elsewhere) are not.
pub const PAN_JP: &str = "4000003920000003";

const INST: &str = "payment_method_options[card][installments]";

/// Plans Stripe offers the eligible card in this proxy: monthly fixed counts. 2 is one
/// Kakehashi does not offer (not in its installment counts), so it must be dropped.
fn plans() -> Vec<Value> {
    [2, 3, 6, 10, 12]
        .iter()
        .map(|n| json!({ "type": "fixed_count", "count": n, "interval": "month" }))
        .collect()
}

#[derive(Default)]
struct Inner {
    eligible: HashSet<String>,
    /// Intent id → (installments enabled, selected plan).
    intents: HashMap<String, (bool, Option<Value>)>,
    /// The plan fields of every confirm call received, as sent.
    confirms: Vec<Vec<(String, String)>>,
    /// Intent id → its `setup_future_usage`.
    future_usage: HashMap<String, String>,
    /// Intents whose method was attached to their customer already.
    attached: HashSet<String>,
    /// CVC update tokens issued → used already.
    cvc_tokens: HashMap<String, bool>,
    /// The `cvc_token` of every confirm call received (`None`: none sent).
    confirm_cvc: Vec<Option<String>>,
}

struct Shared {
    upstream: String,
    inner: Mutex<Inner>,
    http: reqwest::Client,
}

/// The proxy on a loopback port; stops with the test's runtime.
pub struct InstallmentsProxy {
    pub url: String,
    shared: Arc<Shared>,
}

impl InstallmentsProxy {
    pub async fn start(upstream: &str) -> InstallmentsProxy {
        let shared = Arc::new(Shared {
            upstream: upstream.to_owned(),
            inner: Mutex::new(Inner::default()),
            http: reqwest::Client::new(),
        });
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        InstallmentsProxy { url, shared }
    }

    /// The plan fields each confirm call carried.
    pub fn confirms(&self) -> Vec<Vec<(String, String)>> {
        self.shared.inner.lock().unwrap().confirms.clone()
    }

    /// The CVC token each confirm call carried.
    pub fn confirm_cvc_tokens(&self) -> Vec<Option<String>> {
        self.shared.inner.lock().unwrap().confirm_cvc.clone()
    }
}

/// `POST /v1/tokens` with `cvc_update[cvc]`: a single-use token for the code (3 or 4 digits).
fn cvc_token(s: &Shared, pairs: &[(String, String)]) -> Response {
    let cvc = pairs
        .iter()
        .find(|(k, _)| k == "cvc_update[cvc]")
        .map(|(_, v)| v.as_str())
        .unwrap_or("");
    if !(3..=4).contains(&cvc.len()) || !cvc.bytes().all(|b| b.is_ascii_digit()) {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({ "error": {
                "type": "invalid_request_error",
                "code": "invalid_cvc",
                "param": "cvc_update[cvc]",
                "message": "Your card's security code is invalid.",
            }})),
        )
            .into_response();
    }
    let mut inner = s.inner.lock().unwrap();
    let id = format!("cvctok_kakehashi{}", inner.cvc_tokens.len() + 1);
    inner.cvc_tokens.insert(id.clone(), false);
    Json(json!({
        "id": id, "object": "token", "type": "cvc_update", "used": false,
        "livemode": false, "created": 1_700_000_000, "client_ip": null,
    }))
    .into_response()
}

fn pm_of(pi: &Value) -> Option<String> {
    pi["payment_method"]
        .as_str()
        .or_else(|| pi["payment_method"]["id"].as_str())
        .map(str::to_owned)
}

/// Adds `payment_method_options.card.installments` to a PaymentIntent as Stripe reports it.
fn patch(inner: &Inner, pi: &mut Value) {
    let Some(id) = pi["id"].as_str().map(str::to_owned) else {
        return;
    };
    if let Some(u) = inner.future_usage.get(&id) {
        pi["setup_future_usage"] = json!(u);
    }
    let Some((enabled, plan)) = inner.intents.get(&id).cloned() else {
        return;
    };
    let eligible = pm_of(pi).is_some_and(|pm| inner.eligible.contains(&pm));
    let available = if enabled && eligible {
        Value::Array(plans())
    } else {
        Value::Null
    };
    pi["payment_method_options"]["card"]["installments"] = json!({
        "enabled": enabled,
        "available_plans": available,
        "plan": plan,
    });
}

fn invalid(message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({ "error": {
            "type": "invalid_request_error",
            "code": "parameter_invalid_empty",
            "param": format!("{INST}[plan]"),
            "message": message,
        }})),
    )
        .into_response()
}

async fn handle(
    State(s): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    let mut pairs: Vec<(String, String)> =
        url::form_urlencoded::parse(&body).into_owned().collect();
    let mut take = |k: &str| -> Option<String> {
        let i = pairs.iter().position(|(n, _)| n == k)?;
        Some(pairs.remove(i).1)
    };
    let enabled = take(&format!("{INST}[enabled]")).is_some_and(|v| v == "true");
    let future_usage = take("setup_future_usage");
    let plan_type = take(&format!("{INST}[plan][type]"));
    let plan_count = take(&format!("{INST}[plan][count]"));
    let plan_interval = take(&format!("{INST}[plan][interval]"));
    let cvc = take("payment_method_options[card][cvc_token]");
    let number = pairs
        .iter()
        .find(|(k, _)| k == "card[number]")
        .map(|(_, v)| v.clone());
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let post = method == Method::POST;
    if post && segments.as_slice() == ["v1", "tokens"] {
        return cvc_token(&s, &pairs);
    }
    let confirm_of = match segments.as_slice() {
        ["v1", "payment_intents", id, "confirm"] if post => Some((*id).to_owned()),
        _ => None,
    };
    let plan = plan_type.map(|t| {
        json!({
            "type": t,
            "count": plan_count.as_ref().and_then(|c| c.parse::<u64>().ok()),
            "interval": plan_interval,
        })
    });
    if confirm_of.is_some() {
        let mut inner = s.inner.lock().unwrap();
        inner.confirm_cvc.push(cvc.clone());
        if let Some(t) = &cvc {
            // Single use, and only a token Stripe issued.
            match inner.cvc_tokens.get_mut(t) {
                Some(used) if !*used => *used = true,
                _ => {
                    return (
                        StatusCode::BAD_REQUEST,
                        Json(json!({ "error": {
                            "type": "invalid_request_error",
                            "code": "resource_missing",
                            "param": "payment_method_options[card][cvc_token]",
                            "message": "No such token, or it was used already.",
                        }})),
                    )
                        .into_response()
                }
            }
        }
    }
    if let Some(id) = &confirm_of {
        let enabled_here = {
            let mut inner = s.inner.lock().unwrap();
            inner.confirms.push(
                plan.as_ref()
                    .map(|p| {
                        vec![
                            (
                                "type".to_owned(),
                                p["type"].as_str().unwrap_or("").to_owned(),
                            ),
                            ("count".to_owned(), p["count"].to_string()),
                        ]
                    })
                    .unwrap_or_default(),
            );
            matches!(inner.intents.get(id), Some((true, _)))
        };
        if let Some(p) = &plan {
            // Only a plan of `available_plans` may be confirmed.
            if !enabled_here {
                return invalid("installments are not enabled for this PaymentIntent");
            }
            let mut current = fetch(&s, &headers, &format!("/v1/payment_intents/{id}")).await;
            let offered = {
                let inner = s.inner.lock().unwrap();
                patch(&inner, &mut current);
                current["payment_method_options"]["card"]["installments"]["available_plans"]
                    .as_array()
                    .is_some_and(|a| a.contains(p))
            };
            if !offered {
                return invalid("the plan is not one of available_plans");
            }
        }
    }

    let mut target = format!("{}{}", s.upstream, path);
    if let Some(q) = uri.query() {
        target = format!("{target}?{q}");
    }
    let mut req = s.http.request(method.clone(), target);
    if let Some(a) = headers.get("authorization") {
        req = req.header("authorization", a.clone());
    }
    if post {
        let form = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs.iter())
            .finish();
        req = req
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let mut v: Value = resp.json().await.unwrap_or(Value::Null);
    if (200..300).contains(&status) {
        let mut inner = s.inner.lock().unwrap();
        let inner = &mut *inner;
        match segments.as_slice() {
            ["v1", "payment_methods"] if post && number.as_deref() == Some(PAN_JP) => {
                if let Some(id) = v["id"].as_str() {
                    inner.eligible.insert(id.to_owned());
                }
            }
            ["v1", "payment_intents"] if post => {
                if let Some(id) = v["id"].as_str() {
                    inner.intents.insert(id.to_owned(), (enabled, None));
                }
            }
            _ => {}
        }
        if let (Some(u), true, Some(id)) = (&future_usage, post, v["id"].as_str()) {
            if v["object"] == "payment_intent" {
                inner.future_usage.insert(id.to_owned(), u.clone());
            }
        }
        if let Some(id) = &confirm_of {
            if let Some(e) = inner.intents.get_mut(id) {
                e.1 = plan.clone();
            }
        }
        if v["object"] == "payment_intent" {
            patch(inner, &mut v);
        }
    }
    attach_when_paid(&s, &headers, &v).await;
    (StatusCode::from_u16(status).unwrap(), Json(v)).into_response()
}

/// `setup_future_usage`: once the intent is paid, its method is attached to its customer.
async fn attach_when_paid(s: &Shared, headers: &HeaderMap, pi: &Value) {
    if pi["object"] != "payment_intent"
        || !matches!(
            pi["status"].as_str(),
            Some("requires_capture" | "succeeded")
        )
    {
        return;
    }
    let (Some(id), Some(pm), Some(customer)) = (
        pi["id"].as_str(),
        pm_of(pi),
        pi["customer"]
            .as_str()
            .or_else(|| pi["customer"]["id"].as_str()),
    ) else {
        return;
    };
    {
        let mut inner = s.inner.lock().unwrap();
        if !inner.future_usage.contains_key(id) || !inner.attached.insert(id.to_owned()) {
            return;
        }
    }
    let mut req = s
        .http
        .post(format!("{}/v1/payment_methods/{pm}/attach", s.upstream))
        .form(&[("customer", customer)]);
    if let Some(a) = headers.get("authorization") {
        req = req.header("authorization", a.clone());
    }
    let r = req.send().await.unwrap();
    assert!(r.status().is_success(), "attach {pm}: {}", r.status());
}

async fn fetch(s: &Shared, headers: &HeaderMap, path: &str) -> Value {
    let mut req = s.http.get(format!("{}{path}", s.upstream));
    if let Some(a) = headers.get("authorization") {
        req = req.header("authorization", a.clone());
    }
    req.send().await.unwrap().json().await.unwrap()
}
