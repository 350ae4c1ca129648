//! A KOMOJU-compatible HTTP server for the tests, built only from KOMOJU's public API reference
//! (each endpoint names the page it follows). It keeps payments in memory, answers on a loopback
//! port, and can send signed webhooks to our server as KOMOJU would.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use serde_json::{json, Value};

/// The secret key the fake accepts (HTTP Basic user name, no password).
pub const FAKE_SECRET_KEY: &str = "sk_live_komoju_fake_0000AbCd";

#[derive(Default)]
struct Inner {
    payments: HashMap<String, Value>,
    /// Idempotency-Key → payment id: a repeated create returns the first payment.
    idempotency: HashMap<String, String>,
    /// Every request received: "METHOD path".
    requests: Vec<String>,
    /// Secure tokens (cards): id → token (see the card section below).
    tokens: HashMap<String, Value>,
    next: u64,
    /// Faults of the next creates (bank-transfer section).
    faults: Vec<CreateFault>,
}

#[derive(Clone)]
pub struct KomojuFake {
    pub base: String,
    inner: Arc<Mutex<Inner>>,
    client: reqwest::Client,
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    // Error shape: docs.komoju.com/en/api/overview ("Response & Errors").
    (
        status,
        Json(json!({ "error": { "code": code, "message": message, "param": null } })),
    )
        .into_response()
}

/// HTTP Basic with the secret key as user name (doc.komoju.com "Authentication").
fn authorized(headers: &HeaderMap) -> bool {
    let Some(v) = headers.get("authorization").and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let Some(b64) = v.strip_prefix("Basic ") else {
        return false;
    };
    let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(b64) else {
        return false;
    };
    let text = String::from_utf8_lossy(&raw).into_owned();
    text.split_once(':').map(|(u, _)| u) == Some(FAKE_SECRET_KEY)
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// KOMOJU's deadline for a new konbini / Pay-easy payment: 23:59:59 JST three days on.
fn deadline() -> String {
    let jst = time::OffsetDateTime::now_utc().to_offset(time::macros::offset!(+9));
    let day = jst.date() + time::Duration::days(3);
    rfc3339(
        day.with_hms(23, 59, 59)
            .unwrap()
            .assume_offset(time::macros::offset!(+9)),
    )
}

fn digits(seed: u64, n: usize) -> String {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
            char::from(b'0' + ((x >> 33) % 10) as u8)
        })
        .collect()
}

const STORES: [&str; 8] = [
    "seven-eleven",
    "lawson",
    "family-mart",
    "ministop",
    "daily-yamazaki",
    "seicomart",
    "sunkus",
    "circle-k",
];

