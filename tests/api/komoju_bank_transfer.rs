//! KOMOJU bank transfer (銀行振込) end to end against the contract fake: the 振込先 KOMOJU
//! issued on our number page (PC, smartphone, feature phone), webhooks (paid, duplicate, out
//! of order), cancel through KOMOJU, refunds refused, and the write-before-call issue: a KOMOJU
//! failure leaves no half number, the checkout reopenable, and a retry under the same
//! idempotency key.

use kakehashi::domain::processor::Processor;
use kakehashi::domain::{Method, Mode};
use kakehashi::flows::processors::{self, AccountInput};
use serde_json::json;

use crate::helpers::*;
use crate::komoju::komoju_app;
use crate::komoju_fake::{CreateFault, KomojuFake, FAKE_SECRET_KEY};

const WEBHOOK_SECRET: &str = "whsec_komoju_bt";

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

/// A live merchant whose bank transfers go through a KOMOJU account; returns the account id.
async fn live_merchant(app: &TestApp) -> (TestMerchant, String) {
    let m = app.merchant().await;
    let account = processors::add(
        &app.db,
        &app.state.connectors,
        &m.id,
        AccountInput {
            processor: Processor::Komoju,
            mode: Mode::Live,
            methods: vec![Method::Konbini, Method::BankTransfer],
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
    assert!(offered.contains(&Method::BankTransfer), "{offered:?}");
    (m, account)
}

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

fn is_fp(ua: &str) -> bool {
    ua == UA_DOCOMO || ua == UA_AU || ua == UA_SOFTBANK
}

/// A page's text (feature-phone pages are Shift_JIS).
async fn text(r: reqwest::Response, ua: &str) -> (u16, String) {
    let status = r.status().as_u16();
    let bytes = r.bytes().await.unwrap();
    if is_fp(ua) {
        let (t, _, errors) = encoding_rs::SHIFT_JIS.decode(&bytes);
        assert!(!errors, "valid Shift_JIS");
        assert!(bytes.len() < 10 * 1024, "feature phone page < 10 KB");
        (status, t.into_owned())
    } else {
        (status, String::from_utf8(bytes.to_vec()).unwrap())
    }
}

fn location(r: &reqwest::Response) -> String {
    r.headers()["location"].to_str().unwrap().to_owned()
}

/// Opens the link on `ua`, picks bank transfer, confirms; returns (method path, POST answer).
async fn start(
    app: &TestApp,
    m: &TestMerchant,
    f: &[(String, String)],
    ua: &str,
) -> (String, reqwest::Response) {
    let (status, body) = text(app.get(&app.link(m, f), ua).await, ua).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("銀行振込"), "offered on the selector: {body}");
    let r = app
        .post_form(
            &action(&body),
            ua,
            &[
                ("csrf", &hidden(&body, "csrf")),
                ("method", "bank_transfer"),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);
    let path = location(&r);
    assert!(path.ends_with("/bank_transfer"), "{path}");
    let (status, form) = text(app.get(&path, ua).await, ua).await;
    assert_eq!(status, 200, "{form}");
    assert!(form.contains("振込先を発行する"), "{form}");
    let r = app
        .post_form(&path, ua, &[("csrf", &hidden(&form, "csrf"))])
        .await;
    (path, r)
}

/// The value shown for an account line on a PC / smartphone number page.
fn acct(body: &str, key: &str) -> String {
    let needle = format!("id=\"acct-{key}\">");
    let i = body
        .find(&needle)
        .unwrap_or_else(|| panic!("no {key} in {body}"))
        + needle.len();
    body[i..].split('<').next().unwrap().to_owned()
}

async fn payment(app: &TestApp, order: &str) -> kakehashi::db::payments::PaymentRow {
    let id = app
        .scalar_str(&format!(
            "SELECT id FROM payments WHERE order_id = '{order}' ORDER BY created_at DESC, id LIMIT 1"
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

fn creates(fake: &KomojuFake) -> usize {
    fake.requests()
        .iter()
        .filter(|r| *r == "POST /api/v1/payments")
        .count()
}

/// The 振込先 KOMOJU issued is what the shopper sees on PC, smartphone and feature phone,
/// with the amount and KOMOJU's deadline; `payment.captured` makes it paid (once), and a paid
/// transfer cannot be refunded through the API (KOMOJU refunds cash methods only by a manual
/// refund request: docs/komoju.md §7).
async fn komoju_bank_transfer_on_every_device_then_paid(app: TestApp, fake: KomojuFake) {
    let (m, account) = live_merchant(&app).await;
    let f = shopper(&app, &m, "bt-1", 123_456);
    let (path, r) = start(&app, &m, &f, UA_PC).await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), path);
    let p = payment(&app, "bt-1").await;
    assert_eq!(
        (p.status.code(), p.connector.as_str()),
        ("awaiting_payment", account.as_str())
    );
    let kid = p.connector_ref.clone().expect("KOMOJU payment id");
    let kp = fake.payment(&kid);
    let d = &kp["payment_details"];
    assert_eq!(d["type"], "bank_transfer");
    assert_eq!(d["email"], "taro@example.jp");
    assert_eq!(kp["external_order_num"], json!(p.id));
    assert_eq!(
        fake.idempotency_key_of(&kid).as_deref(),
        Some(p.id.as_str())
    );

    let (status, body) = text(app.get(&path, UA_PC).await, UA_PC).await;
    assert_eq!(status, 200);
    assert_eq!(acct(&body, "bank_name"), d["bank_name"].as_str().unwrap());
    assert_eq!(
        acct(&body, "branch_name"),
        d["account_branch_name"].as_str().unwrap()
    );
    assert_eq!(acct(&body, "account_type"), "普通");
    assert_eq!(
        acct(&body, "account_number"),
        d["account_number"].as_str().unwrap()
    );
    assert_eq!(
        acct(&body, "account_holder"),
        d["account_name"].as_str().unwrap()
    );
    assert!(body.contains("123,456"), "the amount");
    assert!(body.contains("銀行振込でのお支払い"));
    assert!(body.contains(d["instructions_url"].as_str().unwrap()));
    // KOMOJU's deadline is the one stored (and shown).
    let deadline = time::OffsetDateTime::parse(
        kp["payment_deadline"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert_eq!(
        p.deadline_at,
        Some((deadline.unix_timestamp_nanos() / 1_000_000) as i64)
    );

    // Smartphone: reopening the link shows the same account.
    let (status, sp) = text(app.get(&app.link(&m, &f), UA_IPHONE).await, UA_IPHONE).await;
    assert_eq!(status, 200);
    assert_eq!(
        acct(&sp, "account_number"),
        d["account_number"].as_str().unwrap()
    );
    // Feature phone: the lines as label:<br>value<br>, in Shift_JIS.
    let (status, fp) = text(app.get(&path, UA_DOCOMO).await, UA_DOCOMO).await;
    assert_eq!(status, 200);
    for (label, v) in [
        ("銀行名", d["bank_name"].as_str().unwrap()),
        ("支店名", d["account_branch_name"].as_str().unwrap()),
        ("口座番号", d["account_number"].as_str().unwrap()),
        ("口座名義", d["account_name"].as_str().unwrap()),
    ] {
        assert!(
            fp.contains(&format!("{label}:<br>{v}<br>")),
            "{label} on the feature phone: {fp}"
        );
    }
    assert_eq!(creates(&fake), 1, "one KOMOJU payment");

    // The transfer arrives: KOMOJU captures and sends the webhook.
    let captured = fake.set_status(&kid, "captured");
    let ev = fake.event("payment.captured", &captured).to_string();
    let (status, answer) = fake
        .deliver(&hook_url(&app, &account), WEBHOOK_SECRET, &ev)
        .await;
    assert_eq!((status, answer["result"].as_str()), (200, Some("applied")));
    let p = payment(&app, "bt-1").await;
    assert_eq!(p.status.code(), "paid");
    assert_eq!(app.checkout_status(&m, "bt-1").await, "paid");
    assert_eq!(
        outbox_types(&app, &p.id).await,
        ["bank_transfer.issued", "bank_transfer.paid"]
    );
    let (status, answer) = fake
        .deliver(&hook_url(&app, &account), WEBHOOK_SECRET, &ev)
        .await;
    assert_eq!(
        (status, answer["result"].as_str()),
        (200, Some("duplicate"))
    );
    let (_, paid_page) = text(app.get(&path, UA_PC).await, UA_PC).await;
    assert!(paid_page.contains("お支払いを確認しました"));

    // A refund through the API is refused and changes nothing (nor calls KOMOJU).
    let key = app.api_key(&m).await;
    let r = app
        .api_post(
            &format!("/api/v1/payments/{}/refund", p.id),
            &key,
            json!({ "amount": 123_456 }),
        )
        .await;
    assert!((400..500).contains(&r.status), "{} {}", r.status, r.json);
    assert_eq!(payment(&app, "bt-1").await.status.code(), "paid");
    assert!(!fake.requests().iter().any(|r| r.ends_with("/refund")));
}
both_komoju!(komoju_bank_transfer_on_every_device_then_paid);

/// Out of order: `payment.expired` expires the account; a `payment.captured` that still
/// arrives (the transfer reached KOMOJU) makes it paid after all; a stale `payment.cancelled`
/// then changes nothing.
async fn komoju_bank_transfer_expired_then_captured(app: TestApp, fake: KomojuFake) {
    let (m, account) = live_merchant(&app).await;
    let f = shopper(&app, &m, "bt-2", 5000);
    let (_, r) = start(&app, &m, &f, UA_IPHONE).await;
    assert_eq!(r.status(), 303);
    let p = payment(&app, "bt-2").await;
    let kid = p.connector_ref.clone().unwrap();
    let url = hook_url(&app, &account);
    let expired = fake.set_status(&kid, "expired");
    let ev = fake.event("payment.expired", &expired).to_string();
    let (status, answer) = fake.deliver(&url, WEBHOOK_SECRET, &ev).await;
    assert_eq!((status, answer["result"].as_str()), (200, Some("applied")));
    assert_eq!(payment(&app, "bt-2").await.status.code(), "expired");
    let captured = fake.set_status(&kid, "captured");
    let ev = fake.event("payment.captured", &captured).to_string();
    let (status, _) = fake.deliver(&url, WEBHOOK_SECRET, &ev).await;
    assert_eq!(status, 200);
    assert_eq!(payment(&app, "bt-2").await.status.code(), "paid");
    let ev = fake.event("payment.cancelled", &expired).to_string();
    let (status, answer) = fake.deliver(&url, WEBHOOK_SECRET, &ev).await;
    assert_eq!(
        (status, answer["result"].as_str()),
        (200, Some("no_change"))
    );
    assert_eq!(
        outbox_types(&app, &p.id).await,
        [
            "bank_transfer.issued",
            "payment.expired",
            "bank_transfer.paid"
        ]
    );
}
both_komoju!(komoju_bank_transfer_expired_then_captured);

/// The merchant cancels an unpaid transfer through the API: KOMOJU cancels it first, then the
/// payment expires here; asking again is refused and changes nothing.
async fn komoju_bank_transfer_cancel_reaches_komoju(app: TestApp, fake: KomojuFake) {
    let (m, _) = live_merchant(&app).await;
    let f = shopper(&app, &m, "bt-3", 9800);
    let (_, r) = start(&app, &m, &f, UA_PC).await;
    assert_eq!(r.status(), 303);
    let p = payment(&app, "bt-3").await;
    let kid = p.connector_ref.clone().unwrap();
    let key = app.api_key(&m).await;
    let r = app
        .api_post(
            &format!("/api/v1/payments/{}/cancel", p.id),
            &key,
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.json);
    assert_eq!(r.json["status"], "expired");
    assert_eq!(fake.payment(&kid)["status"], "cancelled");
    assert!(fake
        .requests()
        .contains(&format!("POST /api/v1/payments/{kid}/cancel")));
    let r = app
        .api_post(
            &format!("/api/v1/payments/{}/cancel", p.id),
            &key,
            json!({}),
        )
        .await;
    assert_eq!((r.status, r.code()), (409, "invalid_transition"));
    assert_eq!(
        outbox_types(&app, &p.id).await,
        ["bank_transfer.issued", "payment.expired"]
    );
}
both_komoju!(komoju_bank_transfer_cancel_reaches_komoju);

/// Write before the call. KOMOJU refusing: the payment is `issue_failed` (no account shown
/// anywhere), the shopper sees the branded page with the code, and the checkout is open again.
/// KOMOJU creating the payment but its answer lost: the payment stays `issuing` (nothing shown
/// as payable, a "try again" button); the retry sends the same Idempotency-Key, KOMOJU answers
/// with the payment it made, and that account is the one shown: one KOMOJU payment, never two.
async fn komoju_issue_failures_leave_no_half_number(app: TestApp, fake: KomojuFake) {
    let (m, _) = live_merchant(&app).await;
    let f = shopper(&app, &m, "bt-4", 7000);
    fake.fail_next_creates(&[CreateFault::Refuse]);
    let (_, r) = start(&app, &m, &f, UA_PC).await;
    assert_eq!(r.status(), 503);
    let body = r.text().await.unwrap();
    assert_eq!(error_code(&body), "komoju_rejected");
    assert!(!body.contains("acct-account_number"));
    let failed = payment(&app, "bt-4").await;
    assert_eq!(failed.status.code(), "issue_failed");
    assert_eq!(failed.connector_ref, None);
    assert_eq!(app.checkout_status(&m, "bt-4").await, "open");
    assert_eq!(outbox_types(&app, &failed.id).await, ["payment.failed"]);

    // Reopenable: the shopper chooses again; this time KOMOJU's answer is lost.
    fake.fail_next_creates(&[CreateFault::LoseAnswer]);
    let (path, r) = start(&app, &m, &f, UA_PC).await;
    assert_eq!(r.status(), 503);
    let body = r.text().await.unwrap();
    assert!(body.contains("id=\"retry-number\""), "{body}");
    assert!(
        !body.contains("acct-account_number"),
        "nothing payable shown"
    );
    let p = payment(&app, "bt-4").await;
    assert_ne!(p.id, failed.id);
    assert_eq!(p.status.code(), "issuing");
    assert_eq!(app.checkout_status(&m, "bt-4").await, "pending");
    let kid = fake.last_payment_id().unwrap();
    assert_eq!(
        fake.idempotency_key_of(&kid).as_deref(),
        Some(p.id.as_str())
    );
    let before = creates(&fake);
    // Reloading the page shows the unfinished issue, not an account.
    let (status, page) = text(app.get(&path, UA_PC).await, UA_PC).await;
    assert_eq!(status, 200);
    assert!(page.contains("data-status=\"issuing\""), "{page}");
    assert!(!page.contains("acct-account_number"));

    // Try again: same key, KOMOJU returns the payment it made.
    let r = app
        .post_form(
            &action_of(&page, "/number/retry"),
            UA_PC,
            &[("csrf", &hidden(&page, "csrf"))],
        )
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), path);
    assert_eq!(creates(&fake), before + 1, "asked once more");
    assert_eq!(
        fake.payment_count(),
        1,
        "one KOMOJU payment: the refused create made none"
    );
    let p = payment(&app, "bt-4").await;
    assert_eq!(p.status.code(), "awaiting_payment");
    assert_eq!(p.connector_ref.as_deref(), Some(kid.as_str()));
    let (_, page) = text(app.get(&path, UA_PC).await, UA_PC).await;
    assert_eq!(
        acct(&page, "account_number"),
        fake.payment(&kid)["payment_details"]["account_number"]
            .as_str()
            .unwrap()
    );
    assert_eq!(outbox_types(&app, &p.id).await, ["bank_transfer.issued"]);
}
both_komoju!(komoju_issue_failures_leave_no_half_number);

/// KOMOJU down (nothing created there): the payment stays `issuing`; the shopper may give up
/// ("change method"), which fails it without calling KOMOJU and reopens the checkout.
async fn komoju_down_then_shopper_changes_method(app: TestApp, fake: KomojuFake) {
    let (m, _) = live_merchant(&app).await;
    let f = shopper(&app, &m, "bt-5", 7000);
    fake.fail_next_creates(&[CreateFault::Down]);
    let (path, r) = start(&app, &m, &f, UA_PC).await;
    assert_eq!(r.status(), 503);
    assert_eq!(payment(&app, "bt-5").await.status.code(), "issuing");
    assert_eq!(fake.payment_count(), 0);
    let (_, page) = text(app.get(&path, UA_PC).await, UA_PC).await;
    let r = app
        .post_form(
            &action_of(&page, "/number/change"),
            UA_PC,
            &[("csrf", &hidden(&page, "csrf"))],
        )
        .await;
    assert_eq!(r.status(), 303);
    let p = payment(&app, "bt-5").await;
    assert_eq!(p.status.code(), "issue_failed");
    assert_eq!(app.checkout_status(&m, "bt-5").await, "open");
    assert!(!fake.requests().iter().any(|r| r.ends_with("/cancel")));
    let (status, selector) = app.open(&m, &f, UA_PC).await;
    assert_eq!(status, 200);
    assert!(selector.contains("value=\"bank_transfer\""), "reopened");
}
both_komoju!(komoju_down_then_shopper_changes_method);

/// The last event of a payment: its new status, data and actor.
async fn last_event(app: &TestApp, payment_id: &str) -> (String, serde_json::Value, String) {
    let (to, data, actor): (String, String, String) = kakehashi::on_db!(&app.db, c => sqlx::query_as(
        "SELECT to_status, data, actor FROM payment_events WHERE payment_id = $1 ORDER BY id DESC LIMIT 1",
    )
    .bind(payment_id)
    .fetch_one(c)
    .await)
    .unwrap();
    (to, serde_json::from_str(&data).unwrap(), actor)
}

/// KOMOJU made the payment but its answer was lost, and the shopper left without retrying: the
/// issuing sweep leaves it alone while the shopper may still retry, then asks KOMOJU again
/// under the same Idempotency-Key, records the account KOMOJU made (its event and
/// notification), and the reopened link shows it. One KOMOJU payment, never two.
async fn komoju_stuck_issue_is_finished_by_the_sweep(app: TestApp, fake: KomojuFake) {
    use kakehashi::flows::konbini::{resume_issuing, ISSUE_RETRY_AFTER_MS};
    let (m, _) = live_merchant(&app).await;
    let f = shopper(&app, &m, "bt-s1", 6400);
    fake.fail_next_creates(&[CreateFault::LoseAnswer]);
    let (path, r) = start(&app, &m, &f, UA_PC).await;
    assert_eq!(r.status(), 503);
    let p = payment(&app, "bt-s1").await;
    assert_eq!(p.status.code(), "issuing");
    let kid = fake.last_payment_id().unwrap();
    let before = creates(&fake);

    // Too soon: a shopper still on the page retries by themselves.
    let soon = p.updated_at + ISSUE_RETRY_AFTER_MS - 1;
    assert_eq!(
        resume_issuing(&app.db, &app.state.connectors, soon)
            .await
            .unwrap(),
        0
    );
    assert_eq!(creates(&fake), before, "KOMOJU not asked yet");
    assert_eq!(payment(&app, "bt-s1").await.status.code(), "issuing");

    let later = p.updated_at + ISSUE_RETRY_AFTER_MS + 1;
    assert_eq!(
        resume_issuing(&app.db, &app.state.connectors, later)
            .await
            .unwrap(),
        1
    );
    assert_eq!(creates(&fake), before + 1);
    assert_eq!(fake.payment_count(), 1, "the same KOMOJU payment");
    assert_eq!(
        fake.idempotency_key_of(&kid).as_deref(),
        Some(p.id.as_str())
    );
    let p = payment(&app, "bt-s1").await;
    assert_eq!(p.status.code(), "awaiting_payment");
    assert_eq!(p.connector_ref.as_deref(), Some(kid.as_str()));
    assert_eq!(last_event(&app, &p.id).await.2, "system:sweep");
    assert_eq!(outbox_types(&app, &p.id).await, ["bank_transfer.issued"]);
    assert_eq!(app.checkout_status(&m, "bt-s1").await, "pending");
    let (status, page) = text(app.get(&path, UA_PC).await, UA_PC).await;
    assert_eq!(status, 200);
    assert_eq!(
        acct(&page, "account_number"),
        fake.payment(&kid)["payment_details"]["account_number"]
            .as_str()
            .unwrap()
    );
    // Done: the next sweep finds nothing and asks nobody.
    assert_eq!(
        resume_issuing(&app.db, &app.state.connectors, later + 60_000)
            .await
            .unwrap(),
        0
    );
    assert_eq!(creates(&fake), before + 1);
}
both_komoju!(komoju_stuck_issue_is_finished_by_the_sweep);

/// KOMOJU stays down: the sweep keeps the payment `issuing` while it may still answer, then
/// gives up after `ISSUE_GIVE_UP_MS` (`issue_failed`, code `issue_timeout`, `payment.failed`
/// notified, the checkout open for another method). A KOMOJU refusal seen by the sweep is
/// recorded as `issue_failed` with KOMOJU's code at once.
async fn komoju_unanswered_issue_is_given_up(app: TestApp, fake: KomojuFake) {
    use kakehashi::flows::konbini::{resume_issuing, ISSUE_GIVE_UP_MS, ISSUE_RETRY_AFTER_MS};
    let (m, _) = live_merchant(&app).await;
    let f = shopper(&app, &m, "bt-s2", 7100);
    fake.fail_next_creates(&[CreateFault::Down, CreateFault::Down, CreateFault::Down]);
    let (_, r) = start(&app, &m, &f, UA_PC).await;
    assert_eq!(r.status(), 503);
    let p = payment(&app, "bt-s2").await;
    assert_eq!(p.status.code(), "issuing");

    let retry = p.updated_at + ISSUE_RETRY_AFTER_MS + 1;
    assert_eq!(
        resume_issuing(&app.db, &app.state.connectors, retry)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        payment(&app, "bt-s2").await.status.code(),
        "issuing",
        "still hoping"
    );
    assert_eq!(outbox_types(&app, &p.id).await, Vec::<String>::new());

    let late = p.created_at + ISSUE_GIVE_UP_MS + 1;
    assert_eq!(
        resume_issuing(&app.db, &app.state.connectors, late)
            .await
            .unwrap(),
        1
    );
    let failed = payment(&app, "bt-s2").await;
    assert_eq!(failed.status.code(), "issue_failed");
    assert_eq!(failed.connector_ref, None);
    let (to, data, actor) = last_event(&app, &failed.id).await;
    assert_eq!(
        (to.as_str(), actor.as_str()),
        ("issue_failed", "system:sweep")
    );
    assert_eq!(data["code"], "issue_timeout");
    assert_eq!(outbox_types(&app, &failed.id).await, ["payment.failed"]);
    assert_eq!(app.checkout_status(&m, "bt-s2").await, "open");
    assert_eq!(fake.payment_count(), 0);
    let (status, selector) = app.open(&m, &f, UA_PC).await;
    assert_eq!(status, 200);
    assert!(selector.contains("value=\"bank_transfer\""), "reopened");

    // Down, then refused when the sweep asks again: recorded at once with KOMOJU's code.
    let f = shopper(&app, &m, "bt-s3", 7200);
    fake.fail_next_creates(&[CreateFault::Down, CreateFault::Refuse]);
    let (_, r) = start(&app, &m, &f, UA_PC).await;
    assert_eq!(r.status(), 503);
    let p = payment(&app, "bt-s3").await;
    let retry = p.updated_at + ISSUE_RETRY_AFTER_MS + 1;
    assert_eq!(
        resume_issuing(&app.db, &app.state.connectors, retry)
            .await
            .unwrap(),
        1
    );
    let refused = payment(&app, "bt-s3").await;
    assert_eq!(refused.status.code(), "issue_failed");
    assert_eq!(
        last_event(&app, &refused.id).await.1["code"],
        "komoju_rejected"
    );
    assert_eq!(app.checkout_status(&m, "bt-s3").await, "open");
}
both_komoju!(komoju_unanswered_issue_is_given_up);

/// A cancel is claimed as a pending operation before KOMOJU is called: while one is in
/// flight another is refused (nothing sent to KOMOJU), and one whose outcome was never
/// recorded (the server stopped after claiming) is finished by the operations sweep, asking
/// KOMOJU under the same key and expiring the payment once.
async fn komoju_cancel_is_claimed_first_and_resumed(app: TestApp, fake: KomojuFake) {
    use kakehashi::db::operations::{self, OpKind};
    let (m, _) = live_merchant(&app).await;
    let f = shopper(&app, &m, "bt-6", 2500);
    let (_, r) = start(&app, &m, &f, UA_PC).await;
    assert_eq!(r.status(), 303);
    let p = payment(&app, "bt-6").await;
    let kid = p.connector_ref.clone().unwrap();
    let now = app.state.now_ms();
    let op = operations::claim(&app.db, &p.id, OpKind::Cancel, None, "api", now)
        .await
        .unwrap()
        .expect("claimed");
    let key = app.api_key(&m).await;
    let r = app
        .api_post(
            &format!("/api/v1/payments/{}/cancel", p.id),
            &key,
            json!({}),
        )
        .await;
    assert_eq!((r.status, r.code()), (409, "operation_in_progress"));
    assert!(!fake.requests().iter().any(|r| r.ends_with("/cancel")));
    assert_eq!(
        payment(&app, "bt-6").await.status.code(),
        "awaiting_payment"
    );

    let later = now + kakehashi::flows::card::RESUME_AFTER_MS + 1;
    let n = kakehashi::flows::card::resume_operations(&app.db, &app.state.connectors, later)
        .await
        .unwrap();
    assert_eq!(n, 1, "operation {op} finished");
    assert_eq!(fake.payment(&kid)["status"], "cancelled");
    let p = payment(&app, "bt-6").await;
    assert_eq!(p.status.code(), "expired");
    assert_eq!(
        outbox_types(&app, &p.id).await,
        ["bank_transfer.issued", "payment.expired"]
    );
    // Nothing left pending: a second sweep finds nothing.
    let n = kakehashi::flows::card::resume_operations(&app.db, &app.state.connectors, later)
        .await
        .unwrap();
    assert_eq!(n, 0);
}
both_komoju!(komoju_cancel_is_claimed_first_and_resumed);

/// The form whose action ends with `suffix`.
fn action_of(body: &str, suffix: &str) -> String {
    body.match_indices("action=\"")
        .map(|(i, _)| body[i + 8..].split('"').next().unwrap().to_owned())
        .find(|a| a.ends_with(suffix))
        .unwrap_or_else(|| panic!("no form {suffix} in {body}"))
}
