//! KOMOJU's redirect-type payments, shared by carrier billing (`carrier.rs`) and wallets
//! (`wallet.rs`): the create call with our signed return URL, the checks its answer must pass,
//! and what a refusal becomes. The types differ only in `payment_details[type]` and in the
//! field our signed return names them by.

use serde_json::json;

use super::{ApiError, KomojuApi, REJECTED};
use crate::connectors::error::ConnectorError;
use crate::connectors::signed_return::{append_query, signed_query, TS_FIELD};

/// One redirect payment to create.
pub(super) struct NewPayment<'a> {
    /// Ours: `external_order_num`, the `Idempotency-Key` and a field of the signed return.
    pub payment_id: &'a str,
    pub amount: i64,
    /// The shopper's way back (without a query: ours is appended, signed).
    pub return_url: &'a str,
    /// The signed return's field naming what is paid with, and its value (`carrier`, `docomo`).
    pub paid_with: (&'static str, &'a str),
    /// KOMOJU's `payment_details[type]`.
    pub komoju_type: &'static str,
}

/// A created payment waiting for the shopper at `redirect_url`.
pub(super) struct Created {
    pub id: String,
    pub redirect_url: String,
}

/// Creates the payment (`POST /api/v1/payments`) with our return URL signed with `return_key`,
/// and accepts KOMOJU's answer only if it is that payment: our amount and type, `pending`,
/// with a redirect page we may send the shopper to. Anything else is refused, never guessed at.
pub(super) async fn create(
    api: &KomojuApi,
    key: &str,
    return_key: &[u8],
    p: &NewPayment<'_>,
    kind: &str,
) -> Result<Created, ConnectorError> {
    let amount = p.amount.to_string();
    let ts = crate::util::now_ms().to_string();
    let query = signed_query(
        return_key,
        &[
            ("payment_id", p.payment_id),
            p.paid_with,
            ("amount", &amount),
            (TS_FIELD, &ts),
        ],
    );
    let body = json!({
        "amount": p.amount,
        "currency": "JPY",
        "external_order_num": p.payment_id,
        "return_url": append_query(p.return_url, &query),
        "payment_details": { "type": p.komoju_type },
    });
    let answer = api
        .call(
            key,
            reqwest::Method::POST,
            "/api/v1/payments",
            Some(p.payment_id),
            Some(&body),
        )
        .await
        .map_err(|e| refused(e, kind))?;
    let bad = |what: &str| ConnectorError::Unavailable(format!("komoju answer: {what}"));
    let id = answer["id"]
        .as_str()
        .filter(|s| !s.is_empty() && s.len() <= 64)
        .ok_or_else(|| bad("no payment id"))?;
    if answer["amount"].as_i64() != Some(p.amount)
        || answer["payment_details"]["type"].as_str() != Some(p.komoju_type)
    {
        return Err(bad("another amount or type"));
    }
    if answer["status"].as_str() != Some("pending") {
        return Err(bad("payment is not waiting for the shopper"));
    }
    let redirect_url = answer["payment_details"]["redirect_url"]
        .as_str()
        .filter(|u| redirect_ok(api, u))
        .ok_or_else(|| bad("no usable redirect_url"))?;
    Ok(Created {
        id: id.to_owned(),
        redirect_url: redirect_url.to_owned(),
    })
}

/// A failed call as the connector's error: unavailable stays retryable; a refusal is logged
/// with KOMOJU's code (`kind`: "carrier", "wallet") and reported as `komoju_rejected`.
pub(super) fn refused(e: ApiError, kind: &str) -> ConnectorError {
    match e {
        ApiError::Unavailable(m) => ConnectorError::Unavailable(m),
        ApiError::Refused { status, code } => {
            tracing::warn!(status, code = %code, "komoju refused a {kind} request");
            ConnectorError::InvalidRequest(REJECTED)
        }
    }
}

