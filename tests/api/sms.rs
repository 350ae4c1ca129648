//! SMS payment requests through real HTTP: the sandbox receives the link and the link leads to
//! a payable checkout; cancelled and expired links; the HTTP gateway gets the configured
//! template; the per-merchant rate limit; phone normalisation; the 70-character limit.

use serde_json::{json, Value};

use crate::card::CardPage;
use crate::helpers::*;

fn request(order: &str, phone: &str) -> Value {
    json!({ "phone": phone, "order_id": order, "amount": 3300, "item_name": "修理代金" })
}

/// The URL at the end of an SMS text.
fn url_in(text: &str) -> String {
    text.rsplit(' ').next().unwrap().to_owned()
}

fn units(text: &str) -> usize {
    text.encode_utf16().count()
}

/// From a selector page to the card form, like a shopper choosing クレジットカード.
async fn choose_card(app: &TestApp, selector: &str, ua: &str) -> CardPage {
    let csrf = hidden(selector, "csrf");
    let r = app
        .post_form(
            &action(selector),
            ua,
            &[("csrf", &csrf), ("method", "card")],
        )
        .await;
    assert_eq!(r.status(), 303);
    let base = r.headers()["location"]
        .to_str()
        .unwrap()
        .trim_end_matches("/card")
        .to_owned();
    let form = app
        .get(&format!("{base}/card"), ua)
        .await
        .text()
        .await
        .unwrap();
    CardPage {
        csrf: hidden(&form, "csrf"),
        base,
    }
}

