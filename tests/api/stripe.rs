//! The Stripe connector against localstripe (a Stripe API stand-in started per test on
//! loopback): the card page creates the PaymentIntent through our endpoint, the test confirms
//! it the way Stripe.js would (payment method, confirm, 3-D Secure), and our server learns the
//! outcome only by retrieving the intent. Capture, refund, webhooks, the sweep, feature phones.
//!
//! localstripe missing fails these tests unless `KAKEHASHI_SKIP_LOCALSTRIPE=1`.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use kakehashi::connectors::stripe::{sign, StripeSettings};
use kakehashi::domain::processor::Processor;
use kakehashi::domain::{Method, Mode};
use kakehashi::flows::processors::{self, AccountInput};
use serde_json::{json, Value};

use crate::helpers::*;
use crate::stripe_installments::{InstallmentsProxy, PAN_JP};

pub(crate) const SK: &str = "sk_test_kakehashi_0123456789";
const PK: &str = "pk_test_kakehashi_0123456789";
const WHSEC: &str = "whsec_kakehashi_test_secret";
pub(crate) const PAN: &str = "4242424242424242";
const PAN_3DS: &str = "4000002500003155";
const PAN_DECLINED: &str = "4000000000000341";

/// A localstripe process on a free loopback port, killed when dropped.
pub struct LocalStripe {
    pub url: String,
    child: Child,
    http: reqwest::Client,
}

impl Drop for LocalStripe {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl LocalStripe {
    /// Starts localstripe and waits until it answers. `None` only when it is not installed
    /// and the run set `KAKEHASHI_SKIP_LOCALSTRIPE=1`.
    pub async fn start() -> Option<LocalStripe> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = match Command::new("localstripe")
            .args(["--port", &port.to_string(), "--from-scratch"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        {
            Ok(c) => c,
            Err(e) => {
                skip_or_fail(
                    Service::Localstripe,
                    &format!("localstripe cannot be started ({e})"),
                    "pip install localstripe",
                );
                return None;
            }
        };
        let ls = LocalStripe {
            url: format!("http://127.0.0.1:{port}"),
            child,
            http: reqwest::Client::new(),
        };
        for _ in 0..200 {
            let ready = ls
                .http
                .get(format!("{}/v1/payment_intents", ls.url))
                .bearer_auth(SK)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                return Some(ls);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("localstripe did not start on port {port}");
    }

    /// A call with the secret key, as Stripe.js's backend counterpart would make it.
    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.url))
            .bearer_auth(SK)
            .form(form)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }

    pub async fn get(&self, path: &str) -> Value {
        self.http
            .get(format!("{}{path}", self.url))
            .bearer_auth(SK)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// What Stripe.js does with the card the shopper typed into Elements: a PaymentMethod,
    /// attached to the intent, and the intent confirmed. Returns the confirm status and body.
    pub async fn confirm_with_card(&self, intent: &str, pan: &str) -> (u16, Value) {
        let year = future_exp_year_full().to_string();
        let (s, pm) = self
            .post(
                "/v1/payment_methods",
                &[
                    ("type", "card"),
                    ("card[number]", pan),
                    ("card[exp_month]", "12"),
                    ("card[exp_year]", &year),
                    ("card[cvc]", "123"),
                ],
            )
            .await;
        assert_eq!(s, 200, "{pm}");
        let pm = pm["id"].as_str().unwrap();
        let (s, b) = self
            .post(
                &format!("/v1/payment_intents/{intent}"),
                &[("payment_method", pm)],
            )
            .await;
        assert_eq!(s, 200, "{b}");
        self.post(&format!("/v1/payment_intents/{intent}/confirm"), &[])
            .await
    }

    /// The shopper completes (or fails) 3-D Secure in Stripe.js's modal: public key only.
    pub async fn authenticate(&self, intent: &str, client_secret: &str, success: bool) -> Value {
        let r = self
            .http
            .post(format!(
                "{}/v1/payment_intents/{intent}/_authenticate?success={success}",
                self.url
            ))
            .json(&json!({ "key": PK, "client_secret": client_secret }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        r.json().await.unwrap()
    }
}

/// The app with its Stripe driver pointed at a fresh localstripe.
async fn stripe_app(backend: Backend) -> Option<(TestApp, LocalStripe)> {
    let ls = LocalStripe::start().await?;
    let app = app_on(backend, &ls, &ls.url.clone()).await?;
    Some((app, ls))
}

/// The app with Stripe's API at `api` (localstripe, or a proxy in front of it) and Stripe.js
/// from localstripe.
pub(crate) async fn app_on(backend: Backend, ls: &LocalStripe, api: &str) -> Option<TestApp> {
    let settings = StripeSettings {
        api_base: api.to_owned(),
        js_url: format!("{}/js.stripe.com/v3/", ls.url),
    };
    spawn_app_full(
        backend,
        |c| {
            c.master_key = Some(kakehashi::config::Redacted(TEST_MASTER_KEY.into()));
            c.stripe = settings;
        },
        Vec::new(),
    )
    .await
}

macro_rules! both_stripe {
    ($name:ident) => {
        mod $name {
            use $crate::helpers::Backend;
            #[tokio::test]
            async fn sqlite() {
                if let Some((app, ls)) = super::stripe_app(Backend::Sqlite).await {
                    super::$name(app, ls).await;
                }
            }
            #[tokio::test]
            async fn postgres() {
                if let Some((app, ls)) = super::stripe_app(Backend::Postgres).await {
                    super::$name(app, ls).await;
                }
            }
        }
    };
}

/// A test-mode merchant whose cards go through a Stripe test account. Returns it and the
/// account id.
async fn stripe_merchant(app: &TestApp, capture: &str) -> (TestMerchant, String) {
    stripe_merchant_with(app, capture, "lump,inst3,inst6,bonus,revo").await
}

/// As [`stripe_merchant`], with the merchant's card options (`lump,inst3,…`).
pub(crate) async fn stripe_merchant_with(
    app: &TestApp,
    capture: &str,
    options: &str,
) -> (TestMerchant, String) {
    let capture = capture.to_owned();
    let options = options.to_owned();
    let m = app
        .merchant_with(|n| {
            n.capture_mode = capture;
            n.card_options = options;
        })
        .await;
    let a = processors::add(
        &app.db,
        &app.state.connectors,
        &m.id,
        AccountInput {
            processor: Processor::Stripe,
            mode: Mode::Test,
            methods: vec![Method::Card],
            secret_key: SK.into(),
            publishable_key: Some(PK.into()),
            webhook_secret: Some(WHSEC.into()),
        },
        app.state.now_ms(),
    )
    .await
    .unwrap();
    (m, a.id)
}

/// `data-name="…"` of the Elements form.
pub(crate) fn data(body: &str, name: &str) -> String {
    let needle = format!("data-{name}=\"");
    let i = body
        .find(&needle)
        .unwrap_or_else(|| panic!("no data-{name} in {body}"))
        + needle.len();
    body[i..].split('"').next().unwrap().replace("&#x2f;", "/")
}

/// The card page: what the shopper's browser loads. Returns (page path, csrf).
async fn card_page(
    app: &TestApp,
    ls: &LocalStripe,
    m: &TestMerchant,
    order: &str,
) -> (String, String) {
    let path = app.choose(m, order, 1000, "card", UA_PC).await;
    let r = app.get(&path, UA_PC).await;
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    let body = r.text().await.unwrap();
    // Stripe.js from the configured URL, our own script, and no card field of ours.
    assert!(
        body.contains(&format!("src=\"{}/js.stripe.com/v3/\"", ls.url)),
        "{body}"
    );
    assert!(body.contains("src=\"/js/card-elements.js?v="), "{body}");
    assert!(!body.contains("name=\"number\"") && !body.contains("name=\"cvc\""));
    assert_eq!(data(&body, "key"), PK);
    // The page's CSP lists the processor's origin, and nothing inline.
    assert!(
        csp.contains(&format!("script-src 'self' {}", ls.url)),
        "{csp}"
    );
    assert!(
        csp.contains(&format!("connect-src 'self' {}", ls.url)),
        "{csp}"
    );
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    (path, data(&body, "csrf"))
}

/// Asks our server for the intent, as our script does on submit. Returns (intent id, secret).
async fn create_intent(app: &TestApp, path: &str, csrf: &str) -> (String, String) {
    let r = app
        .post_form(&format!("{path}/intent"), UA_PC, &[("csrf", csrf)])
        .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    let secret = v["client_secret"].as_str().unwrap().to_owned();
    let intent = secret.split("_secret_").next().unwrap().to_owned();
    assert!(intent.starts_with("pi_"), "{secret}");
    (intent, secret)
}

pub(crate) async fn payment_of(app: &TestApp, order: &str) -> kakehashi::db::payments::PaymentRow {
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

async fn outbox_types(app: &TestApp, payment: &str) -> Vec<String> {
    kakehashi::on_db!(&app.db, c => sqlx::query_scalar(
        "SELECT type FROM outbox WHERE payment_id = $1 ORDER BY seq",
    )
    .bind(payment)
    .fetch_all(c)
    .await)
    .unwrap()
}

/// Authorize through Stripe (manual capture), then a partial capture and a partial refund
/// through the API; no card number ever reaches our server, its logs or its database.
async fn stripe_authorize_capture_refund(app: TestApp, ls: LocalStripe) {
    let (m, account) = stripe_merchant(&app, "manual").await;
    let (path, csrf) = card_page(&app, &ls, &m, "st-1").await;
    let (intent, _secret) = create_intent(&app, &path, &csrf).await;
    let p = payment_of(&app, "st-1").await;
    assert_eq!(p.status.code(), "awaiting_3ds");
    assert_eq!(p.connector, account);
    assert_eq!(p.connector_ref.as_deref(), Some(intent.as_str()));
    // The intent as our server created it.
    let pi = ls.get(&format!("/v1/payment_intents/{intent}")).await;
    assert_eq!(pi["amount"], 1000);
    assert_eq!(pi["currency"], "jpy");
    assert_eq!(pi["capture_method"], "manual");
    assert_eq!(pi["metadata"]["kakehashi_payment_id"], p.id.as_str());
    assert_eq!(pi["metadata"]["kakehashi_order_id"], "st-1");

    // Stripe.js confirms; the browser is sent back to our return URL.
    let (s, b) = ls.confirm_with_card(&intent, PAN).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["status"], "requires_capture");
    let r = app.get(&format!("{path}/return"), UA_PC).await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), format!("{path}/result"));
    let p = payment_of(&app, "st-1").await;
    assert_eq!(p.status.code(), "authorized");
    assert_eq!(app.checkout_status(&m, "st-1").await, "paid");
    let d = p.details_json();
    assert_eq!(d["last4"], "4242");
    assert_eq!(d["card_entry"], "browser");
    assert_eq!(outbox_types(&app, &p.id).await, vec!["payment.authorized"]);
    let page = app.get(&format!("{path}/result"), UA_PC).await;
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("4242"));
    // Returning again changes nothing.
    app.get(&format!("{path}/return"), UA_PC).await;
    assert_eq!(outbox_types(&app, &p.id).await.len(), 1);