/// The redirect page of a created payment: https, or the configured API host (a local fake).
fn redirect_ok(api: &KomojuApi, url: &str) -> bool {
    url.len() <= 2048
        && (url.starts_with("https://") || url.starts_with(&format!("{}/", api.base)))
        && !url
            .chars()
            .any(|c| c.is_whitespace() || c == '"' || c == '<')
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};

    use axum::http::{HeaderMap, StatusCode};
    use serde_json::Value;

    use super::*;
    use crate::connectors::signed_return::{required, verify_signed_params};

    type Seen = Arc<Mutex<Vec<(String, Value)>>>;
    type Replies = Arc<Mutex<VecDeque<(u16, Value)>>>;

    /// KOMOJU on loopback: answers `POST /api/v1/payments` with the queued replies in turn and
    /// records each request's idempotency key and body.
    async fn komoju() -> (String, Seen, Replies) {
        let seen: Seen = Arc::default();
        let replies: Replies = Arc::default();
        let (s, r) = (seen.clone(), replies.clone());
        let app = axum::Router::new().route(
            "/api/v1/payments",
            axum::routing::post(move |h: HeaderMap, axum::Json(body): axum::Json<Value>| {
                let (s, r) = (s.clone(), r.clone());
                async move {
                    let key = h["idempotency-key"].to_str().unwrap().to_owned();
                    s.lock().unwrap().push((key, body));
                    let (status, reply) = r.lock().unwrap().pop_front().unwrap();
                    (StatusCode::from_u16(status).unwrap(), axum::Json(reply))
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (base, seen, replies)
    }

    fn answer(amount: i64, kind: &str, status: &str, redirect: &str) -> Value {
        json!({"id": "komoju_pay_1", "amount": amount, "status": status,
            "payment_details": {"type": kind, "redirect_url": redirect}})
    }

    #[tokio::test]
    async fn only_the_payment_asked_for_is_accepted() {
        let (base, seen, replies) = komoju().await;
        let page = format!("{base}/paypay/page");
        replies.lock().unwrap().extend([
            (200, answer(1200, "paypay", "pending", &page)),
            (200, answer(1300, "paypay", "pending", &page)),
            (200, answer(1200, "merpay", "pending", &page)),
            (200, answer(1200, "paypay", "captured", &page)),
            (
                200,
                answer(1200, "paypay", "pending", "http://elsewhere.test/p"),
            ),
            (
                200,
                answer(1200, "paypay", "pending", &format!("{page}\" onload=x")),
            ),
            (200, json!({"amount": 1200, "status": "pending"})),
            (422, json!({"error": {"code": "bad_request"}})),
            (503, json!({})),
        ]);
        let api = KomojuApi::new(&base, true).unwrap();
        let p = NewPayment {
            payment_id: "pay_1",
            amount: 1200,
            return_url: "https://pay.example.jp/pay/t/wallet/return/pay_1",
            paid_with: ("wallet", "paypay"),
            komoju_type: "paypay",
        };
        let created = create(&api, "sk", b"return-key", &p, "wallet")
            .await
            .unwrap();
        assert_eq!(created.id, "komoju_pay_1");
        assert_eq!(created.redirect_url, page);
        let mut codes = Vec::new();
        for _ in 0..8 {
            let e = create(&api, "sk", b"return-key", &p, "wallet").await;
            codes.push(e.err().unwrap().code());
        }
        // Another amount, another type, not pending, a page elsewhere over http, a page with
        // markup in it, no id: unusable answers; then KOMOJU's refusal, then an outage.
        let unusable = "unavailable";
        assert_eq!(
            codes,
            [
                unusable,
                unusable,
                unusable,
                unusable,
                unusable,
                unusable,
                REJECTED,
                "unavailable"
            ]
        );
        let seen = seen.lock().unwrap();
        let (key, body) = &seen[0];
        assert_eq!(key, "pay_1", "our payment id is the idempotency key");
        assert_eq!(body["external_order_num"], "pay_1");
        assert_eq!(body["amount"], 1200);
        assert_eq!(body["payment_details"]["type"], "paypay");
        // The way back carries our fields, signed with the return key.
        let url = body["return_url"].as_str().unwrap();
        let (path, query) = url.split_once('?').unwrap();
        assert_eq!(path, p.return_url);
        let params: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        let now = crate::util::now_ms();
        let f = verify_signed_params(b"return-key", &params, now, 60_000).unwrap();
        assert_eq!(required(&f, "wallet").unwrap(), "paypay");
        assert_eq!(required(&f, "payment_id").unwrap(), "pay_1");
        assert!(verify_signed_params(b"other-key", &params, now, 60_000).is_err());
    }
}