impl KomojuFake {
    pub async fn start() -> KomojuFake {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let fake = KomojuFake {
            base,
            inner: Arc::default(),
            client: reqwest::Client::new(),
        };
        let app = Router::new()
            .route("/api/v1/payments", post(create))
            .route("/api/v1/payments/{id}", get(show))
            .route("/api/v1/payments/{id}/cancel", post(cancel))
            .route("/api/v1/payments/{id}/refund", post(refund))
            .route("/api/v1/payments/{id}/capture", post(capture))
            .route("/api/v1/secure_tokens", post(create_secure_token))
            .route("/api/v1/secure_tokens/{id}", get(show_secure_token))
            .with_state(fake.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        fake
    }

    fn log(&self, what: String) {
        self.inner.lock().unwrap().requests.push(what);
    }

    /// Requests received so far ("METHOD path").
    pub fn requests(&self) -> Vec<String> {
        self.inner.lock().unwrap().requests.clone()
    }

    /// The Idempotency-Key a payment was created with.
    pub fn idempotency_key_of(&self, id: &str) -> Option<String> {
        let inner = self.inner.lock().unwrap();
        inner
            .idempotency
            .iter()
            .find(|(k, v)| *v == id && !k.starts_with("refund:"))
            .map(|(k, _)| k.clone())
    }

    /// The carrier's decision on its page: KOMOJU's payment becomes `status` (`captured`,
    /// `failed`, `cancelled`) and the shopper is sent back to the `return_url` we gave, with a
    /// parameter of KOMOJU's own appended (which we must ignore). Returns that URL.
    pub fn decide(&self, id: &str, status: &str) -> String {
        let p = self.set_status(id, status);
        let url = p["return_url"].as_str().expect("return_url").to_owned();
        format!("{url}&komoju_extra=1")
    }

    /// The return URL of a payment, as the shopper's browser would follow it.
    pub fn return_url(&self, id: &str) -> String {
        self.payment(id)["return_url"].as_str().unwrap().to_owned()
    }

    /// The last payment created, if any.
    pub fn last_payment_id(&self) -> Option<String> {
        let inner = self.inner.lock().unwrap();
        inner
            .payments
            .values()
            .max_by_key(|p| p["id"].as_str().unwrap_or("").to_owned())
            .and_then(|p| p["id"].as_str().map(str::to_owned))
    }

    pub fn payment(&self, id: &str) -> Value {
        self.inner.lock().unwrap().payments[id].clone()
    }

    /// Sets a payment's status (and its `captured_at` when captured), as KOMOJU would when the
    /// shopper pays, the deadline passes, or the merchant cancels in the dashboard.
    pub fn set_status(&self, id: &str, status: &str) -> Value {
        let mut inner = self.inner.lock().unwrap();
        let p = inner.payments.get_mut(id).expect("payment");
        p["status"] = json!(status);
        if status == "captured" {
            p["captured_at"] = json!(rfc3339(time::OffsetDateTime::now_utc()));
        }
        p.clone()
    }

    /// An event about a payment, as KOMOJU's webhooks send it (doc.komoju.com "Webhooks":
    /// `id`, `type`, `resource: "event"`, `data`, `created_at`).
    pub fn event(&self, kind: &str, payment: &Value) -> Value {
        let n = {
            let mut inner = self.inner.lock().unwrap();
            inner.next += 1;
            inner.next
        };
        json!({
            "id": format!("evt{n:022}"),
            "type": kind,
            "resource": "event",
            "data": payment,
            "created_at": rfc3339(time::OffsetDateTime::now_utc()),
        })
    }

    /// Delivers `body` to `url` with the headers KOMOJU sends (`X-Komoju-Signature`: hex
    /// HMAC-SHA256 of the raw body with the webhook secret; `X-Komoju-ID`; `X-Komoju-Event`).
    pub async fn deliver(&self, url: &str, secret: &str, body: &str) -> (u16, Value) {
        let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
        let sig = kakehashi::connectors::komoju::sign(secret, body.as_bytes());
        let r = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .header("user-agent", "Komoju-Webhook")
            .header(
                "x-komoju-id",
                format!("whd_{}", v["id"].as_str().unwrap_or("")),
            )
            .header("x-komoju-event", v["type"].as_str().unwrap_or(""))
            .header("x-komoju-signature", sig)
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }
}

/// `POST /api/v1/payments` — "Create a payment" (docs.komoju.com/en/api/resources/payments) with
/// the konbini and pay_easy `payment_details` of "Payment details"
/// (doc.komoju.com/docs/payment-details); `Idempotency-Key` makes a retried create return the
/// first payment (doc.komoju.com "Idempotent requests").
async fn create(State(f): State<KomojuFake>, headers: HeaderMap, body: Bytes) -> Response {
    f.log("POST /api/v1/payments".into());
    if !authorized(&headers) {
        return error(StatusCode::UNAUTHORIZED, "not_authorized", "bad API key");
    }
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if let Some(k) = &key {
        let inner = f.inner.lock().unwrap();
        if let Some(id) = inner.idempotency.get(k) {
            return Json(inner.payments[id].clone()).into_response();
        }
    }
    let fault = f.take_fault();
    match fault {
        Some(CreateFault::Down) => {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "service_unavailable",
                "try later",
            )
        }
        Some(CreateFault::Refuse) => {
            return error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "payment_method_not_enabled",
                "the method is not enabled for this merchant",
            )
        }
        _ => {}
    }
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, "bad_request", "body is not JSON");
    };
    let amount = req["amount"].as_i64().unwrap_or(0);
    if amount <= 0 || req["currency"].as_str() != Some("JPY") {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_parameter",
            "amount/currency",
        );
    }
    // A card payment with a secure token id as its `payment_details` (card section below).
    if let Some(token) = req["payment_details"].as_str() {
        return create_card_payment(&f, key, &req, token);
    }
    let d = &req["payment_details"];
    let email_ok = d["email"].as_str().is_some_and(|e| e.contains('@'));
    let n = {
        let mut inner = f.inner.lock().unwrap();
        inner.next += 1;
        inner.next
    };
    let id = format!("kmj{n:022}");
    let instructions = format!("{}/en/instructions/{id}", f.base);
    let details = match d["type"].as_str() {
        Some("konbini") => {
            let store = d["store"].as_str().unwrap_or("");
            if !STORES.contains(&store) || !email_ok {
                return error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "missing_parameter",
                    "store and email are required",
                );
            }
            // Seven-Eleven: a 払込票番号; Lawson/FamilyMart/Ministop: receipt + confirmation
            // code; Daily Yamazaki/Seicomart: a receipt number and no confirmation code.
            let (receipt, confirmation) = match store {
                "seven-eleven" => (digits(n, 13), Value::Null),
                "daily-yamazaki" | "seicomart" => (digits(n, 11), Value::Null),
                _ => (digits(n, 11), json!(digits(n + 7, 4))),
            };
            json!({
                "type": "konbini", "email": d["email"], "store": store,
                "confirmation_code": confirmation, "receipt": receipt,
                "instructions_url": instructions,
            })
        }
        Some("pay_easy") => {
            let required = [
                "phone",
                "family_name",
                "given_name",
                "family_name_kana",
                "given_name_kana",
            ];
            if !email_ok
                || required
                    .iter()
                    .any(|k| d[*k].as_str().is_none_or(str::is_empty))
            {
                return error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "missing_parameter",
                    "email, phone and names are required",
                );
            }
            json!({
                "type": "pay_easy", "email": d["email"], "bank_id": "58191",
                "customer_id": digits(n, 20), "confirmation_id": digits(n + 3, 6),
                "instructions_url": instructions,
            })
        }
        // Carrier billing: a redirect type; the answer is `pending` with the carrier's page in
        // `payment_details.redirect_url`, and the shopper comes back to `return_url`
        // (doc.komoju.com/docs/payment-details, redirect payment types).
        Some(t @ ("docomo" | "au" | "softbank")) => {
            if req["return_url"].as_str().is_none_or(str::is_empty) {
                return error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "missing_parameter",
                    "return_url is required",
                );
            }
            json!({ "type": t, "redirect_url": format!("{}/redirect/{id}", f.base) })
        }
        // Wallets: redirect types too, by their payment type slugs (ja.doc.komoju.com/docs/
        // supported-payment-methods; `rakutenpay`: docs.komoju.com/ja/hosted_page/legacy), with
        // the same `pending` answer and `redirect_url` (ja.doc.komoju.com/docs/payment-details).
        Some(t @ ("paypay" | "aupay" | "merpay" | "rakutenpay" | "paidy" | "linepay")) => {
            if req["return_url"].as_str().is_none_or(str::is_empty) {
                return error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "missing_parameter",
                    "return_url is required",
                );
            }
            json!({ "type": t, "redirect_url": format!("{}/redirect/{id}", f.base) })
        }
        Some("bank_transfer") => match bank_transfer_details(d, n, &instructions) {
            Some(details) => details,
            None => {
                return error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "missing_parameter",
                    "email, phone and names are required",
                )
            }
        },
        _ => {
            return error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_payment_type",
                "unsupported payment_details[type]",
            )
        }
    };
    let redirect = details["redirect_url"].is_string();
    let payment = json!({
        "id": id,
        "resource": "payment",
        "status": if redirect { "pending" } else { "authorized" },
        "return_url": req["return_url"],
        "amount": amount,
        "tax": 0,
        "customer": null,
        "payment_deadline": if redirect { Value::Null } else { json!(deadline()) },
        "payment_details": details,
        "payment_method_fee": 0,
        "total": amount,
        "currency": "JPY",
        "description": null,
        "captured_at": null,
        "external_order_num": req["external_order_num"],
        "metadata": {},
        "created_at": rfc3339(time::OffsetDateTime::now_utc()),
        "amount_refunded": 0,
        "locale": "ja",
        "refunds": [],
        "refund_requests": [],
    });
    let mut inner = f.inner.lock().unwrap();
    inner.payments.insert(id.clone(), payment.clone());
    if let Some(k) = key {
        inner.idempotency.insert(k, id);
    }
    if fault == Some(CreateFault::LoseAnswer) {
        // Created, but the answer never reaches the caller (a timeout, a dropped connection).
        return error(StatusCode::BAD_GATEWAY, "bad_gateway", "answer lost");
    }
    Json(payment).into_response()
}

