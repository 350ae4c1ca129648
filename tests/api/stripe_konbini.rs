//! Konbini through Stripe (issue 14, item 7), end to end against the contract fake
//! (`stripe_konbini_fake.rs`, built from Stripe's API reference: localstripe has no `konbini`
//! payment method): a merchant whose Stripe account serves konbini is offered the four chains
//! Stripe serves, gets Stripe's numbers per chain on our number page (PC, smartphone, feature
//! phone), and Stripe's signed `payment_intent.*` events — read back from Stripe, applied once,
//! forward only — make the payment paid; expiry, withdrawal and refusals as for every number.

use kakehashi::connectors::stripe::{sign, StripeSettings};
use kakehashi::domain::processor::Processor;
use kakehashi::domain::{Method, Mode};
use kakehashi::flows::processors::{self, AccountInput};
use serde_json::Value;

use crate::helpers::*;
use crate::stripe_konbini_fake::{StripeKonbiniFake, FAKE_SK};

const PK: &str = "pk_test_konbini_fake_0123456789";
const WHSEC: &str = "whsec_konbini_fake_secret";

async fn konbini_app(backend: Backend) -> Option<(TestApp, StripeKonbiniFake)> {
    let fake = StripeKonbiniFake::start().await;
    let settings = StripeSettings {
        api_base: fake.base.clone(),
        js_url: format!("{}/js.stripe.com/v3/", fake.base),
    };
    let app = spawn_app_full(
        backend,
        |c| {
            c.master_key = Some(kakehashi::config::Redacted(TEST_MASTER_KEY.into()));
            c.stripe = settings;
        },
        Vec::new(),
    )
    .await?;
    Some((app, fake))
}

macro_rules! both_konbini {
    ($name:ident) => {
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                let (app, fake) = super::konbini_app($crate::helpers::Backend::Sqlite)
                    .await
                    .unwrap();
                super::$name(app, fake).await;
            }
            #[tokio::test]
            async fn postgres() {
                if let Some((app, fake)) =
                    super::konbini_app($crate::helpers::Backend::Postgres).await
                {
                    super::$name(app, fake).await;
                }
            }
        }
    };
}

/// A test-mode merchant whose konbini goes through a Stripe test account; returns the
/// account id.
async fn stripe_konbini_merchant(app: &TestApp) -> (TestMerchant, String) {
    let m = app.merchant().await;
    let a = processors::add(
        &app.db,
        &app.state.connectors,
        &m.id,
        AccountInput {
            processor: Processor::Stripe,
            mode: Mode::Test,
            methods: vec![Method::Konbini],
            secret_key: FAKE_SK.into(),
            publishable_key: Some(PK.into()),
            webhook_secret: Some(WHSEC.into()),
        },
        app.state.now_ms(),
    )
    .await
    .unwrap();
    (m, a.id)
}

/// Link fields with the shopper's name, email and phone (Stripe needs name and email).
fn shopper(app: &TestApp, m: &TestMerchant, order: &str, amount: i64) -> Vec<(String, String)> {
    app.fields(
        m,
        order,
        amount,
        &[
            ("shopper_email", "hanako@example.jp"),
            ("shopper_phone", "090-1234-5678"),
            ("shopper_name", "佐藤 花子"),
        ],
    )
}

/// Opens the link on `ua`, picks konbini; returns (konbini page path, its body).
async fn konbini_page(
    app: &TestApp,
    m: &TestMerchant,
    f: &[(String, String)],
    ua: &str,
) -> (String, String) {
    let (status, body) = app.open(m, f, ua).await;
    assert_eq!(status, 200, "{body}");
    let r = app
        .post_form(
            &action(&body),
            ua,
            &[("csrf", &hidden(&body, "csrf")), ("method", "konbini")],
        )
        .await;
    assert_eq!(r.status(), 303);
    let path = location(&r);
    let body = app.get(&path, ua).await.text().await.unwrap();
    (path, body)
}

/// Issues a number at `chain`; returns (konbini page path, POST response).
async fn issue(
    app: &TestApp,
    m: &TestMerchant,
    f: &[(String, String)],
    chain: &str,
) -> (String, reqwest::Response) {
    let (path, body) = konbini_page(app, m, f, UA_PC).await;
    let csrf = hidden(&body, "csrf");
    let r = app
        .post_form(
            &path,
            UA_PC,
            &[("csrf", csrf.as_str()), ("chain", chain), ("confirm", "1")],
        )
        .await;
    (path, r)
}

