//! KOMOJU cards, server to server, end to end against the contract fake: the card typed on our
//! form (PC, smartphone, feature phone) goes to KOMOJU in one request only (its secure token),
//! the shopper authenticates on KOMOJU's 3-D Secure page and comes back to our signed return,
//! the result is read from KOMOJU, and the authorization is captured, refunded or cancelled
//! through the usual API. The card number is never stored or logged.

use kakehashi::domain::processor::Processor;
use kakehashi::domain::{Method, Mode};
use kakehashi::flows::processors::{self, AccountInput};
use serde_json::json;

use crate::feature_phone::Phone;
use crate::helpers::*;
use crate::komoju::komoju_app;
use crate::komoju_fake::{test_cards, KomojuFake, FAKE_SECRET_KEY};

const WEBHOOK_SECRET: &str = "whsec_komoju_card";

macro_rules! both_komoju_card {
    ($name:ident) => {
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                let (app, fake) = super::komoju_app($crate::helpers::Backend::Sqlite)
                    .await
                    .unwrap();
                super::$name(app, fake).await;
            }
            #[tokio::test]
            async fn postgres() {
                if let Some((app, fake)) =
                    super::komoju_app($crate::helpers::Backend::Postgres).await
                {
                    super::$name(app, fake).await;
                }
            }
        }
    };
}

/// A live merchant whose cards go through a KOMOJU account (server to server), with the
/// merchant's `capture` mode and installments enabled (which KOMOJU cannot take).
async fn live_merchant(app: &TestApp, capture: &str) -> (TestMerchant, String) {
    let capture = capture.to_owned();
    let m = app
        .merchant_with(|n| {
            n.capture_mode = capture;
            n.card_options = "lump,inst3,bonus".into();
        })
        .await;
    let account = processors::add(
        &app.db,
        &app.state.connectors,
        &m.id,
        AccountInput {
            processor: Processor::Komoju,
            mode: Mode::Live,
            methods: vec![Method::Card],
            secret_key: FAKE_SECRET_KEY.into(),
            publishable_key: None,
            webhook_secret: Some(WEBHOOK_SECRET.into()),
        },
        app.state.now_ms(),
    )
    .await
    .unwrap()
    .id;
    let offered = processors::set_mode(&app.db, &app.state.connectors, &m.id, Mode::Live)
        .await
        .unwrap();
    assert_eq!(offered, vec![Method::Card]);
    (m, account)
}

/// Our card form on a PC or smartphone: the number is posted to us (no Stripe.js), and only
/// 一括払い is offered. Posts `pan` and returns the response.
async fn pay(
    app: &TestApp,
    m: &TestMerchant,
    order: &str,
    ua: &str,
    pan: &str,
) -> reqwest::Response {
    let page = app.choose(m, order, 3000, "card", ua).await;
    let form = app.get(&page, ua).await.text().await.unwrap();
    assert!(form.contains("name=\"number\""), "{form}");
    assert!(!form.contains("stripe"), "our own form: {form}");
    assert!(form.contains("value=\"lump\""), "{form}");
    assert!(
        !form.contains("value=\"inst3\""),
        "KOMOJU takes no installments: {form}"
    );
    assert!(!form.contains("テスト環境"), "a live page");
    app.post_form(
        &page,
        ua,
        &[
            ("csrf", &hidden(&form, "csrf")),
            ("number", pan),
            ("exp_month", "12"),
            ("exp_year", &future_exp_year()),
            ("cvc", "123"),
            ("option", "lump"),
        ],
    )
    .await
}

async fn payment(app: &TestApp, order: &str) -> kakehashi::db::payments::PaymentRow {
    let id = app
        .scalar_str(&format!(
            "SELECT id FROM payments WHERE order_id = '{order}' ORDER BY created_at DESC LIMIT 1"
        ))
        .await
        .expect("payment");
    kakehashi::db::payments::get(&app.db, &id)
        .await
        .unwrap()
        .unwrap()
}