async fn sandbox_sms_link_leads_to_a_paid_checkout(app: TestApp) {
    let rx = Receiver::start().await;
    let m = app
        .merchant_with(|n| n.callback_url = Some(rx.url.clone()))
        .await;
    let key = app.api_key(&m).await;
    let r = app
        .api_post(
            "/api/v1/payment-requests",
            &key,
            json!({ "phone": "+81 90-1234-5678", "order_id": "sms-1", "amount": 3300,
                    "item_name": "修理代金", "expires_in": 7 * 86400 }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.json);
    assert_eq!(r.json["phone"], "09012345678");
    assert_eq!(r.json["status"], "open");
    let msg = &r.json["messages"][0];
    assert_eq!(
        (&msg["status"], &msg["provider"], &msg["to"]),
        (&json!("sent"), &json!("sandbox"), &json!("09012345678"))
    );
    assert!(msg["provider_message_id"]
        .as_str()
        .unwrap()
        .starts_with("sbx_"));

    // The sandbox shows the message; its URL is the short link.
    let sandbox = app.api_get("/api/v1/sms/messages", &key).await;
    assert_eq!(sandbox.status, 200);
    let text = sandbox.json["data"][0]["text"].as_str().unwrap().to_owned();
    assert!(units(&text) <= 70, "{text}");
    assert_eq!(
        text,
        format!(
            "テスト商店: 3,300円のお支払いはこちら {}",
            r.json["url"].as_str().unwrap()
        )
    );
    let short = url_in(&text);
    let code = short.rsplit('/').next().unwrap();
    assert_eq!(code.len(), 10);
    assert!(short.starts_with(&format!("{}/s/", app.base)));

    // Short link → signed checkout link → selector → card → paid.
    let r = app.get(&short, UA_IPHONE).await;
    assert_eq!(r.status(), 303);
    let link = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(link.starts_with("/checkout?") && link.contains("signature="));
    assert!(link.contains("order_id=sms-1"));
    let page = app.get(&link, UA_IPHONE).await;
    assert_eq!(page.status(), 200);
    let selector = page.text().await.unwrap();
    assert!(selector.contains("3,300"), "{selector}");
    let card = choose_card(&app, &selector, UA_IPHONE).await;
    let r = card
        .pay(&app, UA_IPHONE, "4111111111111111", "123", "lump")
        .await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    let result = card.result(&app, UA_IPHONE).await;
    assert!(result.contains("お支払いが完了しました"), "{result}");

    // The merchant is notified, and the request reads as paid.
    let hits = rx
        .wait_for("captured notification", |h| {
            h.iter().any(|x| x.json()["type"] == "payment.captured")
        })
        .await;
    let captured = hits
        .iter()
        .find(|x| x.json()["type"] == "payment.captured")
        .unwrap()
        .json();
    assert_eq!(captured["data"]["order_id"], "sms-1");
    assert_eq!(captured["data"]["amount"], 3300);
    let id = app
        .scalar_str("SELECT id FROM payment_requests")
        .await
        .unwrap();
    let got = app
        .api_get(&format!("/api/v1/payment-requests/{id}"), &key)
        .await;
    assert_eq!(got.json["status"], "paid");
    assert_eq!(got.json["messages"].as_array().unwrap().len(), 1);

    // The short link still works and shows the order as paid; resend and cancel refuse.
    let again = app.get(&short, UA_PC).await;
    assert_eq!(again.status(), 303);
    let closed = app
        .get(again.headers()["location"].to_str().unwrap(), UA_PC)
        .await
        .text()
        .await
        .unwrap();
    assert!(closed.contains("お支払いは完了しています"), "{closed}");
    let r = app
        .api_post(
            &format!("/api/v1/payment-requests/{id}/resend"),
            &key,
            json!({}),
        )
        .await;
    assert_eq!((r.status, r.code()), (409, "payment_request_not_open"));
    let r = app
        .api_post(
            &format!("/api/v1/payment-requests/{id}/cancel"),
            &key,
            json!({}),
        )
        .await;
    assert_eq!((r.status, r.code()), (409, "payment_exists"));
}
both!(sandbox_sms_link_leads_to_a_paid_checkout);

async fn cancelled_expired_and_unknown_short_links(app: TestApp) {
    let m = app.merchant().await;
    let key = app.api_key(&m).await;
    let a = app
        .api_post(
            "/api/v1/payment-requests",
            &key,
            request("sms-c", "09011112222"),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.json);
    let (id, short) = (
        a.json["id"].as_str().unwrap().to_owned(),
        a.json["url"].as_str().unwrap().to_owned(),
    );
    // Resend: a second message with the same link.
    let r = app
        .api_post(
            &format!("/api/v1/payment-requests/{id}/resend"),
            &key,
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.json);
    let msgs = r.json["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[0]["text"], msgs[1]["text"]);

    // Opened once before the cancel: that checkout link closes too.
    let link = app.get(&short, UA_PC).await.headers()["location"]
        .to_str()
        .unwrap()
        .to_owned();
    let r = app
        .api_post(
            &format!("/api/v1/payment-requests/{id}/cancel"),
            &key,
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.json);
    assert_eq!(r.json["status"], "cancelled");
    for ua in [UA_PC, UA_IPHONE, UA_DOCOMO] {
        let r = app.get(&short, ua).await;
        assert_eq!(r.status(), 410, "{ua}");
        let fp = ua == UA_DOCOMO;
        let bytes = r.bytes().await.unwrap();
        let enc = if fp {
            encoding_rs::SHIFT_JIS
        } else {
            encoding_rs::UTF_8
        };
        let body = enc.decode(&bytes).0.into_owned();
        assert_eq!(error_code(&body), "link_expired", "{ua}: {body}");
        assert_eq!(body.contains("layout-"), !fp, "device-appropriate page");
    }
    let closed = app.get(&link, UA_PC).await.text().await.unwrap();
    assert!(closed.contains("このお支払いは終了しています"), "{closed}");
    let r = app
        .api_post(
            &format!("/api/v1/payment-requests/{id}/resend"),
            &key,
            json!({}),
        )
        .await;
    assert_eq!((r.status, r.code()), (409, "payment_request_not_open"));

    // Expired by time.
    let b = app
        .api_post(
            "/api/v1/payment-requests",
            &key,
            request("sms-e", "08011112222"),
        )
        .await;
    let b_id = b.json["id"].as_str().unwrap().to_owned();
    let mut tx = app.db.begin().await.unwrap();
    kakehashi::exec_tx!(&mut tx, c => sqlx::query("UPDATE payment_requests SET expires_at = 1000 WHERE id = $1")
        .bind(&b_id).execute(c).await)
    .unwrap();
    tx.commit().await.unwrap();
    let r = app.get(b.json["url"].as_str().unwrap(), UA_ANDROID).await;
    assert_eq!(r.status(), 410);
    let got = app
        .api_get(&format!("/api/v1/payment-requests/{b_id}"), &key)
        .await;
    assert_eq!(got.json["status"], "expired");

    // Unknown or malformed codes.
    for code in ["abcdefghjk", "short", "ABCDEFGHJK", "abcdefghjk0"] {
        let r = app.get(&format!("/s/{code}"), UA_PC).await;
        assert_eq!(r.status(), 404, "{code}");
    }
}
both!(cancelled_expired_and_unknown_short_links);

async fn http_gateway_receives_the_configured_template(backend: Backend) {
    let gw = Receiver::start().await;
    let fake = crate::live::FakeProcessor {
        calls: Default::default(),
    };
    let Some(app) = spawn_app_full(
        backend,
        |c| {
            c.sms_http_url = Some(gw.url.clone());
            c.sms_http_auth = Some(kakehashi::config::Redacted("Bearer gw-secret".into()));
            c.sms_http_body = r#"{"from":"KAKEHASHI","dest":"{to}","message":"{text}"}"#.into();
            c.master_key = Some(kakehashi::config::Redacted(TEST_MASTER_KEY.into()));
        },
        vec![std::sync::Arc::new(fake)],
    )
    .await
    else {
        return;
    };
    // A live merchant: its checkouts need a live connector (the fake processor).
    let live = app
        .merchant_with(|n| {
            n.name = "\"引用\"商店".into();
        })
        .await;
    crate::live::make_live(&app, &live).await;
    let key = app.api_key(&live).await;
    assert!(key.starts_with("ak_live_"));
    gw.respond(&[(200, r#"{"id":"gw-1"}"#)]);
    let r = app
        .api_post(
            "/api/v1/payment-requests",
            &key,
            request("live-1", "070-1111-2222"),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.json);
    let msg = &r.json["messages"][0];
    assert_eq!(
        (
            &msg["status"],
            &msg["provider"],
            &msg["provider_message_id"]
        ),
        (&json!("sent"), &json!("http"), &json!("gw-1"))
    );
    let hits = gw.hits();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].header("authorization"), "Bearer gw-secret");
    assert_eq!(hits[0].header("content-type"), "application/json");
    let body = hits[0].json();
    assert_eq!(body["from"], "KAKEHASHI");
    assert_eq!(body["dest"], "07011112222");
    let text = body["message"].as_str().unwrap();
    assert_eq!(text, msg["text"].as_str().unwrap(), "quotes JSON-escaped");
    assert!(text.starts_with("\"引用\"商店: 3,300円"));
    assert_eq!(url_in(text), r.json["url"].as_str().unwrap());

    // A failing gateway: the message is recorded failed; a resend goes through.
    gw.respond(&[(503, "busy")]);
    let id = r.json["id"].as_str().unwrap();
    let r = app
        .api_post(
            &format!("/api/v1/payment-requests/{id}/resend"),
            &key,
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.json);
    let failed = &r.json["messages"][1];
    assert_eq!(failed["status"], "failed");
    assert!(failed["error"].as_str().unwrap().contains("503"));
    let r = app
        .api_post(
            &format!("/api/v1/payment-requests/{id}/resend"),
            &key,
            json!({}),
        )
        .await;
    assert_eq!(r.json["messages"][2]["status"], "sent");
    assert_eq!(gw.hits().len(), 3);

    // The sandbox outbox is for test mode only.
    let r = app.api_get("/api/v1/sms/messages", &key).await;
    assert_eq!((r.status, r.code()), (403, "test_mode_only"));
}

#[tokio::test]
async fn http_gateway_receives_the_configured_template_sqlite() {
    http_gateway_receives_the_configured_template(Backend::Sqlite).await;
}

#[tokio::test]
async fn http_gateway_receives_the_configured_template_postgres() {
    http_gateway_receives_the_configured_template(Backend::Postgres).await;
}

async fn live_merchant_without_gateway_is_refused(app: TestApp) {
    let live = app
        .merchant_with(|n| n.mode = kakehashi::domain::Mode::Live)
        .await;
    let key = app.api_key(&live).await;
    let r = app
        .api_post(
            "/api/v1/payment-requests",
            &key,
            request("live-x", "09012345678"),
        )
        .await;
    assert_eq!((r.status, r.code()), (409, "sms_provider_not_configured"));
    assert_eq!(app.count("payment_requests").await, 0);
    assert_eq!(app.count("checkouts").await, 0);
    assert_eq!(app.count("sms_messages").await, 0);
}
both!(live_merchant_without_gateway_is_refused);

#[test]
fn gateway_url_is_checked_at_startup() {
    let mut c = kakehashi::config::Config::for_tests(String::new());
    c.allow_loopback_callbacks = false;
    for bad in [
        "http://127.0.0.1:9/send",
        "https://10.0.0.1/send",
        "http://sms.example/send",
        "https://user:pw@sms.example/send",
        "ftp://sms.example/",
    ] {
        c.sms_http_url = Some(bad.into());
        assert!(
            kakehashi::sms::SmsProviders::from_config(&c).is_err(),
            "{bad}"
        );
    }
    c.sms_http_url = Some("https://sms.example/send".into());
    assert!(kakehashi::sms::SmsProviders::from_config(&c).is_ok());
    c.sms_http_body = r#"{"text":"{text}"}"#.into();
    assert!(
        kakehashi::sms::SmsProviders::from_config(&c).is_err(),
        "{{to}} missing"
    );
}

async fn rate_limit_per_merchant(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |c| c.sms_rate_per_minute = 3).await else {
        return;
    };
    let m = app.merchant().await;
    let other = app.merchant().await;
    let (key, other_key) = (app.api_key(&m).await, app.api_key(&other).await);
    let mut first = String::new();
    for i in 0..2 {
        let r = app
            .api_post(
                "/api/v1/payment-requests",
                &key,
                request(&format!("rl-{i}"), "09012345678"),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.json);
        first = r.json["id"].as_str().unwrap().to_owned();
    }
    let r = app
        .api_post(
            &format!("/api/v1/payment-requests/{first}/resend"),
            &key,
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "third message of the minute");
    let r = app
        .api(
            "POST",
            "/api/v1/payment-requests",
            Some(&key),
            Some("rl-idem"),
            Some(&request("rl-9", "09012345678")),
        )
        .await;
    assert_eq!((r.status, r.code()), (429, "rate_limited"), "{}", r.json);
    let retry: i64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    let r = app
        .api_post(
            &format!("/api/v1/payment-requests/{first}/resend"),
            &key,
            json!({}),
        )
        .await;
    assert_eq!((r.status, r.code()), (429, "rate_limited"));
    assert!(r.headers.contains_key("retry-after"));
    // Refused requests wrote nothing, and a 429 is not stored under its idempotency key.
    assert_eq!(app.count("payment_requests").await, 2);
    assert_eq!(app.count("checkouts").await, 2);
    assert_eq!(app.count("sms_messages").await, 3);
    let stored: i64 = kakehashi::on_db!(&app.db, c => sqlx::query_scalar(
        "SELECT COUNT(*) FROM idempotency_keys WHERE key = 'rl-idem'",
    ).fetch_one(c).await)
    .unwrap();
    assert_eq!(stored, 0);
    // Other merchants have their own budget.
    let r = app
        .api_post(
            "/api/v1/payment-requests",
            &other_key,
            request("rl-o", "09012345678"),
        )
        .await;
    assert_eq!(r.status, 201);
    // The budget is per minute of the server's clock: a minute later it is whole again.
    app.clock.advance(std::time::Duration::from_secs(61));
    let r = app
        .api_post(
            &format!("/api/v1/payment-requests/{first}/resend"),
            &key,
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.json);
}

#[tokio::test]
async fn rate_limit_per_merchant_sqlite() {
    rate_limit_per_merchant(Backend::Sqlite).await;
}

#[tokio::test]
async fn rate_limit_per_merchant_postgres() {
    rate_limit_per_merchant(Backend::Postgres).await;
}

async fn phone_numbers_are_normalised(app: TestApp) {
    let m = app.merchant().await;
    let key = app.api_key(&m).await;
    for (i, (input, want)) in [
        ("09012345678", Some("09012345678")),
        ("090-1234-5678", Some("09012345678")),
        ("080 1234 5678", Some("08012345678")),
        ("070-1234 5678", Some("07012345678")),
        ("+819012345678", Some("09012345678")),
        ("+81 80-1234-5678", Some("08012345678")),
        ("+81 090-1234-5678", None),
        ("03-1234-5678", None),
        ("0120-123-456", None),
        ("050-1234-5678", None),
        ("090-1234-567", None),
        ("090-1234-56789", None),
        ("090.1234.5678", None),
        ("", None),
    ]
    .into_iter()
    .enumerate()
    {
        let r = app
            .api_post(
                "/api/v1/payment-requests",
                &key,
                request(&format!("ph-{i}"), input),
            )
            .await;
        match want {
            Some(p) => {
                assert_eq!(r.status, 201, "{input}: {}", r.json);
                assert_eq!(r.json["phone"], p, "{input}");
                assert_eq!(r.json["messages"][0]["to"], p);
            }
            // No number at all (and no e-mail): nothing to send to.
            None if input.is_empty() => {
                assert_eq!((r.status, r.code()), (400, "recipient_required"), "{input}");
            }
            None => {
                assert_eq!((r.status, r.code()), (400, "invalid_phone"), "{input}");
            }
        }
    }
    assert_eq!(app.count("payment_requests").await, 6);
    assert_eq!(app.count("checkouts").await, 6, "refusals write nothing");
}
both!(phone_numbers_are_normalised);

async fn messages_fit_in_seventy_characters(app: TestApp) {
    let long_name = "とても長い名前のオンラインショップ本店さくら通り商店街支店";
    let m = app.merchant_with(|n| n.name = long_name.into()).await;
    let key = app.api_key(&m).await;
    let r = app
        .api_post(
            "/api/v1/payment-requests",
            &key,
            request("len-1", "09012345678"),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.json);
    let text = r.json["messages"][0]["text"].as_str().unwrap();
    assert_eq!(units(text), 70, "{text}");
    assert!(text.contains('…'), "shop name shortened: {text}");
    assert!(text.starts_with("とても長い"));
    assert_eq!(url_in(text), r.json["url"].as_str().unwrap(), "URL intact");

    // A template whose fixed parts leave no room: refused, nothing written.
    kakehashi::sms::set_template(
        &app.db,
        &m.id,
        "{shop}様 {item} のお支払いをお願いいたします。下記のリンクからお手続きください {url}",
    )
    .await
    .unwrap();
    let before = app.count("checkouts").await;
    let r = app
        .api_post(
            "/api/v1/payment-requests",
            &key,
            json!({ "phone": "09012345678", "order_id": "len-2", "amount": 3300,
                    "item_name": "季節限定 特製和菓子詰め合わせ 二十個入り 化粧箱付き" }),
        )
        .await;
    assert_eq!((r.status, r.code()), (422, "sms_too_long"), "{}", r.json);
    assert_eq!(app.count("checkouts").await, before);
    assert_eq!(app.count("payment_requests").await, 1);

    // A template with {item} that fits is used as written.
    kakehashi::sms::set_template(&app.db, &m.id, "{item} {amount}円 {url}")
        .await
        .unwrap();
    let r = app
        .api_post(
            "/api/v1/payment-requests",
            &key,
            request("len-3", "09012345678"),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.json);
    assert_eq!(
        r.json["messages"][0]["text"],
        format!("修理代金 3,300円 {}", r.json["url"].as_str().unwrap())
    );
    assert!(kakehashi::sms::set_template(&app.db, &m.id, "no link here")
        .await
        .is_err());
}
both!(messages_fit_in_seventy_characters);