/// `GET /api/v1/payments/{id}` — "Show a payment" (docs.komoju.com/en/api/resources/payments).
async fn show(State(f): State<KomojuFake>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    f.log(format!("GET /api/v1/payments/{id}"));
    if !authorized(&headers) {
        return error(StatusCode::UNAUTHORIZED, "not_authorized", "bad API key");
    }
    match f.inner.lock().unwrap().payments.get(&id) {
        Some(p) => Json(p.clone()).into_response(),
        None => error(StatusCode::NOT_FOUND, "not_found", "no such payment"),
    }
}

/// `POST /api/v1/payments/{id}/cancel` — "Cancel a payment": only a `pending` or `authorized`
/// payment can be cancelled (docs.komoju.com/en/api/resources).
async fn cancel(
    State(f): State<KomojuFake>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    f.log(format!("POST /api/v1/payments/{id}/cancel"));
    if !authorized(&headers) {
        return error(StatusCode::UNAUTHORIZED, "not_authorized", "bad API key");
    }
    let mut inner = f.inner.lock().unwrap();
    let Some(p) = inner.payments.get_mut(&id) else {
        return error(StatusCode::NOT_FOUND, "not_found", "no such payment");
    };
    if !matches!(p["status"].as_str(), Some("pending" | "authorized")) {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_payment_status",
            "only pending or authorized payments can be cancelled",
        );
    }
    p["status"] = json!("cancelled");
    Json(p.clone()).into_response()
}

