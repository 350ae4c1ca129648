//! KOMOJU, end to end against the contract fake (`komoju_fake.rs`): a live merchant with a
//! KOMOJU account issues konbini and Pay-easy numbers through KOMOJU's Payments API, and
//! KOMOJU's signed webhooks move the payments on (once, forward only).

use kakehashi::domain::processor::Processor;
use kakehashi::domain::{Method, Mode};
use kakehashi::flows::processors::{self, AccountInput};
use serde_json::{json, Value};

use crate::helpers::*;
use crate::komoju_fake::{KomojuFake, FAKE_SECRET_KEY};

/// The account's stored webhook secret: two secrets (a rotation in progress).
const WEBHOOK_SECRETS: &str = "whsec_komoju_old whsec_komoju_new";
const WEBHOOK_SECRET: &str = "whsec_komoju_new";

pub async fn komoju_app(backend: Backend) -> Option<(TestApp, KomojuFake)> {
    let fake = KomojuFake::start().await;
    let base = fake.base.clone();
    let app = spawn_app_full(
        backend,
        move |c| {
            c.master_key = Some(kakehashi::config::Redacted(TEST_MASTER_KEY.into()));
            c.komoju_api_base = base;
        },
        Vec::new(),
    )
    .await?;
    Some((app, fake))
}