    // Partial capture and partial refund through the API reach Stripe.
    let key = app.api_key(&m).await;
    let c = app
        .api_post(
            &format!("/api/v1/payments/{}/capture", p.id),
            &key,
            json!({ "amount": 800 }),
        )
        .await;
    assert_eq!(c.status, 200, "{}", c.json);
    assert_eq!(c.json["status"], "captured");
    assert_eq!(c.json["captured_amount"], 800);
    let pi = ls
        .get(&format!(
            "/v1/payment_intents/{intent}?expand[]=latest_charge"
        ))
        .await;
    assert_eq!(pi["status"], "succeeded");
    assert_eq!(pi["latest_charge"]["captured"], true);
    let r = app
        .api_post(
            &format!("/api/v1/payments/{}/refund", p.id),
            &key,
            json!({ "amount": 300 }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.json);
    assert_eq!(r.json["refunded_amount"], 300);
    assert_eq!(r.json["status"], "captured");
    let refunds = ls
        .get(&format!("/v1/refunds?payment_intent={intent}"))
        .await;
    let amounts: Vec<i64> = refunds["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["amount"].as_i64().unwrap())
        .collect();
    assert!(amounts.contains(&300), "{refunds}");
    // Refunding more than is left is refused by our state machine before Stripe is asked.
    let r = app
        .api_post(
            &format!("/api/v1/payments/{}/refund", p.id),
            &key,
            json!({ "amount": 501 }),
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.json);
    assert_eq!(
        outbox_types(&app, &p.id).await,
        vec!["payment.authorized", "payment.captured", "payment.refunded"]
    );

    // The card number went to Stripe only.
    assert!(!logs().contains(PAN));
    for table in [
        "payments",
        "payment_events",
        "outbox",
        "checkouts",
        "processor_events",
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
        assert!(!dump.iter().any(|v| v.contains(PAN)), "{table}");
    }
}
both_stripe!(stripe_authorize_capture_refund);

/// Automatic capture with a 3-D Secure card: the return before authentication changes nothing
/// (the page is shown again); after it, the payment is authorized and captured.
async fn stripe_three_ds_auto_capture(app: TestApp, ls: LocalStripe) {
    let (m, _) = stripe_merchant(&app, "auto").await;
    let (path, csrf) = card_page(&app, &ls, &m, "st-3ds").await;
    let (intent, secret) = create_intent(&app, &path, &csrf).await;
    let pi = ls.get(&format!("/v1/payment_intents/{intent}")).await;
    assert_eq!(pi["capture_method"], "automatic");
    let (s, b) = ls.confirm_with_card(&intent, PAN_3DS).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["status"], "requires_action");
    // The browser claims to be done before authenticating: the server asks Stripe and waits.
    let r = app.get(&format!("{path}/return"), UA_PC).await;
    assert_eq!(r.status(), 200);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("お支払いは完了していません"));
    assert_eq!(
        payment_of(&app, "st-3ds").await.status.code(),
        "awaiting_3ds"
    );
    // A reload of the page reuses the same intent.
    let (again, _) = create_intent(&app, &path, &csrf).await;
    assert_eq!(again, intent);
    ls.authenticate(&intent, &secret, true).await;
    let r = app.get(&format!("{path}/return"), UA_PC).await;
    assert_eq!(r.status(), 303);
    let p = payment_of(&app, "st-3ds").await;
    assert_eq!(p.status.code(), "captured");
    assert_eq!(p.captured_amount, 1000);
    assert!(p.paid_at.is_some());
    assert_eq!(
        outbox_types(&app, &p.id).await,
        vec!["payment.authorized", "payment.captured"]
    );
}
both_stripe!(stripe_three_ds_auto_capture);

/// A declined card: the payment fails with the reason, its intent is cancelled at Stripe (its
/// client secret cannot pay later), and the shopper may try again with a new payment.
async fn stripe_decline_then_retry(app: TestApp, ls: LocalStripe) {
    let (m, _) = stripe_merchant(&app, "auto").await;
    let (path, csrf) = card_page(&app, &ls, &m, "st-dec").await;
    let (intent, _) = create_intent(&app, &path, &csrf).await;
    let (s, b) = ls.confirm_with_card(&intent, PAN_DECLINED).await;
    assert_eq!(s, 402, "{b}");
    let r = app.get(&format!("{path}/return"), UA_PC).await;
    assert_eq!(r.status(), 303);
    let r = app.get(&location(&r), UA_PC).await;
    assert_eq!(r.status(), 402);
    let body = r.text().await.unwrap();
    // The card page again, with the reason.
    assert!(body.contains("card-elements-form"), "{body}");
    assert!(
        body.contains("このカードはご利用いただけませんでした"),
        "{body}"
    );
    let failed = payment_of(&app, "st-dec").await;
    assert_eq!(failed.status.code(), "failed");
    let events = kakehashi::db::payments::events(&app.db, &failed.id)
        .await
        .unwrap();
    assert_eq!(events.last().unwrap().kind, "payment.failed");
    let pi = ls.get(&format!("/v1/payment_intents/{intent}")).await;
    assert_eq!(pi["status"], "canceled");
    // Another card: a new payment with a new intent.
    let (second, _) = create_intent(&app, &path, &csrf).await;
    assert_ne!(second, intent);
    let (s, _) = ls.confirm_with_card(&second, PAN).await;
    assert_eq!(s, 200);
    app.get(&format!("{path}/return"), UA_PC).await;
    assert_eq!(payment_of(&app, "st-dec").await.status.code(), "captured");
    assert_eq!(app.checkout_status(&m, "st-dec").await, "paid");
}
both_stripe!(stripe_decline_then_retry);

async fn post_event(
    app: &TestApp,
    account: &str,
    body: &Value,
    sig: Option<String>,
) -> (u16, Value) {
    let payload = body.to_string();
    let sig = sig.unwrap_or_else(|| sign(WHSEC.as_bytes(), payload.as_bytes(), now_s()));
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

fn event(id: &str, kind: &str, intent: &str) -> Value {
    json!({
        "id": id,
        "object": "event",
        "type": kind,
        "created": now_s(),
        "data": { "object": { "id": intent, "object": "payment_intent" } }
    })
}

async fn event_count(app: &TestApp, payment: &str) -> usize {
    kakehashi::db::payments::events(&app.db, payment)
        .await
        .unwrap()
        .len()
}

/// Webhooks: a valid event settles the payment (the shopper never came back); bad signature,
/// replayed timestamp and unknown account are refused with nothing changed; a duplicate and a
/// late, out-of-order event change nothing; an unknown type is acknowledged.
async fn stripe_webhooks(app: TestApp, ls: LocalStripe) {
    let (m, account) = stripe_merchant(&app, "manual").await;
    let (path, csrf) = card_page(&app, &ls, &m, "st-wh").await;
    let (intent, _) = create_intent(&app, &path, &csrf).await;
    let (s, _) = ls.confirm_with_card(&intent, PAN).await;
    assert_eq!(s, 200);
    let p = payment_of(&app, "st-wh").await;
    assert_eq!(p.status.code(), "awaiting_3ds");
    let ev = event("evt_1", "payment_intent.amount_capturable_updated", &intent);

    // Bad signature, stale timestamp, unknown account: refused, nothing applied.
    let payload = ev.to_string();
    let wrong = sign(b"whsec_wrong", payload.as_bytes(), now_s());
    let (s, b) = post_event(&app, &account, &ev, Some(wrong)).await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (400, Some("signature_invalid"))
    );
    let old = sign(WHSEC.as_bytes(), payload.as_bytes(), now_s() - 301);
    let (s, b) = post_event(&app, &account, &ev, Some(old)).await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (400, Some("signature_expired"))
    );
    let (s, b) = post_event(&app, &account, &ev, Some(String::new())).await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (400, Some("signature_malformed"))
    );
    let (s, _) = post_event(&app, "pa_nope", &ev, None).await;
    assert_eq!(s, 404);
    assert_eq!(app.payment_status(&p.id).await, "awaiting_3ds");
    assert_eq!(app.count("processor_events").await, 0);

    // Valid: the intent is retrieved and the authorization recorded, with its notification.
    let (s, b) = post_event(&app, &account, &ev, None).await;
    assert_eq!((s, b["result"].as_str()), (200, Some("applied")), "{b}");
    assert_eq!(app.payment_status(&p.id).await, "authorized");
    assert_eq!(outbox_types(&app, &p.id).await, vec!["payment.authorized"]);
    let events = event_count(&app, &p.id).await;
    // Delivered again: acknowledged, not applied.
    let (s, b) = post_event(&app, &account, &ev, None).await;
    assert_eq!((s, b["result"].as_str()), (200, Some("duplicate")));
    assert_eq!(event_count(&app, &p.id).await, events);

    // Captured through the API, then a late event from before the capture arrives: no step
    // back.
    let key = app.api_key(&m).await;
    let c = app
        .api_post(
            &format!("/api/v1/payments/{}/capture", p.id),
            &key,
            json!({}),
        )
        .await;
    assert_eq!(c.status, 200, "{}", c.json);
    let events = event_count(&app, &p.id).await;
    let late = event("evt_0", "payment_intent.amount_capturable_updated", &intent);
    let (s, b) = post_event(&app, &account, &late, None).await;
    assert_eq!((s, b["result"].as_str()), (200, Some("applied")));
    assert_eq!(app.payment_status(&p.id).await, "captured");
    assert_eq!(event_count(&app, &p.id).await, events);

    // A type we do not act on is acknowledged and ignored.
    let other = json!({"id": "evt_2", "type": "customer.created", "created": now_s(),
        "data": {"object": {"id": "cus_1", "object": "customer"}}});
    let (s, b) = post_event(&app, &account, &other, None).await;
    assert_eq!((s, b["result"].as_str()), (200, Some("ignored")));
    assert_eq!(app.count("processor_events").await, 3);
}
both_stripe!(stripe_webhooks);