/// `POST /api/v1/payments/{id}/refund` — "Refund a payment": refunds `amount` (the whole
/// payment when absent) of a `captured` payment; once all is refunded the payment is `refunded`
/// (ja.doc.komoju.com/reference/post_payments-id-refund; statuses: ja.doc.komoju.com/reference/
/// payments-2). A repeated request with the same Idempotency-Key answers as the first did.
async fn refund(
    State(f): State<KomojuFake>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    f.log(format!("POST /api/v1/payments/{id}/refund"));
    if !authorized(&headers) {
        return error(StatusCode::UNAUTHORIZED, "not_authorized", "bad API key");
    }
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(|k| format!("refund:{k}"));
    let req: Value = serde_json::from_slice(&body).unwrap_or(json!({}));
    let mut inner = f.inner.lock().unwrap();
    if let Some(k) = &key {
        if inner.idempotency.contains_key(k) {
            return Json(inner.payments[&id].clone()).into_response();
        }
    }
    let Some(p) = inner.payments.get_mut(&id) else {
        return error(StatusCode::NOT_FOUND, "not_found", "no such payment");
    };
    if p["status"].as_str() != Some("captured") {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_payment_status",
            "only captured payments can be refunded",
        );
    }
    let total = p["amount"].as_i64().unwrap_or(0);
    let already = p["amount_refunded"].as_i64().unwrap_or(0);
    let amount = req["amount"].as_i64().unwrap_or(total - already);
    if amount <= 0 || already + amount > total {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_parameter",
            "amount exceeds what can be refunded",
        );
    }
    p["amount_refunded"] = json!(already + amount);
    p["refunds"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "id": format!("ref_{id}_{already}"), "resource": "refund", "amount": amount, "currency": "JPY" }));
    if already + amount == total {
        p["status"] = json!("refunded");
    }
    let out = p.clone();
    if let Some(k) = key {
        inner.idempotency.insert(k, id);
    }
    Json(out).into_response()
}

