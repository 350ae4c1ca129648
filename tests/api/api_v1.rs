//! The `/api/v1` JSON API through real HTTP: authentication on every route, idempotency
//! (replay, reuse, in-flight), checkouts, payments (list, filters, pagination, actions),
//! events, and the OpenAPI document matching the router.

use serde_json::{json, Value};

use crate::card::card_page;
use crate::helpers::*;

const VISA: &str = "4111111111111111";

/// A checkout paid by card (authorized only, with manual capture): its payment id.
async fn card_payment(app: &TestApp, m: &TestMerchant, order: &str, amount: i64) -> String {
    let page = card_page(app, m, order, amount, UA_PC).await;
    let r = page.pay(app, UA_PC, VISA, "123", "lump").await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    app.scalar_str(&format!(
        "SELECT id FROM payments WHERE order_id = '{order}' AND merchant_id = '{}'",
        m.id
    ))
    .await
    .unwrap()
}

fn manual(n: &mut kakehashi::db::merchants::NewMerchant) {
    n.capture_mode = "manual".into();
}

fn checkout_body(order: &str) -> Value {
    json!({
        "order_id": order,
        "amount": 2500,
        "item_name": "API商品",
        "return_url": "https://shop.example/thanks",
        "expires_in": 3600
    })
}

/// Replaces `{…}` path parameters with `value`.
fn fill(path: &str, value: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(i) = rest.find('{') {
        out.push_str(&rest[..i]);
        let end = rest[i..].find('}').unwrap() + i;
        out.push_str(value);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

async fn every_route_refuses_missing_wrong_and_retired_keys(app: TestApp) {
    let m = app.merchant().await;
    let retired = kakehashi::api::keys::create(&app.db, &m.id, app.state.now_ms())
        .await
        .unwrap();
    kakehashi::api::keys::retire(&app.db, &m.id, &retired.0)
        .await
        .unwrap();
    let routes = kakehashi::api::route_list();
    assert!(routes.len() >= 14);
    for (method, path) in &routes {
        let path = fill(path, "x1");
        let body = json!({});
        for key in [
            None,
            Some("ak_test_wrong"),
            Some("not-even-a-key"),
            Some(retired.1.as_str()),
        ] {
            let r = app
                .api(method, &path, key, Some("idem-auth"), Some(&body))
                .await;
            assert_eq!(r.status, 401, "{method} {path} {key:?}: {}", r.json);
            assert_eq!(r.code(), "unauthorized", "{method} {path}");
            assert!(r.headers.contains_key("www-authenticate"));
        }
    }
    // A malformed Authorization scheme is the same 401.
    let r = app
        .client
        .get(format!("{}/api/v1/payments", app.base))
        .header("authorization", "Basic Zm9vOmJhcg==")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // Nothing was written by any refused request.
    assert_eq!(app.count("idempotency_keys").await, 0);
    assert_eq!(app.count("checkouts").await, 0);
}
both!(every_route_refuses_missing_wrong_and_retired_keys);

async fn other_merchants_resources_are_not_found(app: TestApp) {
    let rx = Receiver::start().await;
    let a = app
        .merchant_with(|n| {
            manual(n);
            n.callback_url = Some(rx.url.clone());
        })
        .await;
    let b = app.merchant().await;
    let (ka, kb) = (app.api_key(&a).await, app.api_key(&b).await);
    let pay = card_payment(&app, &a, "a-1", 1000).await;
    let evt = rx.wait_for("authorized event", |h| !h.is_empty()).await[0].json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let preq = app
        .api_post(
            "/api/v1/payment-requests",
            &ka,
            json!({"phone": "09012345678", "order_id": "a-2", "amount": 500, "item_name": "x"}),
        )
        .await;
    assert_eq!(preq.status, 201, "{}", preq.json);
    let preq = preq.json["id"].as_str().unwrap().to_owned();

    let own = app.api_get(&format!("/api/v1/payments/{pay}"), &ka).await;
    assert_eq!(own.status, 200);
    assert_eq!(own.json["status"], "authorized");
    for (method, path, body) in [
        ("GET", format!("/api/v1/payments/{pay}"), None),
        (
            "POST",
            format!("/api/v1/payments/{pay}/capture"),
            Some(json!({})),
        ),
        ("POST", format!("/api/v1/payments/{pay}/cancel"), None),
        (
            "POST",
            format!("/api/v1/payments/{pay}/refund"),
            Some(json!({"amount": 1})),
        ),
        ("POST", "/api/v1/checkouts/a-1/expire".to_string(), None),
        ("POST", format!("/api/v1/events/{evt}/redeliver"), None),
        ("GET", format!("/api/v1/payment-requests/{preq}"), None),
        (
            "POST",
            format!("/api/v1/payment-requests/{preq}/resend"),
            None,
        ),
        (
            "POST",
            format!("/api/v1/payment-requests/{preq}/cancel"),
            None,
        ),
    ] {
        let idem = kakehashi::util::random_id("i", 10);
        let r = app
            .api(method, &path, Some(&kb), Some(&idem), body.as_ref())
            .await;
        assert_eq!(r.status, 404, "{method} {path}: {}", r.json);
        assert!(
            !r.json.to_string().contains(&a.id),
            "leaks the merchant: {}",
            r.json
        );
    }
    // B's listings show none of A's payments or messages.
    let list = app.api_get("/api/v1/payments", &kb).await;
    assert_eq!(list.json["data"].as_array().unwrap().len(), 0);
    let msgs = app.api_get("/api/v1/sms/messages", &kb).await;
    assert_eq!(msgs.json["data"].as_array().unwrap().len(), 0);
    // And A's payment is untouched.
    let own = app.api_get(&format!("/api/v1/payments/{pay}"), &ka).await;
    assert_eq!(own.json["status"], "authorized");
    assert_eq!(own.json["captured_amount"], 0);
}
both!(other_merchants_resources_are_not_found);

async fn idempotency_replays_refuses_reuse_and_in_flight(app: TestApp) {
    let m = app.merchant_with(manual).await;
    let key = app.api_key(&m).await;
    let body = checkout_body("idem-1");
    let first = app
        .api(
            "POST",
            "/api/v1/checkouts",
            Some(&key),
            Some("k-1"),
            Some(&body),
        )
        .await;
    assert_eq!(first.status, 201, "{}", first.json);
    assert!(!first.headers.contains_key("idempotent-replayed"));
    let again = app
        .api(
            "POST",
            "/api/v1/checkouts",
            Some(&key),
            Some("k-1"),
            Some(&body),
        )
        .await;
    assert_eq!(again.status, 201);
    assert_eq!(again.json, first.json, "replayed byte for byte");
    assert_eq!(again.headers["idempotent-replayed"], "true");

    let other = app
        .api(
            "POST",
            "/api/v1/checkouts",
            Some(&key),
            Some("k-1"),
            Some(&checkout_body("idem-2")),
        )
        .await;
    assert_eq!(other.status, 422);
    assert_eq!(other.code(), "idempotency_key_reused");
    assert_eq!(app.count("checkouts").await, 1);

    // Keys are per merchant: another merchant may use the same key string.
    let m2 = app.merchant().await;
    let key2 = app.api_key(&m2).await;
    let r = app
        .api(
            "POST",
            "/api/v1/checkouts",
            Some(&key2),
            Some("k-1"),
            Some(&checkout_body("idem-1")),
        )
        .await;
    assert_eq!(r.status, 201);
    assert_ne!(r.json["checkout_url"], first.json["checkout_url"]);

    // Missing or malformed key.
    let r = app
        .api("POST", "/api/v1/checkouts", Some(&key), None, Some(&body))
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.code(), "idempotency_key_required");
    let r = app
        .api(
            "POST",
            "/api/v1/checkouts",
            Some(&key),
            Some(&"x".repeat(300)),
            Some(&body),
        )
        .await;
    assert_eq!(r.code(), "invalid_idempotency_key");

    // A request still in flight with the same key: 409, and nothing runs.
    let hash = kakehashi::api::request_hash("POST", "/api/v1/events/ping", b"");
    let now = kakehashi::util::now_ms();
    let mut tx = app.db.begin().await.unwrap();
    kakehashi::exec_tx!(&mut tx, c => sqlx::query(
        "INSERT INTO idempotency_keys (merchant_id, key, request_hash, status, created_at) VALUES ($1, 'busy', $2, 'in_progress', $3)",
    )
    .bind(&m.id)
    .bind(&hash)
    .bind(now)
    .execute(c)
    .await)
    .unwrap();
    tx.commit().await.unwrap();
    let r = app
        .api(
            "POST",
            "/api/v1/events/ping",
            Some(&key),
            Some("busy"),
            None,
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.json);
    assert_eq!(r.code(), "request_in_progress");
    assert_eq!(app.count("outbox").await, 0);

    // Actions replay too: one capture, however often it is retried.
    let pay = card_payment(&app, &m, "idem-pay", 3000).await;
    let cap = json!({"amount": 1000});
    let path = format!("/api/v1/payments/{pay}/capture");
    let c1 = app
        .api("POST", &path, Some(&key), Some("cap-1"), Some(&cap))
        .await;
    assert_eq!(c1.status, 200, "{}", c1.json);
    assert_eq!(c1.json["captured_amount"], 1000);
    let c2 = app
        .api("POST", &path, Some(&key), Some("cap-1"), Some(&cap))
        .await;
    assert_eq!(c2.json, c1.json);
    let captures: i64 = kakehashi::on_db!(&app.db, c => sqlx::query_scalar(
        "SELECT COUNT(*) FROM payment_events WHERE payment_id = $1 AND type = 'payment.captured'",
    ).bind(&pay).fetch_one(c).await)
    .unwrap();
    assert_eq!(captures, 1);
    // An error response is stored and replayed as well (same status).
    let e1 = app
        .api("POST", &path, Some(&key), Some("cap-2"), Some(&cap))
        .await;
    assert_eq!(e1.status, 409, "{}", e1.json);
    let e2 = app
        .api("POST", &path, Some(&key), Some("cap-2"), Some(&cap))
        .await;
    assert_eq!((e2.status, &e2.json), (409, &e1.json));
}
both!(idempotency_replays_refuses_reuse_and_in_flight);

async fn checkouts_are_validated_like_links_and_can_expire(app: TestApp) {
    let m = app.merchant().await;
    let key = app.api_key(&m).await;
    let r = app
        .api_post(
            "/api/v1/checkouts",
            &key,
            json!({
                "order_id": "co-1", "amount": 1500, "item_name": "抹茶",
                "return_url": "https://shop.example/thanks", "cancel_url": "https://shop.example/cart",
                "methods": ["card"], "lang": "en", "shopper_email": "a@example.jp"
            }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.json);
    assert_eq!(r.json["status"], "open");
    let url = r.json["checkout_url"].as_str().unwrap().to_owned();
    assert!(url.starts_with(&format!("{}/checkout?", app.base)) && url.contains("signature="));
    let page = app.get(&url, UA_PC).await;
    assert_eq!(page.status(), 200);
    let body = page.text().await.unwrap();
    assert!(body.contains("1,500"), "{body}");

    for (patch, status, code, field) in [
        (json!({"amount": 0}), 400, "invalid_amount", "amount"),
        (json!({"amount": -5}), 400, "invalid_amount", "amount"),
        (
            json!({"order_id": "bad id!"}),
            400,
            "invalid_field",
            "order_id",
        ),
        (
            json!({"return_url": "https://evil.example/"}),
            400,
            "return_url_not_allowed",
            "return_url",
        ),
        (
            json!({"cancel_url": "javascript:alert(1)"}),
            400,
            "return_url_not_allowed",
            "cancel_url",
        ),
        (
            json!({"methods": ["bitcoin"]}),
            400,
            "invalid_field",
            "methods",
        ),
        (json!({"lang": "fr"}), 400, "invalid_field", "lang"),
        (json!({"expires_in": 0}), 400, "invalid_field", "expires_in"),
        (json!({"expires_in": 40 * 86400}), 400, "expiry_too_far", ""),
        (
            json!({"shopper_phone": "abc"}),
            400,
            "invalid_field",
            "shopper_phone",
        ),
        (
            json!({"item_name": "a\u{0007}b"}),
            400,
            "invalid_field",
            "item_name",
        ),
        (json!({"amount": 3000}), 409, "order_conflict", ""),
    ] {
        let mut b = json!({
            "order_id": "co-1", "amount": 1500, "item_name": "抹茶",
            "return_url": "https://shop.example/thanks", "cancel_url": "https://shop.example/cart",
            "methods": ["card"], "lang": "en", "shopper_email": "a@example.jp"
        });
        for (k, v) in patch.as_object().unwrap() {
            b[k] = v.clone();
        }
        let r = app.api_post("/api/v1/checkouts", &key, b).await;
        assert_eq!((r.status, r.code()), (status, code), "{patch}: {}", r.json);
        if !field.is_empty() {
            assert_eq!(r.json["error"]["field"], field, "{patch}");
        }
    }
    // Unknown and missing JSON fields, and a body that is not JSON.
    let r = app
        .api_post(
            "/api/v1/checkouts",
            &key,
            json!({"order_id": "x", "amount": 1, "item_name": "x", "return_url": "https://shop.example/", "colour": "red"}),
        )
        .await;
    assert_eq!((r.status, r.code()), (400, "invalid_json"));
    assert!(r.json["error"]["message"]
        .as_str()
        .unwrap()
        .contains("colour"));
    let r = app
        .api_post("/api/v1/checkouts", &key, json!({"order_id": "x"}))
        .await;
    assert_eq!((r.status, r.code()), (400, "invalid_json"));
    assert_eq!(app.count("checkouts").await, 1, "refusals write nothing");

    // Expire: the link then shows the checkout closed; expiring again is fine.
    let r = app
        .api_post("/api/v1/checkouts/co-1/expire", &key, json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.json);
    assert_eq!(r.json["status"], "expired");
    let body = app.get(&url, UA_PC).await.text().await.unwrap();
    assert!(body.contains("This checkout is closed."), "{body}");
    assert!(!body.contains("name=\"method\""));
    let r = app
        .api_post("/api/v1/checkouts/co-1/expire", &key, json!({}))
        .await;
    assert_eq!(r.status, 200);
    let r = app
        .api_post("/api/v1/checkouts/nope/expire", &key, json!({}))
        .await;
    assert_eq!((r.status, r.code()), (404, "checkout_not_found"));

    // A checkout with a payment cannot expire.
    card_payment(&app, &m, "co-paid", 800).await;
    let r = app
        .api_post("/api/v1/checkouts/co-paid/expire", &key, json!({}))
        .await;
    assert_eq!((r.status, r.code()), (409, "payment_exists"));

    // A carrier attempt the shopper backed out of does not hold the checkout (the same rule as
    // the one-live-payment index), so the checkout can still be expired.
    let r = app
        .api_post(
            "/api/v1/checkouts",
            &key,
            json!({"order_id": "co-backed-out", "amount": 500, "item_name": "x",
                   "return_url": "https://shop.example/done"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.json);
    let co = kakehashi::db::checkouts::find_by_order(&app.db, &m.id, "co-backed-out")
        .await
        .unwrap()
        .unwrap();
    let mut tx = app.db.begin().await.unwrap();
    kakehashi::db::payments::create(
        &mut tx,
        &kakehashi::db::payments::NewPayment {
            merchant_id: &m.id,
            checkout_id: &co.id,
            order_id: "co-backed-out",
            method: kakehashi::domain::Method::Au,
            institution: Some("au"),
            status: kakehashi::domain::carrier::CarrierStatus::Cancelled.into(),
            amount: 500,
            fee: 0,
            deadline_at: None,
            details: json!({}),
            connector: &kakehashi::domain::processor::ConnectorId::Sandbox,
        },
        "test",
        app.state.now_ms(),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let r = app
        .api_post("/api/v1/checkouts/co-backed-out/expire", &key, json!({}))
        .await;
    assert_eq!(
        (r.status, r.json["status"].as_str()),
        (200, Some("expired")),
        "{}",
        r.json
    );
}
both!(checkouts_are_validated_like_links_and_can_expire);

async fn payments_list_filters_and_pages(app: TestApp) {
    let m = app.merchant_with(manual).await;
    let key = app.api_key(&m).await;
    let mut ids = Vec::new();
    for (i, order) in ["l-1", "l-2", "l-3"].iter().enumerate() {
        ids.push(card_payment(&app, &m, order, 1000 + i as i64).await);
        // Distinct creation times make the expected order unambiguous.
        app.clock.advance(std::time::Duration::from_secs(1));
    }
    let r = app
        .api_post(
            &format!("/api/v1/payments/{}/capture", ids[1]),
            &key,
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.json);

    let all = app.api_get("/api/v1/payments", &key).await;
    let got: Vec<&str> = all.json["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(got, vec![&ids[2], &ids[1], &ids[0]], "newest first");
    assert_eq!(all.json["has_more"], false);

    let p1 = app.api_get("/api/v1/payments?limit=2", &key).await;
    assert_eq!(p1.json["data"].as_array().unwrap().len(), 2);
    assert_eq!(p1.json["has_more"], true);
    let last = p1.json["data"][1]["id"].as_str().unwrap();
    let p2 = app
        .api_get(
            &format!("/api/v1/payments?limit=2&starting_after={last}"),
            &key,
        )
        .await;
    assert_eq!(p2.json["data"].as_array().unwrap().len(), 1);
    assert_eq!(p2.json["data"][0]["id"], ids[0].as_str());
    assert_eq!(p2.json["has_more"], false);

    let count = |q: &'static str| {
        let (app, key) = (&app, &key);
        async move {
            let r = app.api_get(&format!("/api/v1/payments?{q}"), key).await;
            assert_eq!(r.status, 200, "{q}: {}", r.json);
            r.json["data"].as_array().unwrap().len()
        }
    };
    assert_eq!(count("order_id=l-2").await, 1);
    assert_eq!(count("status=captured").await, 1);
    assert_eq!(count("status=authorized").await, 2);
    assert_eq!(count("method=card").await, 3);
    assert_eq!(count("method=konbini").await, 0);
    assert_eq!(count("created_from=4000000000").await, 0);
    assert_eq!(count("created_to=4000000000&created_from=1").await, 3);
    assert_eq!(count("created_to=1").await, 0);
    assert_eq!(count("order_id=l-2&status=authorized").await, 0);

    let one = app
        .api_get(&format!("/api/v1/payments/{}", ids[1]), &key)
        .await;
    assert_eq!(one.json["status"], "captured");
    assert_eq!(one.json["status_label_ja"], "売上済");
    assert_eq!(one.json["order_id"], "l-2");
    assert_eq!(one.json["details"]["last4"], "1111");
    assert!(!one.json.to_string().contains(VISA));

    for (q, code) in [
        ("limit=101", "invalid_parameter"),
        ("limit=0", "invalid_parameter"),
        ("limit=abc", "invalid_parameter"),
        ("status=a'b", "invalid_parameter"),
        ("starting_after=pay_unknown", "invalid_parameter"),
        ("bogus=1", "invalid_parameter"),
    ] {
        let r = app.api_get(&format!("/api/v1/payments?{q}"), &key).await;
        assert_eq!((r.status, r.code()), (400, code), "{q}");
    }
    let r = app.api_get("/api/v1/payments/pay_unknown", &key).await;
    assert_eq!((r.status, r.code()), (404, "payment_not_found"));
}
both!(payments_list_filters_and_pages);

async fn capture_refund_cancel_through_the_api(app: TestApp) {
    let rx = Receiver::start().await;
    let m = app
        .merchant_with(|n| {
            manual(n);
            n.callback_url = Some(rx.url.clone());
        })
        .await;
    let key = app.api_key(&m).await;
    let p = card_payment(&app, &m, "act-1", 5000).await;
    let base = format!("/api/v1/payments/{p}");

    let r = app
        .api_post(&format!("{base}/refund"), &key, json!({"amount": 100}))
        .await;
    assert_eq!(r.status, 409, "refund before capture: {}", r.json);
    let r = app
        .api_post(&format!("{base}/capture"), &key, json!({"amount": 6000}))
        .await;
    assert_eq!(r.status, 409, "over-capture: {}", r.json);
    let r = app
        .api_post(&format!("{base}/capture"), &key, json!({"amount": 4000}))
        .await;
    assert_eq!(r.status, 200, "{}", r.json);
    assert_eq!(
        (&r.json["status"], &r.json["captured_amount"]),
        (&json!("captured"), &json!(4000))
    );
    let r = app
        .api_post(&format!("{base}/refund"), &key, json!({}))
        .await;
    assert_eq!((r.status, r.code()), (400, "invalid_json"), "amount needed");
    let r = app
        .api_post(&format!("{base}/refund"), &key, json!({"amount": 1500}))
        .await;
    assert_eq!(r.status, 200, "{}", r.json);
    assert_eq!(r.json["refunded_amount"], 1500);

    let q = card_payment(&app, &m, "act-2", 700).await;
    let r = app
        .api(
            "POST",
            &format!("/api/v1/payments/{q}/cancel"),
            Some(&key),
            Some("c-1"),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.json);
    assert_eq!(r.json["status"], "cancelled");

    // Each action reached the merchant as a notification, with the API as the actor.
    let hits = rx
        .wait_for("captured, refunded, cancelled", |h| {
            ["payment.captured", "payment.refunded", "payment.cancelled"]
                .iter()
                .all(|t| h.iter().any(|x| x.json()["type"] == *t))
        })
        .await;
    assert!(hits.len() >= 5);
    let actors: Vec<String> = kakehashi::on_db!(&app.db, c => sqlx::query_scalar(
        "SELECT actor FROM payment_events WHERE type IN ('payment.captured', 'payment.refunded', 'payment.cancelled')",
    ).fetch_all(c).await)
    .unwrap();
    assert_eq!(actors, vec!["api", "api", "api"]);
}
both!(capture_refund_cancel_through_the_api);

async fn events_ping_and_redeliver(app: TestApp) {
    let rx = Receiver::start().await;
    let m = app
        .merchant_with(|n| n.callback_url = Some(rx.url.clone()))
        .await;
    let key = app.api_key(&m).await;
    let r = app
        .api("POST", "/api/v1/events/ping", Some(&key), Some("p-1"), None)
        .await;
    assert_eq!(r.status, 202, "{}", r.json);
    let id = r.json["id"].as_str().unwrap().to_owned();
    let hits = rx.wait_for("ping", |h| h.len() == 1).await;
    assert_eq!(hits[0].json()["type"], "ping");
    assert_eq!(hits[0].header("webhook-id"), id);

    let r = app
        .api_post(&format!("/api/v1/events/{id}/redeliver"), &key, json!({}))
        .await;
    assert_eq!(r.status, 202, "{}", r.json);
    let hits = rx.wait_for("redelivered ping", |h| h.len() == 2).await;
    assert_eq!(hits[1].header("webhook-id"), id, "same event id");

    let r = app
        .api_post("/api/v1/events/evt_unknown/redeliver", &key, json!({}))
        .await;
    assert_eq!((r.status, r.code()), (404, "event_not_found"));
}
both!(events_ping_and_redeliver);

async fn openapi_document_matches_the_router(app: TestApp) {
    let r = app.get("/api/openapi.json", UA_PC).await;
    assert_eq!(r.status(), 200);
    let doc: Value = r.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    let routes = kakehashi::api::route_list();
    for (method, path) in &routes {
        let op = &paths
            .get(path)
            .unwrap_or_else(|| panic!("{path} missing from the OpenAPI document"))
            [method.to_lowercase()];
        assert!(op.is_object(), "{method} {path} not documented");
        assert_eq!(
            op["security"][0]["api_key"],
            json!([]),
            "{method} {path} security"
        );
        if method == "POST" {
            let params = op["parameters"].as_array().unwrap();
            assert!(
                params.iter().any(|p| p["name"] == "Idempotency-Key"),
                "{method} {path} lacks Idempotency-Key"
            );
        }
    }
    // And nothing is documented that the router does not serve.
    let mut documented = 0;
    for (path, item) in paths {
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_some() {
                documented += 1;
                assert!(
                    routes
                        .iter()
                        .any(|(m, p)| p == path && m.to_lowercase() == method),
                    "{method} {path} documented but not routed"
                );
            }
        }
    }
    assert_eq!(documented, routes.len());
    assert_eq!(
        doc["components"]["securitySchemes"]["api_key"]["scheme"],
        "bearer"
    );
    assert!(doc["components"]["schemas"]["CreateCheckout"].is_object());
}
both!(openapi_document_matches_the_router);

/// The document is a valid OpenAPI 3.1 document: checked against the OpenAPI Initiative's own
/// JSON Schema (tests/schemas), which also proves it catches a broken one.
async fn openapi_document_is_valid_openapi_3_1(app: TestApp) {
    let mut doc: serde_json::Value = app
        .get("/api/openapi.json", UA_PC)
        .await
        .json()
        .await
        .unwrap();
    let schema: serde_json::Value =
        serde_json::from_str(include_str!("../schemas/openapi-3.1.schema.json")).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&doc)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    // An info object without its required title is refused: the check has teeth.
    doc["info"].as_object_mut().unwrap().remove("title");
    assert!(!validator.is_valid(&doc));
}
both!(openapi_document_is_valid_openapi_3_1);