macro_rules! both_komoju {
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

/// A live merchant whose konbini and Pay-easy go through a KOMOJU account; returns the
/// account id.
async fn live_merchant(app: &TestApp) -> (TestMerchant, String) {
    let m = app.merchant().await;
    let account = processors::add(
        &app.db,
        &app.state.connectors,
        &m.id,
        AccountInput {
            processor: Processor::Komoju,
            mode: Mode::Live,
            methods: vec![Method::Konbini, Method::Payeasy],
            secret_key: FAKE_SECRET_KEY.into(),
            publishable_key: None,
            webhook_secret: Some(WEBHOOK_SECRETS.into()),
        },
        app.state.now_ms(),
    )
    .await
    .unwrap()
    .id;
    let offered = processors::set_mode(&app.db, &app.state.connectors, &m.id, Mode::Live)
        .await
        .unwrap();
    assert_eq!(offered, vec![Method::Konbini, Method::Payeasy]);
    (m, account)
}

/// Link fields with the shopper details KOMOJU needs.
fn shopper(app: &TestApp, m: &TestMerchant, order: &str, amount: i64) -> Vec<(String, String)> {
    app.fields(
        m,
        order,
        amount,
        &[
            ("shopper_email", "taro@example.jp"),
            ("shopper_phone", "090-1234-5678"),
            ("shopper_name", "山田 太郎"),
            ("shopper_kana", "ヤマダ タロウ"),
        ],
    )
}

/// Opens the link, picks `method`, posts the form; returns (method page path, POST response).
async fn issue(
    app: &TestApp,
    m: &TestMerchant,
    f: &[(String, String)],
    method: &str,
    chain: Option<&str>,
) -> (String, reqwest::Response) {
    let (status, body) = app.open(m, f, UA_PC).await;
    assert_eq!(status, 200, "{body}");
    let r = app
        .post_form(
            &action(&body),
            UA_PC,
            &[("csrf", &hidden(&body, "csrf")), ("method", method)],
        )
        .await;
    assert_eq!(r.status(), 303, "choosing {method}");
    let path = location(&r);
    let body = app.get(&path, UA_PC).await.text().await.unwrap();
    let csrf = hidden(&body, "csrf");
    let mut form = vec![("csrf", csrf.as_str())];
    if let Some(c) = chain {
        form.extend([("chain", c), ("confirm", "1")]);
    }
    let r = app.post_form(&path, UA_PC, &form).await;
    (path, r)
}

fn num(body: &str, key: &str) -> String {
    let needle = format!("id=\"num-{key}\">");
    let i = body
        .find(&needle)
        .unwrap_or_else(|| panic!("no {key} in {body}"))
        + needle.len();
    // The digits are shown in groups (`<span class="grp">`): the number is their text.
    // Up to the end of the value (the copy button after it is not part of the number).
    let end = ["<button", "</dd>"]
        .iter()
        .filter_map(|t| body[i..].find(t))
        .min()
        .map_or(body.len(), |e| i + e);
    let shown = &body[i..end];
    let mut out = String::new();
    let mut in_tag = false;
    for ch in shown.chars() {
        match ch {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

async fn payment(app: &TestApp, order: &str) -> kakehashi::db::payments::PaymentRow {
    let id = app
        .scalar_str(&format!(
            "SELECT id FROM payments WHERE order_id = '{order}'"
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

fn hook_url(app: &TestApp, account: &str) -> String {
    format!("{}/webhooks/komoju/{account}", app.base)
}

/// RFC 3339 → unix ms.
fn ms(t: &str) -> i64 {
    let t = time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).unwrap();
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// Konbini at Lawson: KOMOJU's receipt and confirmation code are the shopper's お客様番号 and
/// 確認番号, its deadline is ours, and `payment.captured` makes the payment paid (速報) with the
/// merchant notification queued in the same transaction.
async fn komoju_konbini_number_then_paid_by_webhook(app: TestApp, fake: KomojuFake) {
    let (m, account) = live_merchant(&app).await;
    let f = shopper(&app, &m, "km-1", 3200);
    let (path, r) = issue(&app, &m, &f, "konbini", Some("lawson")).await;
    assert_eq!(r.status(), 303);
    let p = payment(&app, "km-1").await;
    assert_eq!(
        (p.status.code(), p.connector.as_str()),
        ("awaiting_payment", account.as_str())
    );
    let kid = p.connector_ref.clone().expect("KOMOJU payment id");
    let kp = fake.payment(&kid);
    assert_eq!(kp["external_order_num"], json!(p.id));
    assert_eq!(kp["payment_details"]["store"], "lawson");
    assert_eq!(kp["payment_details"]["email"], "taro@example.jp");
    assert_eq!(
        p.deadline_at,
        Some(ms(kp["payment_deadline"].as_str().unwrap()))
    );
    // The number page shows KOMOJU's numbers and its instructions link.
    let body = app.get(&path, UA_PC).await.text().await.unwrap();
    assert_eq!(
        num(&body, "customer_no"),
        kp["payment_details"]["receipt"].as_str().unwrap()
    );
    assert_eq!(
        num(&body, "confirm_no"),
        kp["payment_details"]["confirmation_code"].as_str().unwrap()
    );
    assert!(
        body.contains(kp["payment_details"]["instructions_url"].as_str().unwrap()),
        "instructions link shown"
    );
    // Reopening shows the same number: one KOMOJU payment, created with our payment id.
    assert_eq!(app.get(&path, UA_PC).await.text().await.unwrap(), body);
    assert_eq!(
        fake.idempotency_key_of(&kid).as_deref(),
        Some(p.id.as_str())
    );
    let creates = fake
        .requests()
        .iter()
        .filter(|r| *r == "POST /api/v1/payments")
        .count();
    assert_eq!(creates, 1);

    // The shopper pays at the store: KOMOJU captures and sends the webhook.
    let captured = fake.set_status(&kid, "captured");
    let ev = fake.event("payment.captured", &captured).to_string();
    let (status, answer) = fake
        .deliver(&hook_url(&app, &account), WEBHOOK_SECRET, &ev)
        .await;
    assert_eq!((status, answer["result"].as_str()), (200, Some("applied")));
    let p = payment(&app, "km-1").await;
    assert_eq!(p.status.code(), "paid");
    assert_eq!(
        p.paid_at,
        Some(ms(captured["captured_at"].as_str().unwrap()))
    );
    assert_eq!(app.checkout_status(&m, "km-1").await, "paid");
    assert_eq!(
        outbox_types(&app, &p.id).await,
        ["konbini.issued", "konbini.paid"]
    );
    // The same event again (KOMOJU retries): acknowledged, nothing changes.
    let (status, answer) = fake
        .deliver(&hook_url(&app, &account), WEBHOOK_SECRET, &ev)
        .await;
    assert_eq!(
        (status, answer["result"].as_str()),
        (200, Some("duplicate"))
    );
    assert_eq!(outbox_types(&app, &p.id).await.len(), 2);
}
both_komoju!(komoju_konbini_number_then_paid_by_webhook);

/// Pay-easy: 収納機関番号, お客様番号 and 確認番号 from KOMOJU; the shopper's names go with it.
/// KOMOJU's `payment.expired` expires the number; a `payment.captured` that still arrives is a
/// forward change (paid) and the late `payment.cancelled` after it changes nothing.
async fn komoju_payeasy_expiry_and_out_of_order(app: TestApp, fake: KomojuFake) {
    let (m, account) = live_merchant(&app).await;
    let f = shopper(&app, &m, "kp-1", 48_000);
    let (path, r) = issue(&app, &m, &f, "payeasy", None).await;
    assert_eq!(r.status(), 303);
    let p = payment(&app, "kp-1").await;
    let kid = p.connector_ref.clone().unwrap();
    let kp = fake.payment(&kid);
    assert_eq!(kp["payment_details"]["type"], "pay_easy");
    let body = app.get(&path, UA_PC).await.text().await.unwrap();
    assert_eq!(num(&body, "institution_no"), "58191");
    assert_eq!(
        num(&body, "customer_no"),
        kp["payment_details"]["customer_id"].as_str().unwrap()
    );
    assert_eq!(
        num(&body, "confirm_no"),
        kp["payment_details"]["confirmation_id"].as_str().unwrap()
    );
    let url = hook_url(&app, &account);

    let expired = fake.set_status(&kid, "expired");
    let ev = fake.event("payment.expired", &expired).to_string();
    let (status, answer) = fake.deliver(&url, WEBHOOK_SECRET, &ev).await;
    assert_eq!((status, answer["result"].as_str()), (200, Some("applied")));
    assert_eq!(payment(&app, "kp-1").await.status.code(), "expired");

    // Out of order: KOMOJU reports the payment after all, then a stale cancellation.
    let captured = fake.set_status(&kid, "captured");
    let ev = fake.event("payment.captured", &captured).to_string();
    let (status, _) = fake.deliver(&url, WEBHOOK_SECRET, &ev).await;
    assert_eq!(status, 200);
    assert_eq!(payment(&app, "kp-1").await.status.code(), "paid");
    let ev = fake.event("payment.cancelled", &expired).to_string();
    let (status, answer) = fake.deliver(&url, WEBHOOK_SECRET, &ev).await;
    assert_eq!(
        (status, answer["result"].as_str()),
        (200, Some("no_change"))
    );
    let p = payment(&app, "kp-1").await;
    assert_eq!(p.status.code(), "paid");
    assert_eq!(
        outbox_types(&app, &p.id).await,
        ["payeasy.issued", "payment.expired", "payeasy.paid"]
    );
}
both_komoju!(komoju_payeasy_expiry_and_out_of_order);

/// Bad deliveries change nothing: a wrong or missing signature (401), a tampered body (401),
/// an account that does not exist or is not KOMOJU's (404), a signed body that is no event
/// (400). Unknown types and events for payments we never made are acknowledged. The older
/// of the two stored secrets still verifies.
async fn komoju_webhooks_refuse_bad_deliveries(app: TestApp, fake: KomojuFake) {
    let (m, account) = live_merchant(&app).await;
    let f = shopper(&app, &m, "kw-1", 1500);
    let (_, r) = issue(&app, &m, &f, "konbini", Some("seven")).await;
    assert_eq!(r.status(), 303);
    let p = payment(&app, "kw-1").await;
    let kid = p.connector_ref.clone().unwrap();
    let receipt = fake.payment(&kid)["payment_details"]["receipt"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(receipt.len(), 13, "Seven-Eleven 払込票番号");
    let url = hook_url(&app, &account);
    let captured = fake.set_status(&kid, "captured");
    let ev = fake.event("payment.captured", &captured).to_string();

    let (status, answer) = fake.deliver(&url, "whsec_wrong", &ev).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (401, Some("webhook_bad_signature"))
    );
    let r = app
        .client
        .post(&url)
        .header("content-type", "application/json")
        .body(ev.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "no signature header");
    // Signed, then altered (another payment id) on the way.
    let sig = kakehashi::connectors::komoju::sign(WEBHOOK_SECRET, ev.as_bytes());
    let tampered = ev.replace(&kid, "kmj_other");
    let r = app
        .client
        .post(&url)
        .header("x-komoju-signature", sig)
        .body(tampered)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let (status, answer) = fake
        .deliver(&hook_url(&app, "pa_nosuch"), WEBHOOK_SECRET, &ev)
        .await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (404, Some("webhook_unknown_account"))
    );
    let (status, answer) = fake.deliver(&url, WEBHOOK_SECRET, "not json").await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (400, Some("webhook_malformed"))
    );
    assert_eq!(
        payment(&app, "kw-1").await.status.code(),
        "awaiting_payment"
    );
    assert_eq!(app.count("processor_events").await, 0);

    // Acknowledged and ignored: an unknown type, and a payment this account never made.
    let ping = json!({"id": "evt_ping", "type": "ping", "resource": "event", "data": {}});
    let (status, answer) = fake.deliver(&url, WEBHOOK_SECRET, &ping.to_string()).await;
    assert_eq!(
        (status, answer["result"].as_str()),
        (200, Some("ignored_type"))
    );
    let mut stranger: Value = captured.clone();
    stranger["id"] = json!("kmj_not_ours");
    stranger["external_order_num"] = json!("pay_not_ours");
    let ev2 = fake.event("payment.captured", &stranger).to_string();
    let (status, answer) = fake.deliver(&url, WEBHOOK_SECRET, &ev2).await;
    assert_eq!(
        (status, answer["result"].as_str()),
        (200, Some("unknown_payment"))
    );
    assert_eq!(
        payment(&app, "kw-1").await.status.code(),
        "awaiting_payment"
    );

    // The old secret of the rotation verifies too; then a replay of the same event is a no-op.
    let (status, answer) = fake.deliver(&url, "whsec_komoju_old", &ev).await;
    assert_eq!((status, answer["result"].as_str()), (200, Some("applied")));
    assert_eq!(payment(&app, "kw-1").await.status.code(), "paid");
    let (status, answer) = fake.deliver(&url, WEBHOOK_SECRET, &ev).await;
    assert_eq!(
        (status, answer["result"].as_str()),
        (200, Some("duplicate"))
    );
    // Two concurrent copies of a new event: applied once.
    let expired = fake.set_status(&kid, "expired");
    let ev3 = fake.event("payment.expired", &expired).to_string();
    let (a, b) = tokio::join!(
        fake.deliver(&url, WEBHOOK_SECRET, &ev3),
        fake.deliver(&url, WEBHOOK_SECRET, &ev3)
    );
    let mut results = vec![
        a.1["result"].as_str().unwrap_or("").to_owned(),
        b.1["result"].as_str().unwrap_or("").to_owned(),
    ];
    results.sort();
    assert_eq!(results, ["duplicate", "no_change"], "{a:?} {b:?}");
    assert_eq!(payment(&app, "kw-1").await.status.code(), "paid");
    assert_eq!(app.count("processor_events").await, 2);
}
both_komoju!(komoju_webhooks_refuse_bad_deliveries);

/// KOMOJU needs the shopper's email (and for Pay-easy phone and names): without them the number
/// is refused with a clear code, nothing is stored and KOMOJU is not called.
async fn komoju_refuses_without_shopper_details(app: TestApp, fake: KomojuFake) {
    let (m, _) = live_merchant(&app).await;
    let f = app.fields(&m, "kn-1", 1000, &[]);
    let (_, r) = issue(&app, &m, &f, "konbini", Some("famima")).await;
    assert_eq!(r.status(), 503);
    assert_eq!(
        error_code(&r.text().await.unwrap()),
        "komoju_email_required"
    );
    let f = app.fields(&m, "kn-2", 1000, &[("shopper_email", "a@example.jp")]);
    let (_, r) = issue(&app, &m, &f, "payeasy", None).await;
    assert_eq!(
        error_code(&r.text().await.unwrap()),
        "komoju_phone_required"
    );
    assert_eq!(app.count("payments").await, 0);
    assert!(fake.requests().is_empty(), "{:?}", fake.requests());
}
both_komoju!(komoju_refuses_without_shopper_details);

/// The deadline is KOMOJU's: our expiry sweep leaves the number alone until then, and expires it
/// after (as KOMOJU's own `payment.expired` would). A number cancelled at KOMOJU expires too.
async fn komoju_deadline_drives_our_expiry_sweep(app: TestApp, fake: KomojuFake) {
    let (m, account) = live_merchant(&app).await;
    let f = shopper(&app, &m, "kd-1", 800);
    let (_, r) = issue(&app, &m, &f, "konbini", Some("seicomart")).await;
    assert_eq!(r.status(), 303);
    let p = payment(&app, "kd-1").await;
    let kp = fake.payment(p.connector_ref.as_deref().unwrap());
    assert!(kp["payment_details"]["confirmation_code"].is_null());
    let deadline = ms(kp["payment_deadline"].as_str().unwrap());
    assert_eq!(p.deadline_at, Some(deadline));
    let expired = kakehashi::flows::konbini::expire_due(&app.db, deadline)
        .await
        .unwrap();
    assert_eq!(expired, 0);
    assert_eq!(
        payment(&app, "kd-1").await.status.code(),
        "awaiting_payment"
    );
    let expired = kakehashi::flows::konbini::expire_due(&app.db, deadline + 1)
        .await
        .unwrap();
    assert_eq!(expired, 1);
    assert_eq!(payment(&app, "kd-1").await.status.code(), "expired");

    // A number cancelled in KOMOJU's dashboard (its cancel endpoint) can no longer be paid.
    let f = shopper(&app, &m, "kd-2", 900);
    let (_, r) = issue(&app, &m, &f, "konbini", Some("ministop")).await;
    assert_eq!(r.status(), 303);
    let p = payment(&app, "kd-2").await;
    let kid = p.connector_ref.clone().unwrap();
    let r = app
        .client
        .post(format!("{}/api/v1/payments/{kid}/cancel", fake.base))
        .basic_auth(FAKE_SECRET_KEY, None::<&str>)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let cancelled: Value = r.json().await.unwrap();
    assert_eq!(cancelled["status"], "cancelled");
    let ev = fake.event("payment.cancelled", &cancelled).to_string();
    let (status, answer) = fake
        .deliver(&hook_url(&app, &account), WEBHOOK_SECRET, &ev)
        .await;
    assert_eq!((status, answer["result"].as_str()), (200, Some("applied")));
    assert_eq!(payment(&app, "kd-2").await.status.code(), "expired");
    assert_eq!(app.checkout_status(&m, "kd-2").await, "pending");
}
both_komoju!(komoju_deadline_drives_our_expiry_sweep);

/// Flows, routes and the rest reach KOMOJU only through the registry: no module outside
/// `connectors/` names a KOMOJU connector type.
#[test]
fn only_the_registry_builds_komoju_connectors() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut offenders = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let rel = p
                .strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            if rel.starts_with("connectors/") {
                continue;
            }
            let text = std::fs::read_to_string(&p).unwrap();
            for name in ["KomojuDriver", "KomojuNumber", "KomojuApi"] {
                if text.contains(name) {
                    offenders.push(format!("{rel}: {name}"));
                }
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "KOMOJU types named outside connectors/: {offenders:?}"
    );
}

/// Issue 16 item 4 with KOMOJU: changing the store cancels the unpaid payment at KOMOJU first
/// (`POST /api/v1/payments/{id}/cancel`), then records it; a payment KOMOJU has captured
/// meanwhile is not cancelled and the number stays.
async fn komoju_number_withdrawn_at_komoju_first(app: TestApp, fake: KomojuFake) {
    let (m, account) = live_merchant(&app).await;
    let f = shopper(&app, &m, "km-chg", 2100);
    let (path, r) = issue(&app, &m, &f, "konbini", Some("lawson")).await;
    assert_eq!(r.status(), 303);
    let p = payment(&app, "km-chg").await;
    let kid = p.connector_ref.clone().unwrap();
    let body = app.get(&path, UA_PC).await.text().await.unwrap();
    let token_path = path.trim_end_matches("/konbini").to_owned();
    let change = format!("{token_path}/number/change");
    let r = app
        .post_form(&change, UA_PC, &[("csrf", &hidden(&body, "csrf"))])
        .await;
    assert_eq!(r.status(), 303);
    assert!(fake
        .requests()
        .contains(&format!("POST /api/v1/payments/{kid}/cancel")));
    assert_eq!(fake.payment(&kid)["status"], "cancelled");
    let p = kakehashi::db::payments::get(&app.db, &p.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(p.status.code(), "cancelled");
    assert_eq!(
        outbox_types(&app, &p.id).await,
        ["konbini.issued", "payment.cancelled"]
    );
    assert_eq!(app.checkout_status(&m, "km-chg").await, "open");
    // KOMOJU's own payment.cancelled webhook that follows changes nothing more.
    let ev = fake
        .event("payment.cancelled", &fake.payment(&kid))
        .to_string();
    let (status, _) = fake
        .deliver(&hook_url(&app, &account), WEBHOOK_SECRET, &ev)
        .await;
    assert_eq!(status, 200);
    assert_eq!(outbox_types(&app, &p.id).await.len(), 2);

    // A second number, paid at the store before the shopper asks to change: kept.
    let (_, r) = issue(&app, &m, &f, "konbini", Some("seven")).await;
    assert_eq!(r.status(), 303);
    let id2 = app
        .scalar_str(
            "SELECT id FROM payments WHERE order_id = 'km-chg' AND status = 'awaiting_payment'",
        )
        .await
        .unwrap();
    let p2 = kakehashi::db::payments::get(&app.db, &id2)
        .await
        .unwrap()
        .unwrap();
    fake.set_status(p2.connector_ref.as_deref().unwrap(), "captured");
    let body = app.get(&path, UA_PC).await.text().await.unwrap();
    let r = app
        .post_form(&change, UA_PC, &[("csrf", &hidden(&body, "csrf"))])
        .await;
    assert_eq!(r.status(), 200);
    let page = r.text().await.unwrap();
    assert!(page.contains("このお支払番号は変更できません"), "{page}");
    let p2 = kakehashi::db::payments::get(&app.db, &id2)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        p2.status.code(),
        "awaiting_payment",
        "the webhook will bring the payment"
    );
    assert_eq!(app.checkout_status(&m, "km-chg").await, "pending");
}
both_komoju!(komoju_number_withdrawn_at_komoju_first);
