//! KOMOJU wallets (PayPay, …), end to end against the contract fake: the shopper is sent to the
//! wallet through KOMOJU's redirect flow and comes back; the result is read from KOMOJU, never
//! from the return URL alone; KOMOJU's webhooks apply once and only forward; refunds (partial,
//! then the rest) go through KOMOJU with our operation id as idempotency key.

use kakehashi::domain::processor::Processor;
use kakehashi::domain::{Method, Mode};
use kakehashi::flows::processors::{self, AccountInput};
use serde_json::json;

use crate::helpers::*;
use crate::komoju::komoju_app;
use crate::komoju_fake::{KomojuFake, FAKE_SECRET_KEY};

const WEBHOOK_SECRET: &str = "whsec_komoju_wallet";

macro_rules! both_komoju_wallet {
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

/// A live merchant whose wallets go through a KOMOJU account.
async fn live_merchant(app: &TestApp) -> (TestMerchant, String) {
    let m = app.merchant().await;
    let account = processors::add(
        &app.db,
        &app.state.connectors,
        &m.id,
        AccountInput {
            processor: Processor::Komoju,
            mode: Mode::Live,
            methods: vec![Method::Wallet],
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
    assert_eq!(offered, vec![Method::Wallet]);
    (m, account)
}

/// Opens a link, picks the wallet method and `wallet`; checks the shopper is sent to KOMOJU's
/// redirect page and returns (our payment, KOMOJU's payment id).
async fn to_komoju(
    app: &TestApp,
    fake: &KomojuFake,
    m: &TestMerchant,
    order: &str,
    amount: i64,
    wallet: &str,
) -> (kakehashi::db::payments::PaymentRow, String) {
    let page = app.choose(m, order, amount, "wallet", UA_IPHONE).await;
    let body = app.get(&page, UA_IPHONE).await.text().await.unwrap();
    assert!(!body.contains("テスト環境"), "a live page: {body}");
    let r = app
        .post_form(
            &page,
            UA_IPHONE,
            &[("csrf", &hidden(&body, "csrf")), ("wallet", wallet)],
        )
        .await;
    assert_eq!(r.status(), 303);
    let kid = fake.last_payment_id().expect("a KOMOJU payment");
    assert_eq!(location(&r), format!("{}/redirect/{kid}", fake.base));
    let p = payment(app, order).await;
    assert_eq!(p.status.code(), "awaiting_wallet");
    assert_eq!(p.connector_ref.as_deref(), Some(kid.as_str()));
    let kp = fake.payment(&kid);
    assert_eq!(kp["payment_details"]["type"], wallet);
    assert_eq!(kp["external_order_num"], json!(p.id));
    assert_eq!(kp["amount"], json!(amount));
    assert_eq!(fake.idempotency_key_of(&kid), Some(p.id.clone()));
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

async fn outbox_types(app: &TestApp, payment_id: &str) -> Vec<String> {
    kakehashi::on_db!(&app.db, c => sqlx::query_scalar(
        "SELECT type FROM outbox WHERE payment_id = $1 ORDER BY seq",
    )
    .bind(payment_id)
    .fetch_all(c)
    .await)
    .unwrap()
}

async fn come_back(app: &TestApp, url: &str) -> String {
    let r = app.get(url, UA_IPHONE).await;
    assert_eq!(r.status(), 303, "{url}");
    app.get(&location(&r), UA_IPHONE)
        .await
        .text()
        .await
        .unwrap()
}

/// PayPay approved: the return reads KOMOJU's `captured`, the payment is paid (notified once);
/// the merchant refunds part and then the rest through the API, each refunded at KOMOJU with
/// its own idempotency key; a refund KOMOJU refuses changes nothing here.
async fn komoju_wallet_paid_then_refunded(app: TestApp, fake: KomojuFake) {
    let (m, _) = live_merchant(&app).await;
    let (p, kid) = to_komoju(&app, &fake, &m, "kw-1", 3000, "paypay").await;
    // Back before the wallet decided: nothing changes, whatever the URL says.
    come_back(&app, &fake.return_url(&kid)).await;
    assert_eq!(app.payment_status(&p.id).await, "awaiting_wallet");
    let ret = fake.decide(&kid, "captured");
    assert!(ret.contains(&format!("/wallet/return/{}?", p.id)), "{ret}");
    let body = come_back(&app, &ret).await;
    assert!(body.contains("お支払いが完了しました"), "{body}");
    assert_eq!(app.payment_status(&p.id).await, "paid");
    assert_eq!(app.checkout_status(&m, "kw-1").await, "paid");
    come_back(&app, &ret).await;
    assert_eq!(outbox_types(&app, &p.id).await, vec!["payment.completed"]);

    let key = app.api_key(&m).await;
    let path = format!("/api/v1/payments/{}/refund", p.id);
    let r = app.api_post(&path, &key, json!({ "amount": 1000 })).await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    assert_eq!(
        (
            r.json["status"].as_str(),
            r.json["refunded_amount"].as_i64()
        ),
        (Some("paid"), Some(1000))
    );
    assert_eq!(fake.payment(&kid)["amount_refunded"], 1000);
    let r = app.api_post(&path, &key, json!({ "amount": 2000 })).await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    assert_eq!(r.json["status"], "refunded");
    assert_eq!(fake.payment(&kid)["status"], "refunded");
    assert_eq!(fake.payment(&kid)["amount_refunded"], 3000);
    assert_eq!(
        outbox_types(&app, &p.id).await,
        vec!["payment.completed", "payment.refunded", "payment.refunded"]
    );
    // Nothing left: refused here, KOMOJU is not called.
    let before = fake.requests().len();
    let r = app.api_post(&path, &key, json!({ "amount": 1 })).await;
    assert_eq!((r.status, r.code()), (409, "invalid_transition"));
    assert_eq!(fake.requests().len(), before);

    // KOMOJU refusing a refund (its payment was refunded in its dashboard meanwhile): 502
    // connector_error, and nothing changes here.
    let (p2, kid2) = to_komoju(&app, &fake, &m, "kw-2", 2000, "rakutenpay").await;
    come_back(&app, &fake.decide(&kid2, "captured")).await;
    fake.set_status(&kid2, "refunded");
    let r = app
        .api_post(
            &format!("/api/v1/payments/{}/refund", p2.id),
            &key,
            json!({ "amount": 500 }),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (502, "connector_error"),
        "{:?}",
        r.json
    );
    let row = payment(&app, "kw-2").await;
    assert_eq!((row.status.code(), row.refunded_amount), ("paid", 0));
}
both_komoju_wallet!(komoju_wallet_paid_then_refunded);

/// KOMOJU's `failed` / `cancelled` / `expired` make the payment failed and reopen the
/// checkout; a tampered return is refused before KOMOJU is asked.
async fn komoju_wallet_declined_and_untrusted_returns(app: TestApp, fake: KomojuFake) {
    let (m, _) = live_merchant(&app).await;
    let (p, kid) = to_komoju(&app, &fake, &m, "kw-3", 2000, "merpay").await;
    // A live payment can never be decided on the sandbox wallet page.
    let sandbox = format!("{}/sandbox/wallet/merpay/{kid}", app.base);
    assert_eq!(app.get(&sandbox, UA_IPHONE).await.status(), 404);
    let genuine = fake.return_url(&kid);
    let gets = |f: &KomojuFake| {
        f.requests()
            .iter()
            .filter(|r| r.starts_with("GET "))
            .count()
    };
    let before = gets(&fake);
    for forged in [
        genuine.replace("amount=2000", "amount=1"),
        genuine.replace("wallet=merpay", "wallet=paypay"),
    ] {
        assert_ne!(forged, genuine);
        assert_eq!(app.get(&forged, UA_IPHONE).await.status(), 403);
    }
    assert_eq!(gets(&fake), before, "KOMOJU asked about a forged return");
    let body = come_back(&app, &fake.decide(&kid, "failed")).await;
    assert!(
        body.contains("ウォレットでお支払いが承認されませんでした"),
        "{body}"
    );
    assert_eq!(app.payment_status(&p.id).await, "failed");
    assert_eq!(app.checkout_status(&m, "kw-3").await, "open");
    // A return of one payment cannot settle another.
    let (p2, kid2) = to_komoju(&app, &fake, &m, "kw-4", 2000, "merpay").await;
    fake.set_status(&kid2, "captured");
    let other = genuine.replace(&p.id, &p2.id);
    assert_eq!(app.get(&other, UA_IPHONE).await.status(), 403);
    assert_eq!(app.payment_status(&p2.id).await, "awaiting_wallet");
}
both_komoju_wallet!(komoju_wallet_declined_and_untrusted_returns);

/// The shopper never comes back: KOMOJU's signed webhooks decide. Bad signatures are refused,
/// a redelivery is a duplicate, a late `expired` after `captured` changes nothing, and a
/// refund in KOMOJU's dashboard (`payment.refunded`) refunds what is left. A payment our
/// timeout gave up on is still paid when KOMOJU says it was captured.
async fn komoju_wallet_webhooks(app: TestApp, fake: KomojuFake) {
    let (m, account) = live_merchant(&app).await;
    let url = format!("{}/webhooks/komoju/{account}", app.base);
    let (p, kid) = to_komoju(&app, &fake, &m, "kw-5", 1500, "linepay").await;
    let captured = fake.set_status(&kid, "captured");
    let body = fake.event("payment.captured", &captured).to_string();
    let (code, v) = fake.deliver(&url, "whsec_wrong", &body).await;
    assert_eq!(code, 401, "{v}");
    assert_eq!(app.payment_status(&p.id).await, "awaiting_wallet");
    let (code, v) = fake.deliver(&url, WEBHOOK_SECRET, &body).await;
    assert_eq!((code, v["result"].as_str()), (200, Some("applied")), "{v}");
    assert_eq!(app.payment_status(&p.id).await, "paid");
    assert_eq!(app.checkout_status(&m, "kw-5").await, "paid");
    let (code, v) = fake.deliver(&url, WEBHOOK_SECRET, &body).await;
    assert_eq!((code, v["result"].as_str()), (200, Some("duplicate")));
    let expired = fake.event("payment.expired", &captured).to_string();
    let (code, v) = fake.deliver(&url, WEBHOOK_SECRET, &expired).await;
    assert_eq!((code, v["result"].as_str()), (200, Some("no_change")));
    let (code, v) = fake.deliver(&url, WEBHOOK_SECRET, "{\"id\":").await;
    assert_eq!(code, 400, "{v}");
    let refunded = fake.set_status(&kid, "refunded");
    let body = fake.event("payment.refunded", &refunded).to_string();
    let (code, v) = fake.deliver(&url, WEBHOOK_SECRET, &body).await;
    assert_eq!((code, v["result"].as_str()), (200, Some("applied")), "{v}");
    let row = payment(&app, "kw-5").await;
    assert_eq!((row.status.code(), row.refunded_amount), ("refunded", 1500));
    assert_eq!(
        outbox_types(&app, &p.id).await,
        vec!["payment.completed", "payment.refunded"]
    );

    // Timed out here, captured at KOMOJU later: the late news makes it paid.
    let (p, kid) = to_komoju(&app, &fake, &m, "kw-6", 1800, "aupay").await;
    let later = p.created_at + kakehashi::domain::wallet::PENDING_TIMEOUT_MS + 1_000;
    assert_eq!(
        kakehashi::flows::wallet::timeout_due(&app.db, later)
            .await
            .unwrap(),
        1
    );
    assert_eq!(app.payment_status(&p.id).await, "timed_out");
    let captured = fake.set_status(&kid, "captured");
    let body = fake.event("payment.captured", &captured).to_string();
    let (code, v) = fake.deliver(&url, WEBHOOK_SECRET, &body).await;
    assert_eq!((code, v["result"].as_str()), (200, Some("applied")), "{v}");
    assert_eq!(app.payment_status(&p.id).await, "paid");
    // A failed one: `payment.failed` fails it and reopens the checkout.
    let (p, kid) = to_komoju(&app, &fake, &m, "kw-7", 900, "paidy").await;
    let failed = fake.set_status(&kid, "failed");
    let body = fake.event("payment.failed", &failed).to_string();
    let (code, v) = fake.deliver(&url, WEBHOOK_SECRET, &body).await;
    assert_eq!((code, v["result"].as_str()), (200, Some("applied")), "{v}");
    assert_eq!(app.payment_status(&p.id).await, "failed");
    assert_eq!(app.checkout_status(&m, "kw-7").await, "open");
}
both_komoju_wallet!(komoju_wallet_webhooks);

const MINUTE: i64 = 60_000;

/// The reconciliation sweep (komoju.md §4c): a payment whose webhook never came is asked about
/// 10 minutes after its last change and marked paid; one still pending after the timeout is
/// cancelled at KOMOJU and then here; a webhook and the sweep together apply once.
async fn komoju_wallet_reconciliation_sweep(app: TestApp, fake: KomojuFake) {
    let (m, account) = live_merchant(&app).await;
    let sweep = |now: i64| kakehashi::flows::wallet::reconcile(&app.db, &app.state.connectors, now);
    let gets = |f: &KomojuFake| {
        f.requests()
            .iter()
            .filter(|r| r.starts_with("GET "))
            .count()
    };
    let now = kakehashi::util::now_ms();
    let (paid, kid) = to_komoju(&app, &fake, &m, "kw-20", 1200, "paypay").await;
    fake.set_status(&kid, "captured");
    let (waiting, wkid) = to_komoju(&app, &fake, &m, "kw-21", 1300, "merpay").await;
    // Too early: nobody is asked.
    assert_eq!(sweep(now).await.unwrap(), 0);
    assert_eq!(gets(&fake), 0);
    // The webhook never came: the sweep reads KOMOJU and applies it.
    assert_eq!(sweep(now + 11 * MINUTE).await.unwrap(), 1);
    assert_eq!(app.payment_status(&paid.id).await, "paid");
    assert_eq!(app.checkout_status(&m, "kw-20").await, "paid");
    assert_eq!(
        outbox_types(&app, &paid.id).await,
        vec!["payment.completed"]
    );
    // Still pending before the timeout: left waiting, not cancelled at KOMOJU.
    assert_eq!(app.payment_status(&waiting.id).await, "awaiting_wallet");
    assert_eq!(fake.payment(&wkid)["status"], "pending");
    // Still pending after it: cancelled at KOMOJU first, then timed out here.
    let late = waiting.created_at + kakehashi::domain::wallet::PENDING_TIMEOUT_MS + MINUTE;
    assert_eq!(sweep(late).await.unwrap(), 1);
    assert_eq!(fake.payment(&wkid)["status"], "cancelled");
    assert!(fake
        .requests()
        .iter()
        .any(|r| r == &format!("POST /api/v1/payments/{wkid}/cancel")));
    assert_eq!(app.payment_status(&waiting.id).await, "timed_out");
    assert_eq!(app.checkout_status(&m, "kw-21").await, "open");
    assert_eq!(
        outbox_types(&app, &waiting.id).await,
        vec!["payment.expired"]
    );
    // Nothing left to do.
    assert_eq!(sweep(late + MINUTE).await.unwrap(), 0);

    // The webhook and the sweep at the same time: applied once.
    let (both, bkid) = to_komoju(&app, &fake, &m, "kw-22", 1400, "aupay").await;
    let captured = fake.set_status(&bkid, "captured");
    let url = format!("{}/webhooks/komoju/{account}", app.base);
    let body = fake.event("payment.captured", &captured).to_string();
    let soon = kakehashi::util::now_ms() + 11 * MINUTE;
    let ((code, v), swept) = tokio::join!(fake.deliver(&url, WEBHOOK_SECRET, &body), sweep(soon));
    let swept = swept.unwrap();
    assert!(code == 200 || code == 503, "{code} {v}");
    // A retry of the webhook (KOMOJU redelivers after a 503) changes nothing more.
    let (code, v) = fake.deliver(&url, WEBHOOK_SECRET, &body).await;
    assert_eq!(code, 200, "{v}");
    assert!(swept <= 1);
    assert_eq!(app.payment_status(&both.id).await, "paid");
    assert_eq!(
        outbox_types(&app, &both.id).await,
        vec!["payment.completed"]
    );
    let events = kakehashi::db::payments::events(&app.db, &both.id)
        .await
        .unwrap();
    assert_eq!(
        events
            .iter()
            .filter(|e| e.kind == "payment.completed")
            .count(),
        1
    );
    assert_eq!(sweep(soon + MINUTE).await.unwrap(), 0);
}
both_komoju_wallet!(komoju_wallet_reconciliation_sweep);