// ---------------------------------------------------------------------------
// Bank transfer (銀行振込) and create faults
// ---------------------------------------------------------------------------

/// A fault the next create suffers, to test our write-before-call issue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CreateFault {
    /// KOMOJU is down: 503, nothing created.
    Down,
    /// KOMOJU refuses the request (422, e.g. a method not enabled on the account).
    Refuse,
    /// The payment is created (under its Idempotency-Key) but the answer is lost: 502.
    LoseAnswer,
}

impl KomojuFake {
    /// The next creates suffer these faults, in order.
    pub fn fail_next_creates(&self, faults: &[CreateFault]) {
        self.inner.lock().unwrap().faults.extend_from_slice(faults);
    }

    fn take_fault(&self) -> Option<CreateFault> {
        let mut inner = self.inner.lock().unwrap();
        (!inner.faults.is_empty()).then(|| inner.faults.remove(0))
    }

    /// How many payments exist (a retried create must not make a second one).
    pub fn payment_count(&self) -> usize {
        self.inner.lock().unwrap().payments.len()
    }
}

/// `payment_details` of type `bank_transfer` for `POST /api/v1/payments`: the shopper's e-mail,
/// phone and names (kanji and katakana) are required, as for `pay_easy` ("Payment details",
/// ja.doc.komoju.com/docs/payment-details: a bank transfer's contact details go in
/// `payment_details`; `bank_transfer` in the payment types of docs.komoju.com/en/api/resources/
/// payments). The answer's account fields (`bank_name`, `account_branch_name`, `account_type`,
/// `account_number`, `account_name`) are the ones our connector reads (docs/komoju.md §1 asks
/// operators to check them with a test account before going live).
/// `None` when a required detail is missing.
fn bank_transfer_details(d: &Value, n: u64, instructions: &str) -> Option<Value> {
    let required = [
        "email",
        "phone",
        "family_name",
        "given_name",
        "family_name_kana",
        "given_name_kana",
    ];
    if required
        .iter()
        .any(|k| d[*k].as_str().is_none_or(str::is_empty))
    {
        return None;
    }
    Some(json!({
        "type": "bank_transfer",
        "email": d["email"],
        "order_id": digits(n + 11, 8),
        "bank_name": "コモジュ銀行",
        "account_branch_name": format!("フェイク{}支店", digits(n + 5, 3)),
        "account_type": "普通",
        "account_number": digits(n + 9, 7),
        "account_name": "カ）コモジュフェイク",
        "instructions_url": instructions,
    }))
}

// ---------------------------------------------------------------------------------------------
// Cards, server to server, with 3-D Secure through secure tokens
// ---------------------------------------------------------------------------------------------

/// KOMOJU's test cards (ja.doc.komoju.com/docs/test-cards and, for 3-D Secure,
/// ja.doc.komoju.com/docs/3dセキュア3dsによる決済テスト), as the fake plays them.
pub mod test_cards {
    /// 3-D Secure succeeds on KOMOJU's page without a password; the payment is authorized.
    pub const SUCCESS: &str = "4100000000000100";
    /// 3-D Secure with a password on KOMOJU's page: [`PASSWORD_OK`] passes, [`PASSWORD_BAD`] fails.
    pub const CHALLENGE: &str = "4100000000005000";
    /// 3-D Secure fails once the shopper is back at `return_url`.
    pub const THREE_DS_FAILS: &str = "4100000000500000";
    /// 残高不足: authenticated, then the payment is declined (`insufficient_funds`).
    pub const INSUFFICIENT_FUNDS: &str = "4123111111111000";
    /// 期限切れのカード: declined (`card_expired`).
    pub const EXPIRED: &str = "4123111111111042";
    pub const PASSWORD_OK: &str = "123456";
    pub const PASSWORD_BAD: &str = "111111";
}

