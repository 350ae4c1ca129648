//! KOMOJU carrier billing, end to end against the contract fake: the shopper is sent to the
//! carrier through KOMOJU's redirect flow and comes back; the result is always read from
//! KOMOJU (never from the return URL alone), KOMOJU's webhooks and our reconciliation sweep move
//! payments whose shopper never came back, refunds go through KOMOJU, and our feature-phone rule
//! and monthly limit hold before the redirect.

use kakehashi::domain::processor::Processor;
use kakehashi::domain::{Method, Mode};
use kakehashi::flows::processors::{self, AccountInput};
use serde_json::{json, Value};

use crate::helpers::*;
use crate::komoju::komoju_app;
use crate::komoju_fake::{KomojuFake, FAKE_SECRET_KEY};

const WEBHOOK_SECRET: &str = "whsec_komoju_carrier";
const MINUTE: i64 = 60_000;

macro_rules! both_komoju_carrier {
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

/// A live merchant whose three carriers (and konbini) go through a KOMOJU account.
async fn live_merchant(app: &TestApp) -> (TestMerchant, String) {
    let m = app.merchant().await;
    let account = processors::add(
        &app.db,
        &app.state.connectors,
        &m.id,
        AccountInput {
            processor: Processor::Komoju,
            mode: Mode::Live,
            methods: vec![
                Method::Konbini,
                Method::Docomo,
                Method::Au,
                Method::Softbank,
            ],
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
    assert_eq!(
        offered,
        vec![
            Method::Konbini,
            Method::Docomo,
            Method::Au,
            Method::Softbank
        ]
    );
    (m, account)
}

/// Opens a link (with the shopper's phone when given), picks `carrier`, posts `billing`;
/// returns the response of the start.
async fn start(
    app: &TestApp,
    m: &TestMerchant,
    order: &str,
    amount: i64,
    carrier: &str,
    phone: Option<&str>,
    billing: &str,
) -> reqwest::Response {
    let mut extra = vec![("shopper_email", "taro@example.jp")];
    if let Some(p) = phone {
        extra.push(("shopper_phone", p));
    }
    let f = app.fields(m, order, amount, &extra);
    let (status, body) = app.open(m, &f, UA_PC).await;
    assert_eq!(status, 200, "{body}");
    let r = app
        .post_form(
            &action(&body),
            UA_PC,
            &[("csrf", &hidden(&body, "csrf")), ("method", carrier)],
        )
        .await;
    assert_eq!(r.status(), 303, "choosing {carrier}");
    let page = location(&r);
    let body = app.get(&page, UA_PC).await.text().await.unwrap();
    app.post_form(
        &page,
        UA_PC,
        &[("csrf", &hidden(&body, "csrf")), ("billing", billing)],
    )
    .await
}

/// Starts a one-off payment and checks the shopper is sent to KOMOJU's redirect page; returns
/// (our payment, KOMOJU's payment id).
async fn to_komoju(
    app: &TestApp,
    fake: &KomojuFake,
    m: &TestMerchant,
    order: &str,
    amount: i64,
    carrier: &str,
) -> (kakehashi::db::payments::PaymentRow, String) {
    let r = start(
        app,
        m,
        order,
        amount,
        carrier,
        Some("090-1234-5678"),
        "one_off",
    )
    .await;
    assert_eq!(r.status(), 303);
    let kid = fake.last_payment_id().expect("a KOMOJU payment");
    assert_eq!(location(&r), format!("{}/redirect/{kid}", fake.base));
    let p = payment(app, order).await;
    assert_eq!(p.status.code(), "awaiting_auth");
    assert_eq!(p.connector_ref.as_deref(), Some(kid.as_str()));
    let kp = fake.payment(&kid);
    assert_eq!(kp["payment_details"]["type"], carrier);
    assert_eq!(kp["external_order_num"], json!(p.id));
    assert_eq!(kp["amount"], json!(amount));
    (p, kid)
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

async fn status(app: &TestApp, id: &str) -> String {
    app.payment_status(id).await
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

/// The shopper comes back from KOMOJU; returns the result page body.
async fn come_back(app: &TestApp, url: &str) -> String {
    let r = app.get(url, UA_PC).await;
    assert_eq!(r.status(), 303, "{url}");
    app.get(&location(&r), UA_PC).await.text().await.unwrap()
}

fn hook_url(app: &TestApp, account: &str) -> String {
    format!("{}/webhooks/komoju/{account}", app.base)
}

/// d払い approved at the carrier: the shopper comes back, KOMOJU's payment says `captured`, the
/// payment completes (notified once); the merchant refunds it through the API, which refunds
/// it at KOMOJU (whole: a partial amount is refused).
async fn komoju_carrier_paid_then_refunded(app: TestApp, fake: KomojuFake) {
    let (m, _) = live_merchant(&app).await;
    let (p, kid) = to_komoju(&app, &fake, &m, "kc-1", 3000, "docomo").await;
    let ret = fake.decide(&kid, "captured");
    assert!(
        ret.starts_with(&format!("{}/pay/", app.base))
            && ret.contains(&format!("/docomo/return/{}?", p.id)),
        "{ret}"
    );
    let body = come_back(&app, &ret).await;
    assert!(body.contains("お支払いが完了しました"), "{body}");
    assert_eq!(status(&app, &p.id).await, "completed");
    assert_eq!(app.checkout_status(&m, "kc-1").await, "paid");
    // Following the same return again changes nothing.
    come_back(&app, &ret).await;
    assert_eq!(outbox_types(&app, &p.id).await, vec!["payment.completed"]);

    let key = app.api_key(&m).await;
    let path = format!("/api/v1/payments/{}/refund", p.id);
    let r = app.api_post(&path, &key, json!({ "amount": 1000 })).await;
    assert_eq!(r.status, 409, "{:?}", r.json);
    assert_eq!(r.json["error"]["code"], "partial_refund_unsupported");
    assert_eq!(fake.payment(&kid)["status"], "captured");
    let r = app.api_post(&path, &key, json!({ "amount": 3000 })).await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    assert_eq!(r.json["status"], "refunded");
    assert_eq!(
        kakehashi::db::payments::get(&app.db, &p.id)
            .await
            .unwrap()
            .unwrap()
            .refunded_amount,
        3000
    );
    assert_eq!(fake.payment(&kid)["status"], "refunded");
    assert_eq!(fake.payment(&kid)["amount_refunded"], 3000);
    assert_eq!(
        outbox_types(&app, &p.id).await,
        vec!["payment.completed", "payment.refunded"]
    );
    // A second refund is refused here and never reaches KOMOJU.
    let before = fake.requests().len();
    let r = app.api_post(&path, &key, json!({ "amount": 3000 })).await;
    assert_eq!(r.status, 409);
    assert_eq!(fake.requests().len(), before);
}
both_komoju_carrier!(komoju_carrier_paid_then_refunded);

/// The return URL alone decides nothing: a tampered one is refused, a genuine one while KOMOJU
/// still waits leaves the payment waiting, and KOMOJU's `failed` / `cancelled` make the payment
/// failed / cancelled, with the checkout open for another method.
async fn komoju_carrier_decline_cancel_and_untrusted_returns(app: TestApp, fake: KomojuFake) {
    let (m, _) = live_merchant(&app).await;
    let (p, kid) = to_komoju(&app, &fake, &m, "kc-2", 2000, "au").await;
    let genuine = fake.return_url(&kid);
    // The shopper edits the amount: the signature no longer holds.
    let forged = genuine.replace("amount=2000", "amount=1");
    assert_ne!(forged, genuine);
    assert_eq!(app.get(&forged, UA_PC).await.status(), 403);
    // Back before the carrier decided: nothing changes, whatever the URL says.
    let r = app.get(&genuine, UA_PC).await;
    assert_eq!(r.status(), 303);
    assert_eq!(status(&app, &p.id).await, "awaiting_auth");
    // KOMOJU learns the carrier declined.
    let ret = fake.decide(&kid, "failed");
    come_back(&app, &ret).await;
    assert_eq!(status(&app, &p.id).await, "failed");
    assert_eq!(app.checkout_status(&m, "kc-2").await, "open");

    let (p, kid) = to_komoju(&app, &fake, &m, "kc-3", 2000, "softbank").await;
    let ret = fake.decide(&kid, "cancelled");
    come_back(&app, &ret).await;
    assert_eq!(status(&app, &p.id).await, "cancelled");
    // A return for one payment cannot settle another (its signature names the payment).
    let (p2, kid2) = to_komoju(&app, &fake, &m, "kc-4", 2000, "docomo").await;
    fake.set_status(&kid2, "captured");
    let other = ret.replace(&p.id, &p2.id);
    assert_eq!(app.get(&other, UA_PC).await.status(), 403);
    assert_eq!(status(&app, &p2.id).await, "awaiting_auth");
}
both_komoju_carrier!(komoju_carrier_decline_cancel_and_untrusted_returns);

/// Our rules hold before the shopper is sent away: the monthly limit counts the link's shopper
/// phone across KOMOJU payments (the second payment fails here and KOMOJU is never called), and
/// continuous billing is not offered through KOMOJU.
async fn komoju_carrier_limit_and_device_rules(app: TestApp, fake: KomojuFake) {
    let (m, _) = live_merchant(&app).await;
    let (p, kid) = to_komoju(&app, &fake, &m, "kc-5", 80_000, "docomo").await;
    come_back(&app, &fake.decide(&kid, "captured")).await;
    assert_eq!(status(&app, &p.id).await, "completed");
    let creates = |f: &KomojuFake| {
        f.requests()
            .iter()
            .filter(|r| r.as_str() == "POST /api/v1/payments")
            .count()
    };
    let before = creates(&fake);
    let r = start(
        &app,
        &m,
        "kc-6",
        30_000,
        "docomo",
        Some("09012345678"),
        "one_off",
    )
    .await;
    assert_eq!(r.status(), 303);
    let result = location(&r);
    assert!(result.contains("/docomo/result/"), "{result}");
    let body = app.get(&result, UA_PC).await.text().await.unwrap();
    assert!(body.contains("残りは20,000円"), "{body}");
    assert_eq!(creates(&fake), before, "KOMOJU was called over the limit");
    let failed = payment(&app, "kc-6").await;
    assert_eq!(failed.status.code(), "failed");
    assert_eq!(
        failed.details_json()["failure_reason"],
        "carrier_monthly_limit_exceeded"
    );
    // Another phone number has its own limit.
    to_komoju(&app, &fake, &m, "kc-7", 30_000, "au").await;

    // Continuous billing is not offered through KOMOJU even when the merchant enabled it, and a
    // forged choice is refused before anything is created, here or there.
    kakehashi::flows::carrier::set_continuous(&app.db, &m.id, true)
        .await
        .unwrap();
    let f = app.fields(&m, "kc-9", 1000, &[]);
    let (_, body) = app.open(&m, &f, UA_PC).await;
    let r = app
        .post_form(
            &action(&body),
            UA_PC,
            &[("csrf", &hidden(&body, "csrf")), ("method", "softbank")],
        )
        .await;
    let page = app.get(&location(&r), UA_PC).await.text().await.unwrap();
    assert!(!page.contains("継続課金"), "{page}");
    let before = creates(&fake);
    let r = start(&app, &m, "kc-9b", 1000, "softbank", None, "continuous").await;
    assert_eq!(r.status(), 400, "continuous through KOMOJU");
    assert_eq!(creates(&fake), before);
    assert!(app
        .scalar_str("SELECT id FROM payments WHERE order_id = 'kc-9b'")
        .await
        .is_none());
}
both_komoju_carrier!(komoju_carrier_limit_and_device_rules);

/// The shopper never comes back: KOMOJU's signed `payment.captured` completes the payment once
/// (a redelivery is a duplicate, the same news under a new event id changes nothing, a bad
/// signature is refused), and `payment.refunded` from KOMOJU's dashboard refunds it.
async fn komoju_carrier_webhooks(app: TestApp, fake: KomojuFake) {
    let (m, account) = live_merchant(&app).await;
    let (p, kid) = to_komoju(&app, &fake, &m, "kc-10", 1500, "docomo").await;
    let url = hook_url(&app, &account);
    let captured = fake.set_status(&kid, "captured");
    let body = fake.event("payment.captured", &captured).to_string();
    let (code, v) = fake.deliver(&url, "whsec_wrong", &body).await;
    assert_eq!(code, 401, "{v}");
    assert_eq!(status(&app, &p.id).await, "awaiting_auth");
    let (code, v) = fake.deliver(&url, WEBHOOK_SECRET, &body).await;
    assert_eq!((code, v["result"].as_str()), (200, Some("applied")), "{v}");
    assert_eq!(status(&app, &p.id).await, "completed");
    assert_eq!(app.checkout_status(&m, "kc-10").await, "paid");
    let (code, v) = fake.deliver(&url, WEBHOOK_SECRET, &body).await;
    assert_eq!((code, v["result"].as_str()), (200, Some("duplicate")));
    let again = fake.event("payment.captured", &captured).to_string();
    let (code, v) = fake.deliver(&url, WEBHOOK_SECRET, &again).await;
    assert_eq!((code, v["result"].as_str()), (200, Some("no_change")));
    // The shopper's late return after the webhook changes nothing either.
    come_back(&app, &fake.return_url(&kid)).await;
    assert_eq!(outbox_types(&app, &p.id).await, vec!["payment.completed"]);
    let refunded = fake.set_status(&kid, "refunded");
    let body = fake.event("payment.refunded", &refunded).to_string();
    let (code, v) = fake.deliver(&url, WEBHOOK_SECRET, &body).await;
    assert_eq!((code, v["result"].as_str()), (200, Some("applied")), "{v}");
    assert_eq!(status(&app, &p.id).await, "refunded");
    // A late `payment.failed` for a refunded payment is out of order: ignored.
    let failed: Value = fake.event("payment.failed", &fake.payment(&kid));
    let (code, v) = fake
        .deliver(&url, WEBHOOK_SECRET, &failed.to_string())
        .await;
    assert_eq!((code, v["result"].as_str()), (200, Some("no_change")));
    assert_eq!(
        outbox_types(&app, &p.id).await,
        vec!["payment.completed", "payment.refunded"]
    );
}
both_komoju_carrier!(komoju_carrier_webhooks);

/// Neither the shopper nor a webhook came back: the sweep asks KOMOJU (GET payment) about
/// carrier payments waiting over ten minutes and applies what it says; one still pending after
/// an hour is cancelled at KOMOJU and here; a paid KOMOJU konbini number is found too.
async fn komoju_reconciliation_sweep(app: TestApp, fake: KomojuFake) {
    let (m, _) = live_merchant(&app).await;
    let sweep = |now: i64, numbers: bool| {
        kakehashi::flows::carrier_sync::reconcile(&app.db, &app.state.connectors, now, numbers)
    };
    let now = kakehashi::util::now_ms();
    let (paid, kid) = to_komoju(&app, &fake, &m, "kc-11", 1200, "au").await;
    fake.set_status(&kid, "captured");
    let (waiting, wkid) = to_komoju(&app, &fake, &m, "kc-12", 1300, "softbank").await;
    // Too early: nobody is asked.
    let gets = |f: &KomojuFake| {
        f.requests()
            .iter()
            .filter(|r| r.starts_with("GET "))
            .count()
    };
    assert_eq!(sweep(now, false).await.unwrap(), 0);
    assert_eq!(gets(&fake), 0);
    assert_eq!(sweep(now + 11 * MINUTE, false).await.unwrap(), 1);
    assert_eq!(status(&app, &paid.id).await, "completed");
    assert_eq!(
        outbox_types(&app, &paid.id).await,
        vec!["payment.completed"]
    );
    assert_eq!(status(&app, &waiting.id).await, "awaiting_auth");
    assert_eq!(sweep(now + 61 * MINUTE, false).await.unwrap(), 1);
    assert_eq!(status(&app, &waiting.id).await, "cancelled");
    assert_eq!(fake.payment(&wkid)["status"], "cancelled");
    // Nothing left to do: a second sweep changes nothing.
    assert_eq!(sweep(now + 62 * MINUTE, true).await.unwrap(), 0);

    // A konbini number paid at the store whose webhook never came.
    issue_lawson(&app, &m, "kc-13").await;
    let n = payment(&app, "kc-13").await;
    assert_eq!(n.status.code(), "awaiting_payment");
    let now = kakehashi::util::now_ms() + 1;
    assert_eq!(sweep(now, true).await.unwrap(), 0);
    fake.set_status(n.connector_ref.as_deref().unwrap(), "captured");
    // Numbers are asked about only on the runs that include them.
    assert_eq!(sweep(now, false).await.unwrap(), 0);
    assert_eq!(sweep(now, true).await.unwrap(), 1);
    assert_eq!(status(&app, &n.id).await, "paid");
}
both_komoju_carrier!(komoju_reconciliation_sweep);

/// Issues a KOMOJU Lawson number for a new order.
async fn issue_lawson(
    app: &TestApp,
    m: &TestMerchant,
    order: &str,
) -> kakehashi::db::payments::PaymentRow {
    let f = app.fields(
        m,
        order,
        2500,
        &[
            ("shopper_email", "taro@example.jp"),
            ("shopper_phone", "090-1234-5678"),
        ],
    );
    let (_, body) = app.open(m, &f, UA_PC).await;
    let r = app
        .post_form(
            &action(&body),
            UA_PC,
            &[("csrf", &hidden(&body, "csrf")), ("method", "konbini")],
        )
        .await;
    let page = location(&r);
    let body = app.get(&page, UA_PC).await.text().await.unwrap();
    let r = app
        .post_form(
            &page,
            UA_PC,
            &[
                ("csrf", &hidden(&body, "csrf")),
                ("chain", "lawson"),
                ("confirm", "1"),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);
    let p = payment(app, order).await;
    assert_eq!(p.status.code(), "awaiting_payment");
    p
}

/// The merchant cancels an unpaid KOMOJU number through the API: KOMOJU cancels it first, then
/// it ends `expired` (as a number cancelled at KOMOJU does). A second cancel, or one for a
/// number KOMOJU says is paid, is refused and changes nothing.
async fn komoju_number_cancel(app: TestApp, fake: KomojuFake) {
    let (m, _) = live_merchant(&app).await;
    let key = app.api_key(&m).await;
    let n = issue_lawson(&app, &m, "kc-20").await;
    let kid = n.connector_ref.clone().unwrap();
    let path = format!("/api/v1/payments/{}/cancel", n.id);
    let r = app.api_post(&path, &key, json!({})).await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    assert_eq!(r.json["status"], "expired");
    assert_eq!(fake.payment(&kid)["status"], "cancelled");
    assert_eq!(
        outbox_types(&app, &n.id).await,
        vec!["konbini.issued", "payment.expired"]
    );
    let r = app.api_post(&path, &key, json!({})).await;
    assert_eq!(r.status, 409);
    assert_eq!(r.json["error"]["code"], "invalid_transition");

    let n = issue_lawson(&app, &m, "kc-21").await;
    let kid = n.connector_ref.clone().unwrap();
    fake.set_status(&kid, "captured");
    let r = app
        .api_post(
            &format!("/api/v1/payments/{}/cancel", n.id),
            &key,
            json!({}),
        )
        .await;
    assert_eq!(r.status, 409, "{:?}", r.json);
    assert_eq!(r.json["error"]["code"], "number_already_paid");
    assert_eq!(status(&app, &n.id).await, "awaiting_payment");
    assert_eq!(fake.payment(&kid)["status"], "captured");
}
both_komoju_carrier!(komoju_number_cancel);

/// Two attempts of one phone number both pass the check before the redirect; when KOMOJU
/// reports the second approval, the limit is checked again: that payment fails and its charge is
/// refunded at KOMOJU.
async fn komoju_carrier_limit_rechecked_on_approval(app: TestApp, fake: KomojuFake) {
    let (m, account) = live_merchant(&app).await;
    let (a, ka) = to_komoju(&app, &fake, &m, "kc-30", 60_000, "docomo").await;
    let (b, kb) = to_komoju(&app, &fake, &m, "kc-31", 60_000, "docomo").await;
    let url = hook_url(&app, &account);
    for kid in [&ka, &kb] {
        let body = fake
            .event("payment.captured", &fake.set_status(kid, "captured"))
            .to_string();
        let (code, v) = fake.deliver(&url, WEBHOOK_SECRET, &body).await;
        assert_eq!((code, v["result"].as_str()), (200, Some("applied")), "{v}");
    }
    assert_eq!(status(&app, &a.id).await, "completed");
    let b = kakehashi::db::payments::get(&app.db, &b.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(b.status.code(), "failed");
    assert_eq!(
        b.details_json()["failure_reason"],
        "carrier_monthly_limit_exceeded"
    );
    assert_eq!(fake.payment(&kb)["status"], "refunded");
    assert_eq!(fake.payment(&ka)["status"], "captured");
}
both_komoju_carrier!(komoju_carrier_limit_rechecked_on_approval);

/// On a feature phone (Shift_JIS, no cookies) only d払い is offered, it goes through KOMOJU's
/// redirect like on PC, and the shopper comes back to our feature-phone result page.
async fn komoju_docomo_on_a_feature_phone(app: TestApp, fake: KomojuFake) {
    let (m, _) = live_merchant(&app).await;
    let f = app.fields(&m, "kc-40", 800, &[("shopper_email", "taro@example.jp")]);
    let sel = sjis_text(app.get(&app.link(&m, &f), UA_DOCOMO).await).await;
    assert!(sel.contains("value=\"docomo\""), "{sel}");
    assert!(!sel.contains("value=\"au\"") && !sel.contains("value=\"softbank\""));
    let r = app
        .post_sjis(
            &action(&sel),
            UA_DOCOMO,
            &[("csrf", &hidden(&sel, "csrf")), ("method", "docomo")],
        )
        .await;
    assert_eq!(r.status(), 303);
    let page = location(&r);
    let body = sjis_text(app.get(&page, UA_DOCOMO).await).await;
    let r = app
        .post_sjis(
            &page,
            UA_DOCOMO,
            &[("csrf", &hidden(&body, "csrf")), ("billing", "one_off")],
        )
        .await;
    assert_eq!(r.status(), 303);
    let kid = fake.last_payment_id().unwrap();
    assert_eq!(location(&r), format!("{}/redirect/{kid}", fake.base));
    let ret = fake.decide(&kid, "captured");
    let r = app.get(&ret, UA_DOCOMO).await;
    assert_eq!(r.status(), 303);
    let result = sjis_text(app.get(&location(&r), UA_DOCOMO).await).await;
    assert!(result.contains("お支払いが完了しました"), "{result}");
    assert!(!result.contains("<script"));
    assert_eq!(payment(&app, "kc-40").await.status.code(), "completed");
}
both_komoju_carrier!(komoju_docomo_on_a_feature_phone);