/// A decline reported only by an event (the browser never came back): the payment fails, the
/// intent is cancelled at Stripe so the same client secret cannot be tried with other cards,
/// and the failure counts towards the checkout's card-testing limit.
async fn stripe_webhook_decline(app: TestApp, ls: LocalStripe) {
    let (m, account) = stripe_merchant(&app, "auto").await;
    let (path, csrf) = card_page(&app, &ls, &m, "st-whd").await;
    let (intent, _) = create_intent(&app, &path, &csrf).await;
    let (s, _) = ls.confirm_with_card(&intent, PAN_DECLINED).await;
    assert_eq!(s, 402);
    let ev = event("evt_d", "payment_intent.payment_failed", &intent);
    let (s, b) = post_event(&app, &account, &ev, None).await;
    assert_eq!((s, b["result"].as_str()), (200, Some("applied")), "{b}");
    let p = payment_of(&app, "st-whd").await;
    assert_eq!(p.status.code(), "failed");
    assert_eq!(outbox_types(&app, &p.id).await, vec!["payment.failed"]);
    let pi = ls.get(&format!("/v1/payment_intents/{intent}")).await;
    assert_eq!(pi["status"], "canceled");
    assert_eq!(app.count("card_attempts").await, 1);
    // The browser's late return changes nothing and counts nothing more.
    app.get(&format!("{path}/return"), UA_PC).await;
    assert_eq!(app.count("card_attempts").await, 1);
}
both_stripe!(stripe_webhook_decline);

/// localstripe's own signed delivery: with automatic capture, the shopper never returns and
/// the `payment_intent.succeeded` event alone records the captured payment.
async fn stripe_webhook_from_localstripe(app: TestApp, ls: LocalStripe) {
    let (m, account) = stripe_merchant(&app, "auto").await;
    let hook = format!("{}/webhooks/stripe/{account}", app.base);
    let (s, _) = {
        let r = reqwest::Client::new()
            .post(format!("{}/_config/webhooks/kakehashi", ls.url))
            .form(&[("url", hook.as_str()), ("secret", WHSEC)])
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), ())
    };
    assert_eq!(s, 200);
    let (path, csrf) = card_page(&app, &ls, &m, "st-ls").await;
    let (intent, _) = create_intent(&app, &path, &csrf).await;
    let (s, _) = ls.confirm_with_card(&intent, PAN).await;
    assert_eq!(s, 200);
    let id = payment_of(&app, "st-ls").await.id;
    eventually("the event settles the payment", || {
        let app = &app;
        let id = id.clone();
        async move { (app.payment_status(&id).await == "captured").then_some(()) }
    })
    .await;
    assert_eq!(app.checkout_status(&m, "st-ls").await, "paid");
}
both_stripe!(stripe_webhook_from_localstripe);

/// The sweep: an intent nobody confirmed is cancelled at Stripe after the TTL and the payment
/// fails; one paid while nobody came back is recorded.
async fn stripe_sweep_reconciles(app: TestApp, ls: LocalStripe) {
    let (m, _) = stripe_merchant(&app, "manual").await;
    let (path, csrf) = card_page(&app, &ls, &m, "st-ab").await;
    let (abandoned, _) = create_intent(&app, &path, &csrf).await;
    let (path2, csrf2) = card_page(&app, &ls, &m, "st-paid").await;
    let (paid, _) = create_intent(&app, &path2, &csrf2).await;
    ls.confirm_with_card(&paid, PAN).await;
    let registry = app.state.connectors.clone();
    let now = kakehashi::util::now_ms();
    // Within the TTL: the paid one is recorded, the abandoned one left alone.
    let n = kakehashi::flows::client_card::reconcile(&app.db, &registry, now + 61_000)
        .await
        .unwrap();
    assert_eq!(n, 1);
    assert_eq!(
        payment_of(&app, "st-paid").await.status.code(),
        "authorized"
    );
    assert_eq!(
        payment_of(&app, "st-ab").await.status.code(),
        "awaiting_3ds"
    );
    // Between the second minute and the TTL Stripe is not asked.
    let n = kakehashi::flows::client_card::reconcile(&app.db, &registry, now + 5 * 60_000)
        .await
        .unwrap();
    assert_eq!(n, 0);
    // After the TTL: cancelled at Stripe, failed here.
    let n = kakehashi::flows::client_card::reconcile(&app.db, &registry, now + 16 * 60_000)
        .await
        .unwrap();
    assert_eq!(n, 1);
    let p = payment_of(&app, "st-ab").await;
    assert_eq!(p.status.code(), "failed");
    assert_eq!(p.details_json()["failure"], "challenge_expired");
    let pi = ls.get(&format!("/v1/payment_intents/{abandoned}")).await;
    assert_eq!(pi["status"], "canceled");
    // The sandbox's reconciliation leaves browser payments alone.
    kakehashi::flows::card::reconcile_stale(&app.db, &registry, now + 16 * 60_000)
        .await
        .unwrap();
    assert_eq!(
        payment_of(&app, "st-paid").await.status.code(),
        "authorized"
    );
}
both_stripe!(stripe_sweep_reconciles);