/// The shown value of a number field (digits are grouped in spans).
fn num(body: &str, key: &str) -> String {
    let needle = format!("id=\"num-{key}\">");
    let i = body
        .find(&needle)
        .unwrap_or_else(|| panic!("no {key} in {body}"))
        + needle.len();
    let end = ["<button", "</dd>", "<br"]
        .iter()
        .filter_map(|t| body[i..].find(t))
        .min()
        .map_or(body.len(), |e| i + e);
    let mut out = String::new();
    let mut in_tag = false;
    for ch in body[i..end].chars() {
        match ch {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag && c.is_ascii_digit() => out.push(c),
            _ => {}
        }
    }
    out
}

async fn payment(app: &TestApp, order: &str) -> kakehashi::db::payments::PaymentRow {
    let id = app
        .scalar_str(&format!(
            "SELECT id FROM payments WHERE order_id = '{order}' ORDER BY created_at DESC"
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

/// Posts an event to the account's Stripe endpoint, signed like Stripe with `secret` at the
/// app's clock. Returns (status, body).
async fn deliver(app: &TestApp, account: &str, ev: &Value, secret: &str) -> (u16, Value) {
    let payload = ev.to_string();
    let sig = sign(
        secret.as_bytes(),
        payload.as_bytes(),
        app.state.now_ms() / 1000,
    );
    let r = app
        .client
        .post(format!("{}/webhooks/stripe/{account}", app.base))
        .header("content-type", "application/json")
        .header("stripe-signature", sig)
        .body(payload)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

fn field<'a>(f: &'a [(String, String)], k: &str) -> Option<&'a str> {
    f.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
}

/// Lawson through Stripe: only Stripe's chains are offered; the PaymentIntent is created with
/// our payment id, deadline and idempotency key; the page shows Stripe's payment code and
/// confirmation number (PC, smartphone, feature phone) and its voucher link; the signed
/// `payment_intent.succeeded` makes it paid once; a duplicate, an older event arriving late and
/// a bad signature change nothing.
async fn stripe_konbini_issue_and_paid(app: TestApp, fake: StripeKonbiniFake) {
    let (m, account) = stripe_konbini_merchant(&app).await;
    let f = shopper(&app, &m, "sk-1", 3200);
    // Stripe serves FamilyMart, Lawson, Ministop and Seicomart: the others are not offered.
    let (_, body) = konbini_page(&app, &m, &f, UA_PC).await;
    for served in ["lawson", "famima", "ministop", "seicomart"] {
        assert!(body.contains(&format!("value=\"{served}\"")), "{served}");
    }
    for not in ["seven", "daily"] {
        assert!(!body.contains(&format!("value=\"{not}\"")), "{not}: {body}");
    }
    // A chain Stripe does not serve, posted anyway: refused, nothing sent to Stripe.
    let (_, r) = issue(&app, &m, &f, "seven").await;
    assert!(r.text().await.unwrap().contains("chain_not_available"));
    assert!(fake.creates().is_empty());

    let (path, r) = issue(&app, &m, &f, "lawson").await;
    assert_eq!(r.status(), 303);
    let p = payment(&app, "sk-1").await;
    assert_eq!(
        (p.status.code(), p.connector.as_str()),
        ("awaiting_payment", account.as_str())
    );
    let pi_id = p.connector_ref.clone().expect("PaymentIntent id");
    let creates = fake.creates();
    assert_eq!(creates.len(), 1);
    let (key, form) = &creates[0];
    assert_eq!(
        key.as_deref(),
        Some(format!("kakehashi-konbini-{}", p.id).as_str())
    );
    assert_eq!(field(form, "payment_method_types[]"), Some("konbini"));
    assert_eq!(field(form, "amount"), Some("3200"));
    assert_eq!(
        field(form, "metadata[kakehashi_payment_id]"),
        Some(p.id.as_str())
    );
    assert_eq!(
        field(form, "payment_method_data[billing_details][email]"),
        Some("hanako@example.jp")
    );
    assert_eq!(
        field(form, "payment_method_options[konbini][confirmation_number]"),
        Some("09012345678")
    );
    let pi = fake.intent(&pi_id);
    let details = &pi["next_action"]["konbini_display_details"];
    // Stripe's deadline is ours (sent as `expires_at`).
    assert_eq!(
        p.deadline_at,
        Some(details["expires_at"].as_i64().unwrap() * 1000)
    );
    let lawson = &details["stores"]["lawson"];
    let voucher = details["hosted_voucher_url"].as_str().unwrap();
    let (code, confirmation) = (
        lawson["payment_code"].as_str().unwrap(),
        lawson["confirmation_number"].as_str().unwrap(),
    );
    for ua in [UA_PC, UA_IPHONE] {
        let body = app.get(&path, ua).await.text().await.unwrap();
        assert_eq!(num(&body, "customer_no"), code, "{ua}");
        assert_eq!(num(&body, "confirm_no"), confirmation, "{ua}");
        let shown = body.replace("&#x2f;", "/");
        assert!(shown.contains(voucher), "voucher link on {ua}");
    }
    // Feature phones (Shift_JIS page): the same numbers, as plain text.
    let fp = app.get(&path, UA_DOCOMO).await.bytes().await.unwrap();
    let fp = String::from_utf8_lossy(&fp);
    assert!(fp.contains(&format!("<br>{code}<br>")), "{fp}");
    assert!(fp.contains(&format!("<br>{confirmation}<br>")), "{fp}");
    // Reopening issues nothing more.
    app.get(&path, UA_PC).await;
    assert_eq!(fake.creates().len(), 1);
    let waiting = fake.intent(&pi_id);

    // Paid at the store: Stripe's signed event; the outcome is read back from Stripe.
    let paid = fake.pay(&pi_id);
    let ev = fake.event("evt_paid_1", "payment_intent.succeeded", &paid);
    let (s, a) = deliver(&app, &account, &ev, WHSEC).await;
    assert_eq!((s, a["result"].as_str()), (200, Some("applied")), "{a}");
    let p = payment(&app, "sk-1").await;
    assert_eq!(p.status.code(), "paid");
    assert_eq!(
        p.paid_at,
        Some(paid["latest_charge"]["created"].as_i64().unwrap() * 1000)
    );
    assert_eq!(app.checkout_status(&m, "sk-1").await, "paid");
    assert_eq!(
        outbox_types(&app, &p.id).await,
        ["konbini.issued", "konbini.paid"]
    );
    assert!(fake
        .requests()
        .contains(&format!("GET /v1/payment_intents/{pi_id}")));
    // The same delivery again: acknowledged once.
    let (s, a) = deliver(&app, &account, &ev, WHSEC).await;
    assert_eq!((s, a["result"].as_str()), (200, Some("duplicate")));
    // An older event arriving late (its body still says "waiting"): nothing moves back.
    let late = fake.event("evt_late_0", "payment_intent.requires_action", &waiting);
    let (s, _) = deliver(&app, &account, &late, WHSEC).await;
    assert_eq!(s, 200);
    // A bad signature: refused, nothing recorded.
    let forged = fake.event("evt_forged", "payment_intent.canceled", &waiting);
    let (s, a) = deliver(&app, &account, &forged, "whsec_wrong").await;
    assert_eq!(
        (s, a["error"]["code"].as_str()),
        (400, Some("signature_invalid"))
    );
    let p = payment(&app, "sk-1").await;
    assert_eq!(p.status.code(), "paid");
    assert_eq!(outbox_types(&app, &p.id).await.len(), 2);
}
both_konbini!(stripe_konbini_issue_and_paid);

/// Expiry: our sweep expires an unpaid Stripe number at the deadline Stripe was given, and
/// Stripe's own cancellation at `expires_at` that follows changes nothing; when Stripe's event
/// comes first, it expires the number. Seicomart shows Stripe's payment code as 受付番号.
/// Without the shopper's email Stripe is not called.
async fn stripe_konbini_expiry(app: TestApp, fake: StripeKonbiniFake) {
    let (m, account) = stripe_konbini_merchant(&app).await;
    let f = shopper(&app, &m, "sk-2", 1500);
    let (path, r) = issue(&app, &m, &f, "seicomart").await;
    assert_eq!(r.status(), 303);
    let p = payment(&app, "sk-2").await;
    let pi_id = p.connector_ref.clone().unwrap();
    let stores = fake.intent(&pi_id)["next_action"]["konbini_display_details"]["stores"].clone();
    let body = app.get(&path, UA_PC).await.text().await.unwrap();
    assert_eq!(
        num(&body, "receipt_no"),
        stores["seicomart"]["payment_code"].as_str().unwrap()
    );
    let deadline = p.deadline_at.unwrap();
    assert_eq!(
        kakehashi::flows::konbini::expire_due(&app.db, deadline)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        kakehashi::flows::konbini::expire_due(&app.db, deadline + 1)
            .await
            .unwrap(),
        1
    );
    let p = payment(&app, "sk-2").await;
    assert_eq!(p.status.code(), "expired");
    let canceled = fake.expire(&pi_id);
    let ev = fake.event("evt_exp_2", "payment_intent.canceled", &canceled);
    let (s, _) = deliver(&app, &account, &ev, WHSEC).await;
    assert_eq!(s, 200);
    assert_eq!(
        outbox_types(&app, &p.id).await,
        ["konbini.issued", "payment.expired"]
    );

    // Stripe's cancellation at expiry arrives before our sweep: the number expires.
    let f = shopper(&app, &m, "sk-3", 1500);
    let (_, r) = issue(&app, &m, &f, "famima").await;
    assert_eq!(r.status(), 303);
    let p = payment(&app, "sk-3").await;
    let canceled = fake.expire(p.connector_ref.as_deref().unwrap());
    let ev = fake.event("evt_exp_3", "payment_intent.canceled", &canceled);
    let (s, a) = deliver(&app, &account, &ev, WHSEC).await;
    assert_eq!((s, a["result"].as_str()), (200, Some("applied")));
    let p = payment(&app, "sk-3").await;
    assert_eq!(p.status.code(), "expired");
    // As for every expired number, the checkout stays pending (a late payment may still come).
    assert_eq!(app.checkout_status(&m, "sk-3").await, "pending");
    assert_eq!(
        outbox_types(&app, &p.id).await,
        ["konbini.issued", "payment.expired"]
    );

    // No email: Stripe needs one; nothing is sent, nothing is stored.
    let f = app.fields(&m, "sk-4", 1500, &[("shopper_name", "佐藤 花子")]);
    let before = fake.creates().len();
    let (_, r) = issue(&app, &m, &f, "lawson").await;
    assert!(r.text().await.unwrap().contains("stripe_email_required"));
    assert_eq!(fake.creates().len(), before);
    assert!(app
        .scalar_str("SELECT id FROM payments WHERE order_id = 'sk-4'")
        .await
        .is_none());
}
both_konbini!(stripe_konbini_expiry);

/// Withdrawal (the shopper changes store): the PaymentIntent is cancelled at Stripe first,
/// then the payment; one paid at Stripe meanwhile is kept, and its event makes it paid.
async fn stripe_konbini_cancel(app: TestApp, fake: StripeKonbiniFake) {
    let (m, account) = stripe_konbini_merchant(&app).await;
    let f = shopper(&app, &m, "sk-5", 2100);
    let (path, r) = issue(&app, &m, &f, "ministop").await;
    assert_eq!(r.status(), 303);
    let p = payment(&app, "sk-5").await;
    let pi_id = p.connector_ref.clone().unwrap();
    let body = app.get(&path, UA_PC).await.text().await.unwrap();
    let change = format!("{}/number/change", path.trim_end_matches("/konbini"));
    let r = app
        .post_form(&change, UA_PC, &[("csrf", &hidden(&body, "csrf"))])
        .await;
    assert_eq!(r.status(), 303);
    assert!(fake
        .requests()
        .contains(&format!("POST /v1/payment_intents/{pi_id}/cancel")));
    assert_eq!(fake.intent(&pi_id)["status"], "canceled");
    let p = payment(&app, "sk-5").await;
    assert_eq!(p.status.code(), "cancelled");
    assert_eq!(
        outbox_types(&app, &p.id).await,
        ["konbini.issued", "payment.cancelled"]
    );
    assert_eq!(app.checkout_status(&m, "sk-5").await, "open");
    // Stripe's own `payment_intent.canceled` that follows changes nothing more.
    let ev = fake.event("evt_cxl_5", "payment_intent.canceled", &fake.intent(&pi_id));
    let (s, _) = deliver(&app, &account, &ev, WHSEC).await;
    assert_eq!(s, 200);
    assert_eq!(outbox_types(&app, &p.id).await.len(), 2);

    // A second number, paid at the store before the shopper asks to change: kept.
    let (_, r) = issue(&app, &m, &f, "lawson").await;
    assert_eq!(r.status(), 303);
    let p2 = payment(&app, "sk-5").await;
    assert_eq!(p2.status.code(), "awaiting_payment");
    let pi2 = p2.connector_ref.clone().unwrap();
    let paid = fake.pay(&pi2);
    let body = app.get(&path, UA_PC).await.text().await.unwrap();
    let r = app
        .post_form(&change, UA_PC, &[("csrf", &hidden(&body, "csrf"))])
        .await;
    assert_eq!(r.status(), 200);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("このお支払番号は変更できません"));
    assert_eq!(
        payment(&app, "sk-5").await.status.code(),
        "awaiting_payment"
    );
    let ev = fake.event("evt_paid_5", "payment_intent.succeeded", &paid);
    let (s, a) = deliver(&app, &account, &ev, WHSEC).await;
    assert_eq!((s, a["result"].as_str()), (200, Some("applied")));
    assert_eq!(payment(&app, "sk-5").await.status.code(), "paid");
    assert_eq!(app.checkout_status(&m, "sk-5").await, "paid");
}
both_konbini!(stripe_konbini_cancel);