/// What a card does in the fake, decided from its number when the token is made; the number
/// itself is not kept.
fn card_scenario(number: &str) -> &'static str {
    match number {
        test_cards::CHALLENGE => "challenge",
        test_cards::THREE_DS_FAILS => "three_ds_fails",
        test_cards::INSUFFICIENT_FUNDS => "insufficient_funds",
        test_cards::EXPIRED => "card_expired",
        _ => "success",
    }
}

impl KomojuFake {
    /// The secure tokens made so far, oldest first.
    pub fn secure_tokens(&self) -> Vec<String> {
        let inner = self.inner.lock().unwrap();
        let mut ids: Vec<String> = inner.tokens.keys().cloned().collect();
        ids.sort();
        ids
    }

    pub fn secure_token(&self, id: &str) -> Value {
        self.inner.lock().unwrap().tokens[id].clone()
    }

    /// The shopper on KOMOJU's 3-D Secure page (`authentication_url`), typing `password` when
    /// the card asks for one: the token becomes `OK` or not, and the shopper is sent back to
    /// our `return_url` with KOMOJU's own parameter appended. Returns that URL.
    pub fn authenticate(&self, token: &str, password: Option<&str>) -> String {
        let mut inner = self.inner.lock().unwrap();
        let t = inner.tokens.get_mut(token).expect("secure token");
        let ok = match t["scenario"].as_str().unwrap() {
            "challenge" => password == Some(test_cards::PASSWORD_OK),
            "three_ds_fails" => false,
            _ => true,
        };
        t["verification_status"] = json!(if ok { "OK" } else { "ERRORED" });
        let url = t["return_url"].as_str().unwrap().to_owned();
        format!("{url}&secure_token={token}")
    }
}

fn public_token(t: &Value) -> Value {
    json!({
        "id": t["id"],
        "verification_status": t["verification_status"],
        "created_at": t["created_at"],
    })
}

/// `POST /api/v1/secure_tokens` — "Create Secure Tokens" (docs.komoju.com/en/api/resources/
/// secure_tokens/create; flow: docs.komoju.com/en/api/secure_tokens): `amount`, `currency`,
/// `return_url` and `credit_card` `payment_details`; answers `secure_token`,
/// `verification_status` `NEEDS_VERIFY` and the `authentication_url` to send the shopper to.
async fn create_secure_token(
    State(f): State<KomojuFake>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    f.log("POST /api/v1/secure_tokens".into());
    if !authorized(&headers) {
        return error(StatusCode::UNAUTHORIZED, "not_authorized", "bad API key");
    }
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, "bad_request", "body is not JSON");
    };
    let d = &req["payment_details"];
    let number = d["number"].as_str().unwrap_or("");
    let two_digits = |v: &Value| {
        v.as_str()
            .is_some_and(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
    };
    if req["amount"].as_i64().unwrap_or(0) <= 0
        || req["currency"].as_str() != Some("JPY")
        || req["return_url"].as_str().is_none_or(str::is_empty)
        || d["type"].as_str() != Some("credit_card")
        || number.len() < 14
        || !number.bytes().all(|b| b.is_ascii_digit())
        || !two_digits(&d["month"])
        || !two_digits(&d["year"])
        || !two_digits(&d["verification_value"])
    {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "missing_parameter",
            "amount, currency, return_url and credit_card details are required",
        );
    }
    let n = {
        let mut inner = f.inner.lock().unwrap();
        inner.next += 1;
        inner.next
    };
    let id = format!("tok{n:022}");
    let token = json!({
        "id": id,
        "verification_status": "NEEDS_VERIFY",
        "authentication_url": format!("{}/three_d_secure_service/offsite?token={id}", f.base),
        "return_url": req["return_url"],
        "amount": req["amount"],
        "scenario": card_scenario(number),
        "last_four_digits": &number[number.len() - 4..],
        "used": false,
        "created_at": rfc3339(time::OffsetDateTime::now_utc()),
    });
    f.inner
        .lock()
        .unwrap()
        .tokens
        .insert(id.clone(), token.clone());
    Json(json!({
        "secure_token": id,
        "verification_status": "NEEDS_VERIFY",
        "authentication_url": token["authentication_url"],
    }))
    .into_response()
}