/// Feature phones are not offered Stripe's card form (it needs a modern browser) and get a
/// clear note; card data posted to our form endpoint is refused unread; other pages keep the
/// strict CSP.
async fn stripe_feature_phones_and_form_posts(app: TestApp, ls: LocalStripe) {
    let (m, _) = stripe_merchant(&app, "auto").await;
    let f = app.fields(&m, "st-fp", 1000, &[]);
    let r = app.get(&app.link(&m, &f), UA_DOCOMO).await;
    assert_eq!(r.status(), 200);
    let body = sjis_text(r).await;
    assert!(!body.contains("value=\"card\""), "{body}");
    assert!(
        body.contains("クレジットカード決済はこの端末ではご利用いただけません"),
        "{body}"
    );
    let path = app.choose(&m, "st-pc", 1000, "card", UA_PC).await;
    let r = app.get(&path, UA_DOCOMO).await;
    let body = sjis_text(r).await;
    assert!(
        body.contains("この端末ではクレジットカードをご利用いただけません"),
        "{body}"
    );
    assert!(!body.contains("js.stripe.com"));

    // A PC page keeps the standard CSP except on the card page.
    let r = app
        .get(&format!("/pay/{}", path.split('/').nth(2).unwrap()), UA_PC)
        .await;
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(!csp.contains(&ls.url), "{csp}");
    let (path, csrf) = card_page(&app, &ls, &m, "st-post").await;
    let year = future_exp_year();
    let r = app
        .post_form(
            &path,
            UA_PC,
            &[
                ("csrf", &csrf),
                ("number", PAN),
                ("exp_month", "12"),
                ("exp_year", &year),
                ("cvc", "123"),
            ],
        )
        .await;
    assert_eq!(r.status(), 400);
    assert_eq!(app.count("payments").await, 0);

    // A Stripe card account without its publishable key is refused, nothing stored.
    let before = app.count("processor_accounts").await;
    let err = processors::add(
        &app.db,
        &app.state.connectors,
        &m.id,
        AccountInput {
            processor: Processor::Stripe,
            mode: Mode::Live,
            methods: vec![Method::Card],
            secret_key: SK.into(),
            publishable_key: Some("  ".into()),
            webhook_secret: None,
        },
        app.state.now_ms(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, processors::ProcessorError::MissingPublishableKey),
        "{err}"
    );
    // Test keys on a live account (it would take no money), or the reverse: refused.
    for (mode, sk, pk) in [
        (Mode::Live, SK, "pk_live_x"),
        (Mode::Test, "sk_live_x", PK),
        (Mode::Test, SK, "pk_live_x"),
    ] {
        let err = processors::add(
            &app.db,
            &app.state.connectors,
            &m.id,
            AccountInput {
                processor: Processor::Stripe,
                mode,
                methods: vec![Method::Card],
                secret_key: sk.into(),
                publishable_key: Some(pk.into()),
                webhook_secret: None,
            },
            app.state.now_ms(),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(err, processors::ProcessorError::StripeKeyMode(_)),
            "{err}"
        );
    }
    assert_eq!(app.count("processor_accounts").await, before);
}

/// 取消 through Stripe: an authorization is cancelled (the hold released), a captured sale is
/// refunded in full.
async fn stripe_cancel(app: TestApp, ls: LocalStripe) {
    let (m, _) = stripe_merchant(&app, "manual").await;
    let key = app.api_key(&m).await;
    for (order, capture_first) in [("st-c1", false), ("st-c2", true)] {
        let (path, csrf) = card_page(&app, &ls, &m, order).await;
        let (intent, _) = create_intent(&app, &path, &csrf).await;
        ls.confirm_with_card(&intent, PAN).await;
        app.get(&format!("{path}/return"), UA_PC).await;
        let p = payment_of(&app, order).await;
        assert_eq!(p.status.code(), "authorized");
        if capture_first {
            let c = app
                .api_post(
                    &format!("/api/v1/payments/{}/capture", p.id),
                    &key,
                    json!({}),
                )
                .await;
            assert_eq!(c.status, 200, "{}", c.json);
        }
        let c = app
            .api_post(
                &format!("/api/v1/payments/{}/cancel", p.id),
                &key,
                json!({}),
            )
            .await;
        assert_eq!(c.status, 200, "{}", c.json);
        assert_eq!(c.json["status"], "cancelled");
        let pi = ls
            .get(&format!(
                "/v1/payment_intents/{intent}?expand[]=latest_charge"
            ))
            .await;
        if capture_first {
            assert_eq!(pi["status"], "succeeded");
            assert_eq!(pi["latest_charge"]["refunded"], true, "{pi}");
        } else {
            assert_eq!(pi["status"], "canceled");
        }
    }
}
both_stripe!(stripe_cancel);
both_stripe!(stripe_feature_phones_and_form_posts);

/// The request creating the intent was cut off after the payment was written: the next submit
/// asks Stripe again with the same idempotency key and records the intent, instead of leaving
/// the checkout stuck behind a payment without one.
async fn stripe_lost_intent_answer(app: TestApp, ls: LocalStripe) {
    let (m, _) = stripe_merchant(&app, "auto").await;
    let (path, csrf) = card_page(&app, &ls, &m, "st-lost").await;
    create_intent(&app, &path, &csrf).await;
    let p = payment_of(&app, "st-lost").await;
    let mut tx = app.db.begin().await.unwrap();
    kakehashi::exec_tx!(&mut tx, c => sqlx::query("UPDATE payments SET connector_ref = NULL WHERE id = $1")
        .bind(&p.id)
        .execute(c)
        .await)
    .unwrap();
    tx.commit().await.unwrap();
    let (intent, _) = create_intent(&app, &path, &csrf).await;
    let again = payment_of(&app, "st-lost").await;
    assert_eq!(again.id, p.id);
    assert_eq!(again.connector_ref.as_deref(), Some(intent.as_str()));
    let (s, _) = ls.confirm_with_card(&intent, PAN).await;
    assert_eq!(s, 200);
    app.get(&format!("{path}/return"), UA_PC).await;
    assert_eq!(app.payment_status(&p.id).await, "captured");
}
both_stripe!(stripe_lost_intent_answer);