async fn outbox_types(app: &TestApp, payment_id: &str) -> Vec<String> {
    kakehashi::on_db!(&app.db, c => sqlx::query_scalar(
        "SELECT type FROM outbox WHERE payment_id = $1 ORDER BY seq",
    )
    .bind(payment_id)
    .fetch_all(c)
    .await)
    .unwrap()
}

/// The shopper was sent to KOMOJU's 3-D Secure page: returns the secure token.
fn sent_to_komoju(fake: &KomojuFake, r: &reqwest::Response) -> String {
    assert_eq!(r.status(), 303);
    let tok = fake.secure_tokens().pop().expect("a secure token");
    assert_eq!(
        location(r),
        format!("{}/three_d_secure_service/offsite?token={tok}", fake.base)
    );
    tok
}

/// Follows our 3-D Secure return and then the result page; returns the page text.
async fn come_back(app: &TestApp, url: &str, ua: &str) -> String {
    let r = app.get(url, ua).await;
    assert_eq!(r.status(), 303, "{url}");
    let next = location(&r);
    app.get(&next, ua).await.text().await.unwrap()
}

fn card_creates(fake: &KomojuFake) -> usize {
    fake.requests()
        .iter()
        .filter(|r| *r == "POST /api/v1/payments")
        .count()
}

/// The card number reached KOMOJU only: nothing in our tables or logs has it.
async fn no_pan_anywhere(app: &TestApp, pan: &str) {
    assert!(!logs().contains(pan), "card number in logs");
    for table in [
        "payments",
        "payment_events",
        "outbox",
        "checkouts",
        "processor_events",
        "pending_cards",
        "card_attempts",
    ] {
        let sql = format!("SELECT * FROM {table}");
        let dump: Vec<String> = kakehashi::on_db!(&app.db, c => {
            use sqlx::Row;
            let rows = sqlx::query(&sql).fetch_all(c).await.unwrap();
            Ok::<_, sqlx::Error>(rows.iter()
                .flat_map(|r| (0..r.columns().len()).map(move |i| r.try_get::<String, _>(i).unwrap_or_default()))
                .collect::<Vec<String>>())
        })
        .unwrap();
        assert!(!dump.iter().any(|v| v.contains(pan)), "{table}");
    }
}