/// `GET /api/v1/secure_tokens/{id}` — "Show Secure Tokens" (docs.komoju.com/en/api/resources/
/// secure_tokens/show): `id`, `verification_status`, `created_at`.
async fn show_secure_token(
    State(f): State<KomojuFake>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    f.log(format!("GET /api/v1/secure_tokens/{id}"));
    if !authorized(&headers) {
        return error(StatusCode::UNAUTHORIZED, "not_authorized", "bad API key");
    }
    match f.inner.lock().unwrap().tokens.get(&id) {
        Some(t) => Json(public_token(t)).into_response(),
        None => error(StatusCode::NOT_FOUND, "not_found", "no such secure token"),
    }
}

/// `POST /api/v1/payments` with a verified secure token id as `payment_details` ("Use the
/// Secure Token", docs.komoju.com/en/api/secure_tokens) and `capture: false` for two-step
/// capture (ja.doc.komoju.com/docs/creating-payments-directly): an `authorized` payment, or an
/// error object for a declined card (ja.doc.komoju.com/docs/errors: 402 `request_failed`
/// family; the codes are the test cards' scenarios). A token is used once.
fn create_card_payment(f: &KomojuFake, key: Option<String>, req: &Value, token: &str) -> Response {
    let mut inner = f.inner.lock().unwrap();
    let Some(t) = inner.tokens.get_mut(token) else {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_token",
            "no such secure token",
        );
    };
    if t["verification_status"] != "OK" || t["used"] == true {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_token",
            "the secure token is not verified or was used",
        );
    }
    let amount = req["amount"].as_i64().unwrap_or(0);
    if t["amount"].as_i64() != Some(amount) {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_parameter",
            "amount differs from the token's",
        );
    }
    t["used"] = json!(true);
    let scenario = t["scenario"].as_str().unwrap().to_owned();
    let last4 = t["last_four_digits"].clone();
    if matches!(scenario.as_str(), "insufficient_funds" | "card_expired") {
        return error(
            StatusCode::PAYMENT_REQUIRED,
            &scenario,
            "the card was declined",
        );
    }
    inner.next += 1;
    let id = format!("kmj{:022}", inner.next);
    let capture = req["capture"].as_bool().unwrap_or(true);
    let now = rfc3339(time::OffsetDateTime::now_utc());
    let payment = json!({
        "id": id,
        "resource": "payment",
        "status": if capture { "captured" } else { "authorized" },
        "amount": amount,
        "tax": 0,
        "total": amount,
        "currency": "JPY",
        "payment_details": { "type": "credit_card", "brand": "visa", "last_four_digits": last4 },
        "captured_at": if capture { json!(now) } else { Value::Null },
        "external_order_num": req["external_order_num"],
        "created_at": now,
        "amount_refunded": 0,
        "refunds": [],
        "return_url": Value::Null,
    });
    inner.payments.insert(id.clone(), payment.clone());
    if let Some(k) = key {
        inner.idempotency.insert(k, id);
    }
    Json(payment).into_response()
}

/// `POST /api/v1/payments/{id}/capture` — "Capture a payment": an `authorized` payment becomes
/// `captured` (ja.doc.komoju.com/reference/payments-2 statuses).
async fn capture(
    State(f): State<KomojuFake>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    f.log(format!("POST /api/v1/payments/{id}/capture"));
    if !authorized(&headers) {
        return error(StatusCode::UNAUTHORIZED, "not_authorized", "bad API key");
    }
    let mut inner = f.inner.lock().unwrap();
    let Some(p) = inner.payments.get_mut(&id) else {
        return error(StatusCode::NOT_FOUND, "not_found", "no such payment");
    };
    if p["status"].as_str() != Some("authorized") {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_payment_status",
            "only authorized payments can be captured",
        );
    }
    p["status"] = json!("captured");
    p["captured_at"] = json!(rfc3339(time::OffsetDateTime::now_utc()));
    Json(p.clone()).into_response()
}