/// Routes, flows, the API and the console talk to the connector traits the registry hands
/// out, never to Stripe's concrete types (only `connectors/` and `startup.rs`, which registers
/// the driver, name them).
#[test]
fn only_connectors_and_startup_name_stripe_types() {
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
            if rel.starts_with("connectors/") || rel == "startup.rs" {
                continue;
            }
            let text = std::fs::read_to_string(&p).unwrap();
            for name in [
                "StripeConnector",
                "StripeDriver",
                "connectors::stripe::parse_intent",
            ] {
                if text.contains(name) {
                    offenders.push(format!("{rel}: {name}"));
                }
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "Stripe connector types named outside connectors/: {offenders:?}"
    );
}

/// A PaymentMethod created through `base` (what Stripe.js's `createPaymentMethod` does with the
/// card typed into Elements).
pub(crate) async fn payment_method(base: &str, pan: &str) -> String {
    let year = future_exp_year_full().to_string();
    let r = reqwest::Client::new()
        .post(format!("{base}/v1/payment_methods"))
        .bearer_auth(SK)
        .form(&[
            ("type", "card"),
            ("card[number]", pan),
            ("card[exp_month]", "12"),
            ("card[exp_year]", year.as_str()),
            ("card[cvc]", "123"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    v["id"].as_str().unwrap().to_owned()
}

/// Our script's installments path: the typed card's PaymentMethod goes to `/card/intent`; the
/// answer lists the plans. Returns (intent id, plan codes).
async fn intent_with_card(
    app: &TestApp,
    path: &str,
    csrf: &str,
    pm: &str,
) -> (String, Vec<String>) {
    let r = app
        .post_form(
            &format!("{path}/intent"),
            UA_PC,
            &[("csrf", csrf), ("payment_method", pm)],
        )
        .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    let intent = v["client_secret"]
        .as_str()
        .unwrap()
        .split("_secret_")
        .next()
        .unwrap()
        .to_owned();
    let plans = v["plans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["code"].as_str().unwrap().to_owned())
        .collect();
    (intent, plans)
}

pub(crate) async fn confirm_plan(
    app: &TestApp,
    path: &str,
    csrf: &str,
    option: &str,
) -> (u16, String) {
    let r = app
        .post_form(
            &format!("{path}/confirm"),
            UA_PC,
            &[("csrf", csrf), ("option", option)],
        )
        .await;
    (r.status().as_u16(), r.text().await.unwrap())
}

/// Installments (分割払い): offered only when Stripe says the card is eligible
/// (`available_plans` after the card is attached), only the plans the merchant enabled, and the
/// plan Stripe confirmed is recorded on the payment. localstripe does not implement
/// installments: the API calls go through [`InstallmentsProxy`], which adds Stripe's fields.
async fn stripe_installments(backend: Backend) {
    let Some(ls) = LocalStripe::start().await else {
        return;
    };
    let proxy = InstallmentsProxy::start(&ls.url).await;
    let Some(app) = app_on(backend, &ls, &proxy.url).await else {
        return;
    };
    let (m, _) = stripe_merchant_with(&app, "manual", "lump,inst3,inst6,bonus").await;
    let (path, csrf) = card_page(&app, &ls, &m, "st-inst-1").await;
    let body = app.get(&path, UA_PC).await.text().await.unwrap();
    assert!(body.contains("data-installments=\"1\""), "{body}");
    assert_eq!(data(&body, "confirm"), format!("{path}/confirm"));

    // A Japanese card: Stripe offers 2, 3, 6, 10 and 12 payments; the merchant enabled 3 and
    // 6 (and ボーナス, which Stripe does not offer here): those two are shown.
    let pm = payment_method(&proxy.url, PAN_JP).await;
    let (intent, plans) = intent_with_card(&app, &path, &csrf, &pm).await;
    assert_eq!(plans, vec!["inst3", "inst6"]);
    let pi = ls.get(&format!("/v1/payment_intents/{intent}")).await;
    assert_eq!(pi["payment_method"], pm.as_str());
    assert_eq!(pi["status"], "requires_confirmation");
    // A plan Stripe offers but the merchant did not enable, one the merchant enabled but Stripe
    // does not offer, and nonsense: refused, nothing sent to Stripe, nothing changed.
    for bad in ["inst10", "bonus"] {
        let (s, b) = confirm_plan(&app, &path, &csrf, bad).await;
        assert_eq!(s, 400, "{b}");
        assert!(b.contains("option_not_available"), "{b}");
    }
    let (s, _) = confirm_plan(&app, &path, &csrf, "inst7").await;
    assert_eq!(s, 400);
    assert!(proxy.confirms().is_empty());
    assert_eq!(
        payment_of(&app, "st-inst-1").await.status.code(),
        "awaiting_3ds"
    );

    // 6 payments: confirmed with Stripe's plan, recorded from what Stripe reports.
    let (s, b) = confirm_plan(&app, &path, &csrf, "inst6").await;
    assert_eq!(s, 200, "{b}");
    let v: Value = serde_json::from_str(&b).unwrap();
    assert_eq!(v["next"], "return");
    assert_eq!(
        proxy.confirms(),
        vec![vec![
            ("type".to_owned(), "fixed_count".to_owned()),
            ("count".to_owned(), "6".to_owned())
        ]]
    );
    let p = payment_of(&app, "st-inst-1").await;
    assert_eq!(p.status.code(), "authorized");
    let d = p.details_json();
    assert_eq!(d["option"], "inst6");
    assert_eq!(d["option_label"], "分割 6回");
    assert_eq!(app.checkout_status(&m, "st-inst-1").await, "paid");
    let r = app.get(&format!("{path}/return"), UA_PC).await;
    assert_eq!(location(&r), format!("{path}/result"));

    // A card Stripe offers no plan for: nothing to choose, 一括 confirmed without a plan.
    let (path, csrf) = card_page(&app, &ls, &m, "st-inst-2").await;
    let pm = payment_method(&proxy.url, PAN).await;
    let (_, plans) = intent_with_card(&app, &path, &csrf, &pm).await;
    assert!(plans.is_empty(), "{plans:?}");
    let (s, b) = confirm_plan(&app, &path, &csrf, "inst3").await;
    assert_eq!(s, 400, "{b}");
    let (s, b) = confirm_plan(&app, &path, &csrf, "lump").await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(proxy.confirms().last().unwrap(), &Vec::new());
    let p = payment_of(&app, "st-inst-2").await;
    assert_eq!(p.status.code(), "authorized");
    assert_eq!(p.details_json()["option"], "lump");

    // 3-D Secure after the server's confirmation: the script gets the client secret, Stripe.js
    // authenticates, and the return settles the payment.
    let (path, csrf) = card_page(&app, &ls, &m, "st-inst-3").await;
    let pm = payment_method(&proxy.url, PAN_3DS).await;
    let (intent, _) = intent_with_card(&app, &path, &csrf, &pm).await;
    let (s, b) = confirm_plan(&app, &path, &csrf, "lump").await;
    assert_eq!(s, 200, "{b}");
    let v: Value = serde_json::from_str(&b).unwrap();
    assert_eq!(v["next"], "action");
    let secret = v["client_secret"].as_str().unwrap();
    assert_eq!(
        payment_of(&app, "st-inst-3").await.status.code(),
        "awaiting_3ds"
    );
    ls.authenticate(&intent, secret, true).await;
    let r = app.get(&format!("{path}/return"), UA_PC).await;
    assert_eq!(location(&r), format!("{path}/result"));
    assert_eq!(
        payment_of(&app, "st-inst-3").await.status.code(),
        "authorized"
    );

    // A declined card on the confirm: the payment fails at once.
    let (path, csrf) = card_page(&app, &ls, &m, "st-inst-4").await;
    let pm = payment_method(&proxy.url, PAN_DECLINED).await;
    intent_with_card(&app, &path, &csrf, &pm).await;
    let (s, b) = confirm_plan(&app, &path, &csrf, "lump").await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(payment_of(&app, "st-inst-4").await.status.code(), "failed");
    // The card number went to Stripe only.
    assert!(!logs().contains(PAN_JP));
}

mod stripe_installments {
    use crate::helpers::Backend;
    #[tokio::test]
    async fn sqlite() {
        super::stripe_installments(Backend::Sqlite).await;
    }
    #[tokio::test]
    async fn postgres() {
        super::stripe_installments(Backend::Postgres).await;
    }
}

/// Opens a link with extra signed fields and picks card; returns the card page's path.
pub(crate) async fn choose_card_with(
    app: &TestApp,
    m: &TestMerchant,
    order: &str,
    extra: &[(&str, &str)],
) -> String {
    let f = app.fields(m, order, 1000, extra);
    let (status, body) = app.open(m, &f, UA_PC).await;
    assert_eq!(status, 200, "{body}");
    let r = app
        .post_form(
            &action(&body),
            UA_PC,
            &[("csrf", &hidden(&body, "csrf")), ("method", "card")],
        )
        .await;
    assert_eq!(r.status().as_u16(), 303);
    location(&r)
}

/// Saved cards (card on file): with the link's signed `customer_id` and the shopper's consent,
/// the card is saved at Stripe (Customer + `setup_future_usage`) and only its ids, brand,
/// last 4 and expiry here; the next checkout of the same customer offers it and pays with it;
/// the shopper and the API can remove it (detached at Stripe). Without consent nothing is
/// saved; another customer never sees it. localstripe lacks `setup_future_usage`: the calls go
/// through [`InstallmentsProxy`], which adds it.
async fn stripe_saved_cards(backend: Backend) {
    let Some(ls) = LocalStripe::start().await else {
        return;
    };
    let proxy = InstallmentsProxy::start(&ls.url).await;
    let Some(app) = app_on(backend, &ls, &proxy.url).await else {
        return;
    };
    let (m, account) = stripe_merchant_with(&app, "manual", "lump").await;
    let who = [("customer_id", "member-42")];

    // First purchase: the consent box is offered; no saved card yet.
    let path = choose_card_with(&app, &m, "sc-1", &who).await;
    let body = app.get(&path, UA_PC).await.text().await.unwrap();
    assert!(body.contains("name=\"save_card\""), "{body}");
    assert!(body.contains("data-installments=\"1\""), "{body}");
    assert!(!body.contains("name=\"saved\""), "{body}");
    let csrf = data(&body, "csrf");
    let pm = payment_method(&proxy.url, PAN).await;
    let r = app
        .post_form(
            &format!("{path}/intent"),
            UA_PC,
            &[("csrf", &csrf), ("payment_method", &pm), ("save_card", "1")],
        )
        .await;
    assert_eq!(r.status(), 200);
    let (s, b) = confirm_plan(&app, &path, &csrf, "lump").await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(payment_of(&app, "sc-1").await.status.code(), "authorized");
    // Saved: Stripe's ids and the card's brand, last 4 and expiry; attached at Stripe.
    let key = app.api_key(&m).await;
    let list = app.api_get("/api/v1/customers/member-42/cards", &key).await;
    assert_eq!(list.status, 200, "{}", list.json);
    let cards = list.json["data"].as_array().unwrap().clone();
    assert_eq!(cards.len(), 1, "{}", list.json);
    assert_eq!(cards[0]["last4"], "4242");
    assert_eq!(cards[0]["brand"], "visa");
    assert_eq!(cards[0]["exp_month"], 12);
    assert_eq!(cards[0]["processor_account"], account.as_str());
    let card_id = cards[0]["id"].as_str().unwrap().to_owned();
    let cus = app
        .scalar_str("SELECT processor_customer FROM saved_cards")
        .await
        .unwrap();
    assert!(cus.starts_with("cus_"), "{cus}");
    let at_stripe = ls.get(&format!("/v1/payment_methods/{pm}")).await;
    assert_eq!(at_stripe["customer"], cus.as_str());
    // Another customer of the merchant has none.
    let other = app.api_get("/api/v1/customers/member-7/cards", &key).await;
    assert_eq!(other.json["data"], json!([]));

    // Without consent, nothing is saved.
    let path = choose_card_with(&app, &m, "sc-2", &who).await;
    let body = app.get(&path, UA_PC).await.text().await.unwrap();
    let csrf = data(&body, "csrf");
    // The saved card is offered, with its removal form.
    assert!(body.contains(&format!("value=\"{card_id}\"")), "{body}");
    assert!(body.contains("•••• 4242"), "{body}");
    let pm2 = payment_method(&proxy.url, PAN_3DS).await;
    let r = app
        .post_form(
            &format!("{path}/intent"),
            UA_PC,
            &[("csrf", &csrf), ("payment_method", &pm2)],
        )
        .await;
    assert_eq!(r.status(), 200);
    let (_, b) = confirm_plan(&app, &path, &csrf, "lump").await;
    let v: Value = serde_json::from_str(&b).unwrap();
    let intent = v["client_secret"]
        .as_str()
        .unwrap()
        .split("_secret_")
        .next()
        .unwrap();
    ls.authenticate(intent, v["client_secret"].as_str().unwrap(), true)
        .await;
    app.get(&format!("{path}/return"), UA_PC).await;
    assert_eq!(payment_of(&app, "sc-2").await.status.code(), "authorized");
    let list = app.api_get("/api/v1/customers/member-42/cards", &key).await;
    assert_eq!(list.json["data"].as_array().unwrap().len(), 1);

    // Paying with the saved card: Stripe charges the saved method for the customer.
    let path = choose_card_with(&app, &m, "sc-3", &who).await;
    let body = app.get(&path, UA_PC).await.text().await.unwrap();
    let csrf = data(&body, "csrf");
    let r = app
        .post_form(
            &format!("{path}/intent"),
            UA_PC,
            &[("csrf", &csrf), ("saved_card", &card_id)],
        )
        .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    let intent = v["client_secret"]
        .as_str()
        .unwrap()
        .split("_secret_")
        .next()
        .unwrap()
        .to_owned();
    // The merchant asks for the security code again (the default): Stripe.js's token of it
    // goes with the confirmation (see `stripe_saved_cvc` for the setting itself).
    let t = reqwest::Client::new()
        .post(format!("{}/v1/tokens", proxy.url))
        .bearer_auth(SK)
        .form(&[("cvc_update[cvc]", "123")])
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    let r = app
        .post_form(
            &format!("{path}/confirm"),
            UA_PC,
            &[
                ("csrf", csrf.as_str()),
                ("option", "lump"),
                ("cvc_token", t["id"].as_str().unwrap()),
            ],
        )
        .await;
    assert_eq!(r.status(), 200);
    let p = payment_of(&app, "sc-3").await;
    assert_eq!(p.status.code(), "authorized");
    assert_eq!(p.details_json()["last4"], "4242");
    assert_eq!(p.details_json()["saved_card"], card_id.as_str());
    let pi = ls.get(&format!("/v1/payment_intents/{intent}")).await;
    assert_eq!(pi["payment_method"], pm.as_str());
    assert_eq!(pi["customer"], cus.as_str());

    // Another customer's link cannot use it.
    let path = choose_card_with(&app, &m, "sc-4", &[("customer_id", "member-7")]).await;
    let body = app.get(&path, UA_PC).await.text().await.unwrap();
    assert!(!body.contains(&card_id), "{body}");
    let csrf = data(&body, "csrf");
    let r = app
        .post_form(
            &format!("{path}/intent"),
            UA_PC,
            &[("csrf", &csrf), ("saved_card", &card_id)],
        )
        .await;
    assert_eq!(r.status(), 404);
    assert!(r.text().await.unwrap().contains("saved_card_not_found"));

    // The shopper removes it from the card page: detached at Stripe, gone here.
    let path = choose_card_with(&app, &m, "sc-5", &who).await;
    let body = app.get(&path, UA_PC).await.text().await.unwrap();
    let csrf = data(&body, "csrf");
    let r = app
        .post_form(
            &format!("{path}/saved/{card_id}/delete"),
            UA_PC,
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), path);
    let at_stripe = ls.get(&format!("/v1/payment_methods/{pm}")).await;
    assert!(at_stripe["customer"].is_null(), "{at_stripe}");
    let list = app.api_get("/api/v1/customers/member-42/cards", &key).await;
    assert_eq!(list.json["data"], json!([]));
    let body = app.get(&path, UA_PC).await.text().await.unwrap();
    assert!(!body.contains(&card_id), "{body}");
    // Again: nothing to remove.
    let r = app
        .post_form(
            &format!("{path}/saved/{card_id}/delete"),
            UA_PC,
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(r.status(), 404);

    // Saved again (consent), then removed through the API.
    let path = choose_card_with(&app, &m, "sc-6", &who).await;
    let body = app.get(&path, UA_PC).await.text().await.unwrap();
    let csrf = data(&body, "csrf");
    let pm3 = payment_method(&proxy.url, PAN).await;
    app.post_form(
        &format!("{path}/intent"),
        UA_PC,
        &[
            ("csrf", &csrf),
            ("payment_method", &pm3),
            ("save_card", "1"),
        ],
    )
    .await;
    confirm_plan(&app, &path, &csrf, "lump").await;
    let list = app.api_get("/api/v1/customers/member-42/cards", &key).await;
    let id = list.json["data"][0]["id"].as_str().unwrap().to_owned();
    let path_del = format!("/api/v1/customers/member-42/cards/{id}");
    let r = app.api("DELETE", &path_del, Some(&key), None, None).await;
    assert_eq!(r.status, 200, "{}", r.json);
    assert_eq!(r.json["deleted"], true);
    let r = app.api("DELETE", &path_del, Some(&key), None, None).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json["error"]["code"], "saved_card_not_found");
    let at_stripe = ls.get(&format!("/v1/payment_methods/{pm3}")).await;
    assert!(at_stripe["customer"].is_null(), "{at_stripe}");
    let r = app.api_get("/api/v1/customers/bad%20id/cards", &key).await;
    assert_eq!(r.status, 400);

    // Only Stripe's ids and the card's summary are stored: never the number.
    let dump: Vec<String> = kakehashi::on_db!(&app.db, c => {
        use sqlx::Row;
        let rows = sqlx::query("SELECT * FROM saved_cards").fetch_all(c).await.unwrap();
        Ok::<_, sqlx::Error>(rows.iter()
            .flat_map(|r| (0..r.columns().len()).map(move |i| r.try_get::<String, _>(i).unwrap_or_default()))
            .collect::<Vec<String>>())
    })
    .unwrap();
    assert!(!dump.iter().any(|v| v.contains(PAN)));
    assert!(!logs().contains(PAN));
}

mod stripe_saved_cards {
    use crate::helpers::Backend;
    #[tokio::test]
    async fn sqlite() {
        super::stripe_saved_cards(Backend::Sqlite).await;
    }
    #[tokio::test]
    async fn postgres() {
        super::stripe_saved_cards(Backend::Postgres).await;
    }
}