/// PC: 3-D Secure on KOMOJU's page, authorized (not captured: manual capture), then captured
/// and partly refunded through the API; a reload of the return creates nothing twice.
async fn komoju_card_pc_authorize_capture_refund(app: TestApp, fake: KomojuFake) {
    let (m, account) = live_merchant(&app, "manual").await;
    let r = pay(&app, &m, "kc-1", UA_PC, test_cards::SUCCESS).await;
    let tok = sent_to_komoju(&fake, &r);
    let p = payment(&app, "kc-1").await;
    assert_eq!(p.status.code(), "challenge");
    assert_eq!(p.connector_ref, None);
    assert_eq!(
        card_creates(&fake),
        0,
        "no KOMOJU payment before 3-D Secure"
    );
    let t = fake.secure_token(&tok);
    assert!(
        t["return_url"]
            .as_str()
            .unwrap()
            .contains(&format!("/card/3ds-return?payment_id={}", p.id)),
        "{t}"
    );

    let ret = fake.authenticate(&tok, None);
    let body = come_back(&app, &ret, UA_PC).await;
    assert!(body.contains("お支払いが完了しました"), "{body}");
    let p = payment(&app, "kc-1").await;
    assert_eq!(p.status.code(), "authorized");
    let kid = p.connector_ref.clone().expect("KOMOJU payment id");
    let kp = fake.payment(&kid);
    assert_eq!(
        (kp["status"].as_str(), kp["amount"].as_i64()),
        (Some("authorized"), Some(3000))
    );
    assert_eq!(kp["external_order_num"], json!(p.id));
    assert_eq!(fake.idempotency_key_of(&kid), Some(p.id.clone()));
    assert_eq!(p.details_json()["last4"], "0100");
    // A reload of the return: nothing is created or changed again.
    let r = app.get(&ret, UA_PC).await;
    assert_eq!(r.status(), 303);
    assert_eq!(card_creates(&fake), 1);
    assert_eq!(
        outbox_types(&app, &p.id).await,
        vec!["payment.challenge_required", "payment.authorized"]
    );

    let key = app.api_key(&m).await;
    let r = app
        .api_post(
            &format!("/api/v1/payments/{}/capture", p.id),
            &key,
            json!({}),
        )
        .await;
    assert_eq!(
        (r.status, r.json["status"].as_str()),
        (200, Some("captured")),
        "{:?}",
        r.json
    );
    assert_eq!(fake.payment(&kid)["status"], "captured");
    let r = app
        .api_post(
            &format!("/api/v1/payments/{}/refund", p.id),
            &key,
            json!({ "amount": 1000 }),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    assert_eq!(
        (
            r.json["status"].as_str(),
            r.json["refunded_amount"].as_i64()
        ),
        (Some("captured"), Some(1000))
    );
    assert_eq!(fake.payment(&kid)["amount_refunded"], 1000);
    assert_eq!(fake.payment(&kid)["status"], "captured");
    assert_eq!(
        outbox_types(&app, &p.id).await,
        vec![
            "payment.challenge_required",
            "payment.authorized",
            "payment.captured",
            "payment.refunded"
        ]
    );
    // KOMOJU's webhook about our own capture changes nothing.
    let event = fake.event("payment.captured", &fake.payment(&kid));
    let url = format!("{}/webhooks/komoju/{account}", app.base);
    let (code, v) = fake.deliver(&url, WEBHOOK_SECRET, &event.to_string()).await;
    assert_eq!(
        (code, v["result"].as_str()),
        (200, Some("no_change")),
        "{v}"
    );

    no_pan_anywhere(&app, test_cards::SUCCESS).await;
}
both_komoju_card!(komoju_card_pc_authorize_capture_refund);

/// Smartphone, automatic capture: a wrong password on KOMOJU's page fails the payment (the
/// form is shown again with the reason), a card whose 3-D Secure fails likewise; a forged
/// return changes nothing; the right password then pays, captured at once.
async fn komoju_card_smartphone_three_ds(app: TestApp, fake: KomojuFake) {
    let (m, _) = live_merchant(&app, "auto").await;
    let r = pay(&app, &m, "kc-2", UA_IPHONE, test_cards::CHALLENGE).await;
    let tok = sent_to_komoju(&fake, &r);
    let ret = fake.authenticate(&tok, Some(test_cards::PASSWORD_BAD));
    // A return whose signature does not check out: 403, KOMOJU is not even asked.
    let forged = ret.replace("payment_id=", "payment_id=x");
    let before = fake.requests().len();
    let r = app.get(&forged, UA_IPHONE).await;
    assert_eq!(r.status(), 403);
    assert_eq!(fake.requests().len(), before);
    assert_eq!(payment(&app, "kc-2").await.status.code(), "challenge");

    let r = app.get(&ret, UA_IPHONE).await;
    assert_eq!(r.status(), 402);
    let body = r.text().await.unwrap();
    assert!(
        body.contains("本人認証（3Dセキュア）に失敗しました"),
        "{body}"
    );
    assert!(body.contains("name=\"number\""), "the form again");
    let p = payment(&app, "kc-2").await;
    assert_eq!(p.status.code(), "failed");
    assert_eq!(p.details_json()["failure"], "authentication_failed");
    assert_eq!(card_creates(&fake), 0, "never authorized");
    assert_eq!(
        outbox_types(&app, &p.id).await,
        vec!["payment.challenge_required", "payment.failed"]
    );

    // 3-D Secure that fails on return.
    let form = app
        .get(&format!("/pay/{}/card", token_of(&ret)), UA_IPHONE)
        .await
        .text()
        .await
        .unwrap();
    let r = app
        .post_form(
            &format!("/pay/{}/card", token_of(&ret)),
            UA_IPHONE,
            &[
                ("csrf", &hidden(&form, "csrf")),
                ("number", test_cards::THREE_DS_FAILS),
                ("exp_month", "12"),
                ("exp_year", &future_exp_year()),
                ("cvc", "123"),
                ("option", "lump"),
            ],
        )
        .await;
    let tok = sent_to_komoju(&fake, &r);
    let r = app.get(&fake.authenticate(&tok, None), UA_IPHONE).await;
    assert_eq!(r.status(), 402);
    assert_eq!(payment(&app, "kc-2").await.status.code(), "failed");

    // The right password: authorized and captured at once.
    let r = app
        .post_form(
            &format!("/pay/{}/card", token_of(&ret)),
            UA_IPHONE,
            &[
                ("csrf", &hidden(&form, "csrf")),
                ("number", test_cards::CHALLENGE),
                ("exp_month", "12"),
                ("exp_year", &future_exp_year()),
                ("cvc", "123"),
                ("option", "lump"),
            ],
        )
        .await;
    let tok = sent_to_komoju(&fake, &r);
    let body = come_back(
        &app,
        &fake.authenticate(&tok, Some(test_cards::PASSWORD_OK)),
        UA_IPHONE,
    )
    .await;
    assert!(body.contains("お支払いが完了しました"), "{body}");
    let p = payment(&app, "kc-2").await;
    assert_eq!(p.status.code(), "captured");
    assert_eq!(
        fake.payment(p.connector_ref.as_deref().unwrap())["status"],
        "captured"
    );
    assert_eq!(app.checkout_status(&m, "kc-2").await, "paid");
    no_pan_anywhere(&app, test_cards::CHALLENGE).await;
    no_pan_anywhere(&app, test_cards::THREE_DS_FAILS).await;
}
both_komoju_card!(komoju_card_smartphone_three_ds);

/// `/pay/{token}/…` → the token.
fn token_of(url: &str) -> String {
    let rest = url.split("/pay/").nth(1).unwrap();
    rest.split('/').next().unwrap().to_owned()
}

/// A feature phone gets our card form when KOMOJU serves cards (no Stripe.js needed), goes to
/// KOMOJU's 3-D Secure page and comes back paid.
async fn komoju_card_feature_phone(app: TestApp, fake: KomojuFake) {
    let (m, _) = live_merchant(&app, "auto").await;
    let phone = Phone {
        app: &app,
        ua: UA_DOCOMO,
    };
    let selector = phone
        .get(&app.link(&m, &app.fields(&m, "kc-3", 2480, &[])))
        .await;
    let (status, card_url) = phone
        .post(
            &action(&selector),
            &[("csrf", &hidden(&selector, "csrf")), ("method", "card")],
        )
        .await;
    assert_eq!(status, 303, "card is offered on a feature phone");
    let form = phone.get(&card_url).await;
    assert!(form.contains("name=\"number\""), "{form}");
    assert!(!form.contains("inst3"), "一括払い only: {form}");
    let (status, to) = phone
        .post(
            &card_url,
            &[
                ("csrf", &hidden(&form, "csrf")),
                ("number", test_cards::SUCCESS),
                ("exp_month", "12"),
                ("exp_year", &future_exp_year()),
                ("cvc", "123"),
                ("option", "lump"),
            ],
        )
        .await;
    assert_eq!(status, 303, "{to}");
    let tok = fake.secure_tokens().pop().unwrap();
    assert!(to.starts_with(&fake.base), "{to}");
    let r = app.get(&fake.authenticate(&tok, None), UA_DOCOMO).await;
    assert_eq!(r.status(), 303);
    let done = phone.get(&location(&r)).await;
    assert!(done.contains("お支払いが完了しました"), "{done}");
    assert_eq!(payment(&app, "kc-3").await.status.code(), "captured");
    no_pan_anywhere(&app, test_cards::SUCCESS).await;
}
both_komoju_card!(komoju_card_feature_phone);

/// Declines after 3-D Secure are our documented reasons (the shopper sees the message, the
/// payment keeps the reason for staff); KOMOJU's code is never shown to the shopper.
async fn komoju_card_declines(app: TestApp, fake: KomojuFake) {
    let (m, _) = live_merchant(&app, "auto").await;
    for (order, pan, reason, text) in [
        (
            "kc-4",
            test_cards::INSUFFICIENT_FUNDS,
            "insufficient_funds",
            "ご利用可能額を超えている",
        ),
        (
            "kc-5",
            test_cards::EXPIRED,
            "expired_card",
            "有効期限が切れている",
        ),
    ] {
        let r = pay(&app, &m, order, UA_PC, pan).await;
        let tok = sent_to_komoju(&fake, &r);
        let r = app.get(&fake.authenticate(&tok, None), UA_PC).await;
        assert_eq!(r.status(), 402, "{order}");
        let body = r.text().await.unwrap();
        assert!(body.contains(text), "{body}");
        let p = payment(&app, order).await;
        assert_eq!(p.status.code(), "failed");
        assert_eq!(p.details_json()["failure"], reason);
        assert_eq!(p.connector_ref, None);
        no_pan_anywhere(&app, pan).await;
    }
}
both_komoju_card!(komoju_card_declines);

/// Webhooks for card payments apply once: a capture made in KOMOJU's dashboard captures here,
/// its redelivery is a duplicate; a dashboard refund refunds here; a cancelled authorization
/// (through our API) is cancelled at KOMOJU.
async fn komoju_card_webhooks_and_cancel(app: TestApp, fake: KomojuFake) {
    let (m, account) = live_merchant(&app, "manual").await;
    let r = pay(&app, &m, "kc-6", UA_PC, test_cards::SUCCESS).await;
    let tok = sent_to_komoju(&fake, &r);
    come_back(&app, &fake.authenticate(&tok, None), UA_PC).await;
    let p = payment(&app, "kc-6").await;
    let kid = p.connector_ref.clone().unwrap();
    let url = format!("{}/webhooks/komoju/{account}", app.base);

    let captured = fake.event("payment.captured", &fake.set_status(&kid, "captured"));
    let (code, v) = fake
        .deliver(&url, WEBHOOK_SECRET, &captured.to_string())
        .await;
    assert_eq!((code, v["result"].as_str()), (200, Some("applied")), "{v}");
    let (code, v) = fake
        .deliver(&url, WEBHOOK_SECRET, &captured.to_string())
        .await;
    assert_eq!(
        (code, v["result"].as_str()),
        (200, Some("duplicate")),
        "{v}"
    );
    assert_eq!(app.payment_status(&p.id).await, "captured");

    let mut kp = fake.set_status(&kid, "refunded");
    kp["amount_refunded"] = json!(3000);
    let refunded = fake.event("payment.refunded", &kp);
    let (code, v) = fake
        .deliver(&url, WEBHOOK_SECRET, &refunded.to_string())
        .await;
    assert_eq!((code, v["result"].as_str()), (200, Some("applied")), "{v}");
    assert_eq!(app.payment_status(&p.id).await, "refunded");
    assert_eq!(
        outbox_types(&app, &p.id).await,
        vec![
            "payment.challenge_required",
            "payment.authorized",
            "payment.captured",
            "payment.refunded"
        ]
    );

    // 取消 of an authorization through the API: cancelled at KOMOJU first.
    let r = pay(&app, &m, "kc-7", UA_PC, test_cards::SUCCESS).await;
    let tok = sent_to_komoju(&fake, &r);
    come_back(&app, &fake.authenticate(&tok, None), UA_PC).await;
    let p = payment(&app, "kc-7").await;
    let key = app.api_key(&m).await;
    let r = app
        .api_post(
            &format!("/api/v1/payments/{}/cancel", p.id),
            &key,
            json!({}),
        )
        .await;
    assert_eq!(
        (r.status, r.json["status"].as_str()),
        (200, Some("cancelled")),
        "{:?}",
        r.json
    );
    assert_eq!(
        fake.payment(p.connector_ref.as_deref().unwrap())["status"],
        "cancelled"
    );
}
both_komoju_card!(komoju_card_webhooks_and_cancel);
