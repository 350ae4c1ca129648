//! Live mode: a live merchant can never reach the sandbox. Without a live connector it is not
//! offered, cannot pay and cannot reach any sandbox page with any method (continuous billing
//! included); with a live connector (a test double of a processor, registered only here) every
//! method completes through it and never through the sandbox.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use kakehashi::connectors::bank::{
    self as bank_conn, BankConnector, BankOutcome, BankResult, StartOutcome as BankStart,
    StartRequest as BankStartRequest,
};
use kakehashi::connectors::card::{
    AuthenticateOutcome, AuthenticateRequest, AuthorizeOutcome, AuthorizeRequest, CardConnector,
    ChallengeOutcome, ConnectorError as CardError, FoundAuthorization, RemoteStatus,
};
use kakehashi::connectors::carrier::{
    self as carrier_conn, CancelRequest, CarrierConnector, CarrierOutcome, CarrierResult,
    ContinuousChargeOutcome, ContinuousChargeRequest, StartOutcome as CarrierStart,
    StartRequest as CarrierStartRequest,
};
use kakehashi::connectors::konbini::{
    ConnectorError as NumberError, IssueRequest, IssuedNumber, NumberConnector,
};
use kakehashi::connectors::registry::{Credentials, ProcessorDriver};
use kakehashi::domain::bank::Bank;
use kakehashi::domain::card::{CardStatus, ThreeDsResult, ThreeDsStatus};
use kakehashi::domain::carrier::{BillingKind, Carrier};
use kakehashi::domain::konbini::{self as kd, NumberAction, NumberShape};
use kakehashi::domain::processor::{Family, Processor};
use kakehashi::domain::{Method, Mode};
use kakehashi::flows::processors::{self, AccountInput, ProcessorError};

use crate::helpers::*;

const SECRET_KEY: &str = "sk_live_fake_0123456789WXYZ";

/// Every call the fake processor received: `"{family}.{call}:{mode}"`.
pub type Calls = Arc<Mutex<Vec<String>>>;

/// A test double of a processor serving every family. It signs its bank/carrier returns with
/// the account's secret key, so a completed return also proves the sealed credentials were
/// opened and handed to the right connector.
pub struct FakeProcessor {
    pub calls: Calls,
}

impl ProcessorDriver for FakeProcessor {
    fn processor(&self) -> Processor {
        Processor::Komoju
    }
    fn families(&self) -> &[Family] {
        &[Family::Card, Family::Number, Family::Bank, Family::Carrier]
    }
    fn card(&self, c: &Credentials) -> Option<Arc<dyn CardConnector>> {
        Some(self.conn(c))
    }
    fn number(&self, c: &Credentials) -> Option<Arc<dyn NumberConnector>> {
        Some(self.conn(c))
    }
    fn bank(&self, c: &Credentials) -> Option<Arc<dyn BankConnector>> {
        Some(self.conn(c))
    }
    fn carrier(&self, c: &Credentials) -> Option<Arc<dyn CarrierConnector>> {
        Some(self.conn(c))
    }
}

impl FakeProcessor {
    fn conn(&self, c: &Credentials) -> Arc<FakeConn> {
        assert_eq!(&*c.secret_key, SECRET_KEY, "credentials opened intact");
        Arc::new(FakeConn {
            calls: self.calls.clone(),
            key: c.secret_key.as_bytes().to_vec(),
        })
    }
}

struct FakeConn {
    calls: Calls,
    key: Vec<u8>,
}

impl FakeConn {
    fn log(&self, what: &str, mode: Option<Mode>) {
        let m = mode.map(|m| m.as_str()).unwrap_or("-");
        self.calls.lock().unwrap().push(format!("{what}:{m}"));
    }
}

/// The fake's return signature over the fields, in order.
fn fake_sig(key: &[u8], fields: &[(&str, &str)]) -> String {
    let text: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
    hex::encode(kakehashi::signing::hmac_bytes(
        key,
        text.join("&").as_bytes(),
    ))
}

fn param<'a>(params: &'a [(String, String)], k: &str) -> &'a str {
    params
        .iter()
        .find(|(n, _)| n == k)
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

fn digits(seed: &str, n: usize) -> String {
    let h = kakehashi::signing::hmac_bytes(b"fake", seed.as_bytes());
    h.iter()
        .cycle()
        .take(n)
        .map(|b| char::from(b'0' + b % 10))
        .collect()
}

#[async_trait]
impl CardConnector for FakeConn {
    async fn authenticate(
        &self,
        req: &AuthenticateRequest,
    ) -> Result<AuthenticateOutcome, CardError> {
        self.log("card.authenticate", Some(req.mode));
        Ok(AuthenticateOutcome::Frictionless(ThreeDsResult {
            status: ThreeDsStatus::Authenticated,
            eci: Some("05".into()),
        }))
    }
    async fn complete_challenge(
        &self,
        _id: &str,
        _otp: &str,
    ) -> Result<ChallengeOutcome, CardError> {
        Err(CardError::Unavailable("the fake never challenges".into()))
    }
    async fn authorize(&self, req: &AuthorizeRequest) -> Result<AuthorizeOutcome, CardError> {
        self.log("card.authorize", Some(req.mode));
        Ok(AuthorizeOutcome::Approved {
            token: format!("fk_{}", req.payment_id),
            approval_code: "1234567".into(),
        })
    }
    async fn capture(&self, _token: &str, _amount: i64, key: &str) -> Result<(), CardError> {
        self.log(&format!("card.capture[{key}]"), None);
        Ok(())
    }
    async fn cancel(&self, _token: &str, key: &str) -> Result<(), CardError> {
        self.log(&format!("card.cancel[{key}]"), None);
        Ok(())
    }
    async fn refund(&self, _token: &str, _amount: i64, key: &str) -> Result<(), CardError> {
        // Slow, like a processor across the internet: concurrent requests overlap here.
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        self.log(&format!("card.refund[{key}]"), None);
        Ok(())
    }
    async fn query(&self, _token: &str) -> Result<RemoteStatus, CardError> {
        Ok(RemoteStatus {
            status: CardStatus::Authorized,
            authorized_amount: 0,
            captured_amount: 0,
            refunded_amount: 0,
        })
    }
    async fn find_authorization(
        &self,
        _payment_id: &str,
    ) -> Result<Option<FoundAuthorization>, CardError> {
        Ok(None)
    }
}

#[async_trait]
impl NumberConnector for FakeConn {
    async fn issue(&self, req: &IssueRequest) -> Result<IssuedNumber, NumberError> {
        self.log("number.issue", Some(req.mode));
        let pid = &req.payment_id;
        let mut n = IssuedNumber {
            target: req.target,
            receipt_no: None,
            customer_no: None,
            confirm_no: None,
            institution_no: None,
            payment_url: None,
            deadline_ms: req.deadline_ms,
            connector_ref: format!("fknum_{pid}"),
            account: None,
        };
        match req.target.shape() {
            NumberShape::PaymentSlip => {
                n.receipt_no = Some(digits(pid, kd::PAYMENT_SLIP_NO_DIGITS))
            }
            NumberShape::CustomerAndConfirm => {
                n.customer_no = Some(digits(pid, kd::CUSTOMER_NO_DIGITS));
                n.confirm_no = Some(digits(pid, kd::CONFIRM_NO_DIGITS));
            }
            NumberShape::Reception => n.receipt_no = Some(digits(pid, kd::RECEPTION_NO_DIGITS)),
            NumberShape::Payeasy => {
                n.institution_no = Some(digits("inst", kd::PAYEASY_INSTITUTION_NO_DIGITS));
                n.customer_no = Some(digits(pid, kd::PAYEASY_CUSTOMER_NO_DIGITS));
                n.confirm_no = Some(digits(pid, kd::PAYEASY_CONFIRM_NO_DIGITS));
            }
            NumberShape::BankTransfer => {
                n.account = Some(kakehashi::connectors::konbini::TransferAccount {
                    bank_name: "フェイク銀行".into(),
                    branch_name: "本店".into(),
                    account_type: kakehashi::domain::refund_request::AccountType::Ordinary,
                    account_number: digits(pid, 7),
                    account_holder: "フェイク".into(),
                })
            }
        }
        Ok(n)
    }
    async fn query(&self, _number: &IssuedNumber) -> Result<Vec<NumberAction>, NumberError> {
        Ok(Vec::new())
    }
    async fn cancel(
        &self,
        req: &kakehashi::connectors::konbini::CancelRequest,
    ) -> Result<(), NumberError> {
        self.log("number.cancel", Some(req.mode));
        Ok(())
    }
}

/// The fake processor's bank and carrier refuse to start a payment of this amount.
const UNAVAILABLE_AMOUNT: i64 = 4444;

const FAKE_BANK: &str = "https://bank.fake.invalid/login";
const FAKE_CARRIER: &str = "https://carrier.fake.invalid/login";

#[async_trait]
impl BankConnector for FakeConn {
    async fn start(&self, req: &BankStartRequest) -> Result<BankStart, bank_conn::ConnectorError> {
        self.log("bank.start", Some(req.mode));
        if req.amount == UNAVAILABLE_AMOUNT {
            return Err(bank_conn::ConnectorError::Unavailable("bank down".into()));
        }
        let session = format!("fkb_{}", req.payment_id);
        let q = serde_urlencoded(&[
            ("return", req.return_url.as_str()),
            ("session_id", &session),
            ("payment_id", &req.payment_id),
            ("bank", req.bank.code()),
            ("amount", &req.amount.to_string()),
        ]);
        Ok(BankStart {
            redirect_url: format!("{FAKE_BANK}?{q}"),
            session_id: session,
        })
    }
    async fn verify_return(
        &self,
        params: &[(String, String)],
        _now_ms: i64,
    ) -> Result<BankResult, bank_conn::ConnectorError> {
        self.log("bank.verify_return", None);
        let f = ["payment_id", "session_id", "bank", "amount", "result"];
        let fields: Vec<(&str, &str)> = f.iter().map(|k| (*k, param(params, k))).collect();
        if fake_sig(&self.key, &fields) != param(params, "sig") {
            return Err(bank_conn::ConnectorError::InvalidRequest("bad_sig"));
        }
        Ok(BankResult {
            payment_id: param(params, "payment_id").into(),
            session_id: param(params, "session_id").into(),
            bank: Bank::parse(param(params, "bank")).unwrap(),
            amount: param(params, "amount").parse().unwrap(),
            outcome: BankOutcome::Paid {
                bank_txn_id: "fk-bank-txn".into(),
            },
        })
    }
}

#[async_trait]
impl CarrierConnector for FakeConn {
    async fn start(
        &self,
        req: &CarrierStartRequest,
    ) -> Result<CarrierStart, carrier_conn::ConnectorError> {
        self.log("carrier.start", Some(req.mode));
        if req.amount == UNAVAILABLE_AMOUNT {
            return Err(carrier_conn::ConnectorError::Unavailable(
                "carrier down".into(),
            ));
        }
        let session = format!("fkc_{}", req.payment_id);
        let q = serde_urlencoded(&[
            ("return", req.return_url.as_str()),
            ("session_id", &session),
            ("payment_id", &req.payment_id),
            ("carrier", req.carrier.code()),
            ("amount", &req.amount.to_string()),
            ("billing", req.billing.code()),
        ]);
        Ok(CarrierStart {
            redirect_url: format!("{FAKE_CARRIER}?{q}"),
            session_id: session,
        })
    }
    async fn verify_return(
        &self,
        params: &[(String, String)],
        _now_ms: i64,
    ) -> Result<CarrierResult, carrier_conn::ConnectorError> {
        self.log("carrier.verify_return", None);
        let f = [
            "payment_id",
            "session_id",
            "carrier",
            "amount",
            "billing",
            "result",
        ];
        let fields: Vec<(&str, &str)> = f.iter().map(|k| (*k, param(params, k))).collect();
        if fake_sig(&self.key, &fields) != param(params, "sig") {
            return Err(carrier_conn::ConnectorError::InvalidRequest("bad_sig"));
        }
        let continuous = param(params, "billing") == BillingKind::Continuous.code();
        Ok(CarrierResult {
            payment_id: param(params, "payment_id").into(),
            session_id: param(params, "session_id").into(),
            carrier: Carrier::parse(param(params, "carrier")).unwrap(),
            amount: param(params, "amount").parse().unwrap(),
            outcome: CarrierOutcome::Approved {
                carrier_txn_id: "fk-carrier-txn".into(),
                subscription_ref: continuous.then(|| "fksub_1".to_owned()),
            },
        })
    }
    async fn cancel(&self, _req: &CancelRequest) -> Result<(), carrier_conn::ConnectorError> {
        self.log("carrier.cancel", None);
        Ok(())
    }
    async fn charge_continuous(
        &self,
        req: &ContinuousChargeRequest,
    ) -> Result<ContinuousChargeOutcome, carrier_conn::ConnectorError> {
        self.log("carrier.charge_continuous", Some(req.mode));
        Ok(ContinuousChargeOutcome::Approved {
            carrier_txn_id: format!("fk-charge-{}", req.charge_id),
        })
    }
}

fn serde_urlencoded(fields: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish()
}

/// The query of a URL as pairs.
fn query_of(url: &str) -> Vec<(String, String)> {
    let q = url.split_once('?').map(|(_, q)| q).unwrap_or("");
    form_urlencoded::parse(q.as_bytes()).into_owned().collect()
}

/// What the fake processor's page would send back for the shopper's approval.
fn fake_return(redirect: &str, key: &[u8], names: &[&str]) -> String {
    let q = query_of(redirect);
    let mut fields: Vec<(String, String)> = names
        .iter()
        .map(|n| (n.to_string(), param(&q, n).to_owned()))
        .collect();
    fields.push(("result".into(), "approved".into()));
    let refs: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let sig = fake_sig(key, &refs);
    let mut out = refs.clone();
    out.push(("sig", &sig));
    format!("{}?{}", param(&q, "return"), serde_urlencoded(&out))
}

pub async fn live_app(backend: Backend) -> Option<(TestApp, Calls)> {
    let calls: Calls = Arc::default();
    let app = spawn_app_live(
        backend,
        vec![Arc::new(FakeProcessor {
            calls: calls.clone(),
        })],
    )
    .await?;
    Some((app, calls))
}

macro_rules! both_live {
    ($name:ident) => {
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                let (app, calls) = super::live_app($crate::helpers::Backend::Sqlite)
                    .await
                    .unwrap();
                super::$name(app, calls).await;
            }
            #[tokio::test]
            async fn postgres() {
                if let Some((app, calls)) =
                    super::live_app($crate::helpers::Backend::Postgres).await
                {
                    super::$name(app, calls).await;
                }
            }
        }
    };
}

/// Adds a live account of the fake processor for every method and switches the merchant live.
pub async fn make_live(app: &TestApp, m: &TestMerchant) {
    add_account(app, m, &Method::ALL).await;
    go_live(app, m).await;
}

/// Adds a live account serving `methods` for the merchant.
async fn add_account(app: &TestApp, m: &TestMerchant, methods: &[Method]) -> String {
    processors::add(
        &app.db,
        &app.state.connectors,
        &m.id,
        AccountInput {
            processor: Processor::Komoju,
            mode: Mode::Live,
            methods: methods.to_vec(),
            secret_key: SECRET_KEY.into(),
            publishable_key: None,
            webhook_secret: Some("whsec_fake".into()),
        },
        app.state.now_ms(),
    )
    .await
    .unwrap()
    .id
}

async fn go_live(app: &TestApp, m: &TestMerchant) {
    processors::set_mode(&app.db, &app.state.connectors, &m.id, Mode::Live)
        .await
        .unwrap();
}

/// Forces a merchant's mode as a database edit would, bypassing the go-live checks: the
/// situation before this fix, or a merchant whose only account was removed behind our back.
async fn force_mode(app: &TestApp, m: &TestMerchant, mode: Mode) {
    kakehashi::db::merchants::set_mode(&app.db, &m.id, mode)
        .await
        .unwrap();
}

fn offered(body: &str) -> Vec<&'static str> {
    Method::ALL
        .into_iter()
        .map(|m| m.code())
        .filter(|c| body.contains(&format!("value=\"{c}\"")))
        .collect()
}

/// A live merchant with no live connector: every way in is closed.
async fn live_without_connector_pays_nothing(app: TestApp, _calls: Calls) {
    let m = app.merchant().await;
    // Sessions and sandbox attempts made while still in test mode.
    let bank_page = app.choose(&m, "pre-bank", 1000, "banknet", UA_PC).await;
    let body = app.get(&bank_page, UA_PC).await.text().await.unwrap();
    let r = app
        .post_form(
            &bank_page,
            UA_PC,
            &[("csrf", &hidden(&body, "csrf")), ("bank", "0005")],
        )
        .await;
    let sandbox_bank = location(&r);
    assert!(sandbox_bank.contains("/sandbox/bank/"), "{sandbox_bank}");
    let carrier_page = app.choose(&m, "pre-docomo", 1000, "docomo", UA_PC).await;
    let body = app.get(&carrier_page, UA_PC).await.text().await.unwrap();
    let r = app
        .post_form(
            &carrier_page,
            UA_PC,
            &[("csrf", &hidden(&body, "csrf")), ("billing", "one_off")],
        )
        .await;
    let sandbox_carrier = location(&r);
    assert!(
        sandbox_carrier.contains("/sandbox/carrier/docomo/"),
        "{sandbox_carrier}"
    );
    let carrier_body = app.get(&sandbox_carrier, UA_PC).await.text().await.unwrap();
    let bank_body = app.get(&sandbox_bank, UA_PC).await.text().await.unwrap();
    let card_session = app.choose(&m, "pre-card", 1000, "card", UA_PC).await;
    let token_path = card_session.trim_end_matches("/card").to_owned();
    let csrf = hidden(
        &app.get(&card_session, UA_PC).await.text().await.unwrap(),
        "csrf",
    );
    let payments_before = app.count("payments").await;

    force_mode(&app, &m, Mode::Live).await;

    // Not offered: links, method-limited links, the API, feature phones.
    for (order, extra) in [
        ("l1", vec![]),
        ("l2", vec![("methods", "card")]),
        ("l3", vec![("methods", "docomo,konbini")]),
    ] {
        let f = app.fields(&m, order, 1000, &extra);
        for ua in [UA_PC, UA_IPHONE, UA_DOCOMO] {
            let r = app.get(&app.link(&m, &f), ua).await;
            assert_eq!(r.status(), 400, "{order} {ua}");
            let text = if ua == UA_DOCOMO {
                sjis_text(r).await
            } else {
                r.text().await.unwrap()
            };
            assert_eq!(error_code(&text), "methods_unavailable", "{order} {ua}");
        }
    }
    let key = app.api_key(&m).await;
    let r = app
        .api_post(
            "/api/v1/checkouts",
            &key,
            serde_json::json!({"order_id": "api-1", "amount": 1000, "item_name": "x", "return_url": "https://shop.example/done"}),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (400, "methods_unavailable"),
        "{}",
        r.json
    );

    // A session opened in test mode picks nothing now: every method's start is refused.
    for (method, form) in [
        (
            "card",
            vec![
                ("number", "4111111111111111"),
                ("exp_month", "12"),
                ("exp_year", &future_exp_year()),
                ("cvc", "123"),
            ],
        ),
        ("konbini", vec![("chain", "seven"), ("confirm", "1")]),
        ("payeasy", vec![]),
        ("banknet", vec![("bank", "0005")]),
        ("docomo", vec![("billing", "one_off")]),
        ("au", vec![("billing", "continuous")]),
        ("softbank", vec![("billing", "one_off")]),
    ] {
        let page = format!("{token_path}/{method}");
        let mut fields = vec![("csrf", csrf.as_str())];
        fields.extend(form.iter().copied());
        let r = app.post_form(&page, UA_PC, &fields).await;
        assert!(
            r.status().is_client_error(),
            "{method}: {} {:?}",
            r.status(),
            r.headers().get("location")
        );
    }
    // The sandbox pages of the earlier attempts are gone (404), GET and POST.
    assert_eq!(app.get(&sandbox_bank, UA_PC).await.status(), 404);
    let r = app
        .post_form(
            &sandbox_bank,
            UA_PC,
            &[("csrf", &hidden(&bank_body, "csrf")), ("choice", "approve")],
        )
        .await;
    assert_eq!(r.status(), 404);
    assert_eq!(app.get(&sandbox_carrier, UA_PC).await.status(), 404);
    let r = app
        .post_form(
            &sandbox_carrier,
            UA_PC,
            &[
                ("csrf", &hidden(&carrier_body, "csrf")),
                ("step", "login"),
                ("phone", "09012345678"),
                ("password", "1234"),
            ],
        )
        .await;
    assert_eq!(r.status(), 404);
    // Nothing was paid or created.
    assert_eq!(app.count("payments").await, payments_before);
    let paid: i64 = kakehashi::on_db!(&app.db, c => sqlx::query_scalar(
        "SELECT COUNT(*) FROM payments WHERE status IN ('paid', 'completed', 'authorized', 'captured')",
    )
    .fetch_one(c)
    .await)
    .unwrap();
    assert_eq!(paid, 0);
    // And going live through the rules is refused.
    let err = processors::set_mode(&app.db, &app.state.connectors, &m.id, Mode::Live)
        .await
        .unwrap_err();
    assert!(matches!(err, ProcessorError::NoLiveMethod(_)), "{err}");
}
both_live!(live_without_connector_pays_nothing);

/// Reusable numbers (リピート) exist only in the sandbox: a live merchant, with or without a
/// processor account, is refused with `repeat_numbers_unavailable`, and a sandbox number
/// registered in test mode cannot be paid once the merchant is live.
async fn live_merchants_get_no_repeat_numbers(app: TestApp, calls: Calls) {
    let m = app.merchant().await;
    let key = app.api_key(&m).await;
    let body = serde_json::json!({"reference": "r1", "name": "会費",
                                  "amount_type": "fixed", "amount": 1000});
    let r = app
        .api_post("/api/v1/repeat-numbers", &key, body.clone())
        .await;
    assert_eq!(r.status, 201, "{}", r.json);
    let sandbox_number = r.json["id"].as_str().unwrap().to_owned();

    make_live(&app, &m).await;
    let r = app
        .api_post("/api/v1/repeat-numbers", &key, body.clone())
        .await;
    assert_eq!((r.status, r.code()), (409, "repeat_numbers_unavailable"));
    assert_eq!(app.count("repeat_numbers").await, 1, "nothing registered");
    // The fake processor was never asked to issue anything for it.
    assert!(
        !calls
            .lock()
            .unwrap()
            .iter()
            .any(|c| c.starts_with("number.")),
        "{calls:?}"
    );
    let path = format!("/sandbox/v1/repeat-numbers/{sandbox_number}/pay");
    let ts = app.state.now_s();
    let sig = kakehashi::signing::sign(&m.secret, &format!("POST\n{path}\n{ts}"));
    let res = app
        .client
        .post(format!("{}{path}", app.base))
        .header("x-merchant-id", &m.id)
        .header("x-key-id", &m.key_id)
        .header("x-timestamp", ts.to_string())
        .header("x-signature", sig)
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        404,
        "the sandbox does not exist for live merchants"
    );
    let v: serde_json::Value = res.json().await.unwrap();
    assert_eq!(v["error"]["code"], "repeat_number_not_found");
    assert_eq!(app.count("payments").await, 0);

    // Live without any processor account: refused the same way.
    let bare = app.merchant().await;
    force_mode(&app, &bare, Mode::Live).await;
    let key = app.api_key(&bare).await;
    let r = app.api_post("/api/v1/repeat-numbers", &key, body).await;
    assert_eq!((r.status, r.code()), (409, "repeat_numbers_unavailable"));
}
both_live!(live_merchants_get_no_repeat_numbers);

/// A sandbox agreement made in test mode is never charged (or cancelled) through the sandbox
/// once the merchant is live.
async fn live_merchant_subscriptions_never_use_the_sandbox(app: TestApp, _calls: Calls) {
    let m = app.merchant().await;
    kakehashi::flows::carrier::set_continuous(&app.db, &m.id, true)
        .await
        .unwrap();
    let page = app.choose(&m, "sub-1", 980, "softbank", UA_PC).await;
    let body = app.get(&page, UA_PC).await.text().await.unwrap();
    let r = app
        .post_form(
            &page,
            UA_PC,
            &[("csrf", &hidden(&body, "csrf")), ("billing", "continuous")],
        )
        .await;
    let url = location(&r);
    let body = app.get(&url, UA_PC).await.text().await.unwrap();
    let r = app
        .post_form(
            &url,
            UA_PC,
            &[
                ("csrf", &hidden(&body, "csrf")),
                ("step", "login"),
                ("phone", "09012345678"),
                ("password", "1234"),
            ],
        )
        .await;
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    let r = app
        .post_form(
            &url,
            UA_PC,
            &[
                ("csrf", &hidden(&body, "csrf")),
                ("step", "decide"),
                ("decision", "approve"),
            ],
        )
        .await;
    let back = location(&r);
    let r = app.get(&back, UA_PC).await;
    assert_eq!(r.status(), 303);
    let sub_id = app
        .scalar_str("SELECT id FROM subscriptions")
        .await
        .expect("a subscription");
    let sub = kakehashi::flows::carrier::subscription(&app.db, &sub_id)
        .await
        .unwrap()
        .unwrap();
    let before = app.count("payments").await;
    force_mode(&app, &m, Mode::Live).await;
    let reg = app.state.connectors.clone();
    let n = kakehashi::flows::carrier::charge_due_subscriptions(&app.db, &reg, sub.next_charge_at)
        .await
        .unwrap();
    assert_eq!(n, 0);
    assert_eq!(app.count("payments").await, before, "no charge was made");
    let err =
        kakehashi::flows::carrier::cancel_subscription(&app.db, &reg, &sub_id, app.state.now_ms())
            .await
            .unwrap_err();
    assert!(err.to_string().contains("not available"), "{err}");
    // Back in test mode the sandbox agreement charges again.
    force_mode(&app, &m, Mode::Test).await;
    let n = kakehashi::flows::carrier::charge_due_subscriptions(&app.db, &reg, sub.next_charge_at)
        .await
        .unwrap();
    assert_eq!(n, 1);
}
both_live!(live_merchant_subscriptions_never_use_the_sandbox);

/// With a live account, every method runs through the processor: card, konbini, Pay-easy,
/// bank net, carrier one-off and continuous. None touches a sandbox page or connector.
async fn live_flows_complete_through_the_processor(app: TestApp, calls: Calls) {
    let m = app.merchant().await;
    kakehashi::flows::carrier::set_continuous(&app.db, &m.id, true)
        .await
        .unwrap();
    let account = add_account(&app, &m, &Method::ALL).await;
    go_live(&app, &m).await;
    let key = SECRET_KEY.as_bytes();

    // Card.
    pay_card(&app, &m, "live-card", 2000).await;
    let p = payment(&app, "live-card").await;
    assert_eq!(
        (p.status.code(), p.connector.as_str()),
        ("captured", account.as_str())
    );

    // Konbini and Pay-easy.
    for (order, method, chain) in [
        ("live-k", "konbini", Some("seven")),
        ("live-p", "payeasy", None),
    ] {
        let page = app.choose(&m, order, 3000, method, UA_PC).await;
        let body = app.get(&page, UA_PC).await.text().await.unwrap();
        let csrf = hidden(&body, "csrf");
        let mut form = vec![("csrf", csrf.as_str())];
        if let Some(c) = chain {
            form.extend([("chain", c), ("confirm", "1")]);
        }
        let r = app.post_form(&page, UA_PC, &form).await;
        assert_eq!(r.status(), 303, "{method}");
        let p = payment(&app, order).await;
        assert_eq!(
            (p.status.code(), p.connector.as_str()),
            ("awaiting_payment", account.as_str())
        );
        assert!(p.connector_ref.as_deref().unwrap().starts_with("fknum_"));
    }

    // Bank net: redirected to the processor's bank page, back with its signed answer.
    let page = app.choose(&m, "live-b", 4000, "banknet", UA_PC).await;
    let body = app.get(&page, UA_PC).await.text().await.unwrap();
    let r = app
        .post_form(
            &page,
            UA_PC,
            &[("csrf", &hidden(&body, "csrf")), ("bank", "0005")],
        )
        .await;
    let to = location(&r);
    assert!(to.starts_with(FAKE_BANK), "{to}");
    let back = fake_return(&to, key, &["payment_id", "session_id", "bank", "amount"]);
    assert_eq!(app.get(&back, UA_PC).await.status(), 303);
    assert_eq!(payment(&app, "live-b").await.status.code(), "paid");

    // Carrier, one-off and continuous.
    for (order, carrier, billing) in [
        ("live-d", "docomo", "one_off"),
        ("live-a", "au", "continuous"),
    ] {
        let page = app.choose(&m, order, 980, carrier, UA_PC).await;
        let body = app.get(&page, UA_PC).await.text().await.unwrap();
        let r = app
            .post_form(
                &page,
                UA_PC,
                &[("csrf", &hidden(&body, "csrf")), ("billing", billing)],
            )
            .await;
        let to = location(&r);
        assert!(to.starts_with(FAKE_CARRIER), "{to}");
        let back = fake_return(
            &to,
            key,
            &["payment_id", "session_id", "carrier", "amount", "billing"],
        );
        assert_eq!(app.get(&back, UA_PC).await.status(), 303);
        let p = payment(&app, order).await;
        assert_eq!(
            (p.status.code(), p.connector.as_str()),
            ("completed", account.as_str()),
            "{carrier}"
        );
        // The sandbox page of this session does not exist.
        let sess = p.connector_ref.clone().unwrap_or_default();
        let sandbox = format!("{}/sandbox/carrier/{carrier}/{sess}", app.base);
        assert_eq!(app.get(&sandbox, UA_PC).await.status(), 404);
    }
    // The monthly charge goes through the processor too.
    let sub_id = app
        .scalar_str("SELECT id FROM subscriptions")
        .await
        .unwrap();
    let sub = kakehashi::flows::carrier::subscription(&app.db, &sub_id)
        .await
        .unwrap()
        .unwrap();
    let reg = app.state.connectors.clone();
    let n = kakehashi::flows::carrier::charge_due_subscriptions(&app.db, &reg, sub.next_charge_at)
        .await
        .unwrap();
    assert_eq!(n, 1);
    kakehashi::flows::carrier::cancel_subscription(&app.db, &reg, &sub_id, app.state.now_ms())
        .await
        .unwrap();

    let calls = calls.lock().unwrap().clone();
    for expected in [
        "card.authenticate:live",
        "card.authorize:live",
        "number.issue:live",
        "bank.start:live",
        "bank.verify_return:-",
        "carrier.start:live",
        "carrier.verify_return:-",
        "carrier.charge_continuous:live",
        "carrier.cancel:-",
    ] {
        assert!(
            calls.iter().any(|c| c == expected),
            "{expected} in {calls:?}"
        );
    }
    // Every payment of the merchant went through the account.
    let sandboxed: i64 = kakehashi::on_db!(&app.db, c => sqlx::query_scalar(
        "SELECT COUNT(*) FROM payments WHERE connector <> $1",
    )
    .bind(&account)
    .fetch_one(c)
    .await)
    .unwrap();
    assert_eq!(sandboxed, 0);
}
both_live!(live_flows_complete_through_the_processor);

/// Live per method: an account serving only cards makes a live checkout offer only cards.
async fn live_offers_exactly_what_accounts_serve(app: TestApp, _calls: Calls) {
    let m = app.merchant().await;
    let account = add_account(&app, &m, &[Method::Card]).await;
    let offered_now = processors::set_mode(&app.db, &app.state.connectors, &m.id, Mode::Live)
        .await
        .unwrap();
    assert_eq!(offered_now, vec![Method::Card]);
    let f = app.fields(&m, "only-card", 1000, &[]);
    let (status, body) = app.open(&m, &f, UA_PC).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(offered(&body), vec!["card"]);
    let f = app.fields(&m, "konbini-only", 1000, &[("methods", "konbini")]);
    let r = app.get(&app.link(&m, &f), UA_PC).await;
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(&r.text().await.unwrap()), "methods_unavailable");
    // The last live account cannot be retired while live; after switching back it can.
    let err = processors::retire(
        &app.db,
        &app.state.connectors,
        &m.id,
        &account,
        app.state.now_ms(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ProcessorError::LastLiveAccount));
    processors::set_mode(&app.db, &app.state.connectors, &m.id, Mode::Test)
        .await
        .unwrap();
    processors::retire(
        &app.db,
        &app.state.connectors,
        &m.id,
        &account,
        app.state.now_ms(),
    )
    .await
    .unwrap();
    let err = processors::set_mode(&app.db, &app.state.connectors, &m.id, Mode::Live)
        .await
        .unwrap_err();
    assert!(matches!(err, ProcessorError::NoLiveMethod(_)));
    // Credentials are sealed at rest: the secret appears nowhere in the table.
    let stored: String = kakehashi::on_db!(&app.db, c => sqlx::query_scalar(
        "SELECT credentials || COALESCE(webhook_secret, '') || fingerprint FROM processor_accounts",
    )
    .fetch_one(c)
    .await)
    .unwrap();
    assert!(stored.starts_with("sealed:v1:"));
    assert!(
        !stored.contains(SECRET_KEY) && !stored.contains("whsec_fake"),
        "{stored}"
    );
    assert!(stored.ends_with("…WXYZ"));
}
both_live!(live_offers_exactly_what_accounts_serve);

/// Without a master key nothing can be sealed, so no live credentials are stored.
async fn no_master_key_no_live_credentials(app: TestApp) {
    let m = app.merchant().await;
    let err = processors::add(
        &app.db,
        &app.state.connectors,
        &m.id,
        AccountInput {
            processor: Processor::Stripe,
            mode: Mode::Live,
            methods: vec![Method::Card],
            secret_key: SECRET_KEY.into(),
            publishable_key: Some("pk_live_x".into()),
            webhook_secret: None,
        },
        app.state.now_ms(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("KAKEHASHI_MASTER_KEY"), "{err}");
    assert_eq!(app.count("processor_accounts").await, 0);
    // And a processor cannot be given a method it does not offer.
    let err = processors::add(
        &app.db,
        &app.state.connectors,
        &m.id,
        AccountInput {
            processor: Processor::Stripe,
            mode: Mode::Live,
            methods: vec![Method::Docomo],
            secret_key: SECRET_KEY.into(),
            publishable_key: None,
            webhook_secret: None,
        },
        app.state.now_ms(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, ProcessorError::MethodNotOffered { .. }),
        "{err}"
    );
}
both!(no_master_key_no_live_credentials);

/// Pays an order by card on PC (a test card the fake processor approves).
async fn pay_card(app: &TestApp, m: &TestMerchant, order: &str, amount: i64) {
    let page = app.choose(m, order, amount, "card", UA_PC).await;
    let body = app.get(&page, UA_PC).await.text().await.unwrap();
    let y = future_exp_year();
    let r = app
        .post_form(
            &page,
            UA_PC,
            &[
                ("csrf", &hidden(&body, "csrf")),
                ("number", "4111111111111111"),
                ("exp_month", "12"),
                ("exp_year", &y),
                ("cvc", "123"),
                ("option", "lump"),
            ],
        )
        .await;
    assert_eq!(r.status(), 303, "card payment of {order}");
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

/// No flow, route, API or console module constructs a sandbox connector: the registry is the
/// only way to one.
#[test]
fn only_the_registry_builds_sandbox_connectors() {
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
            // The connectors themselves (and their unit tests) and the registry may.
            if rel.starts_with("connectors/") {
                continue;
            }
            let text = std::fs::read_to_string(&p).unwrap();
            for name in [
                "SandboxCardConnector",
                "SandboxNumberConnector",
                "SandboxBankConnector",
                "SandboxCarrierConnector",
                "SandboxWalletConnector",
                "SandboxRedirect",
            ] {
                if text.contains(name) {
                    offenders.push(format!("{rel}: {name}"));
                }
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "sandbox connectors named outside connectors/: {offenders:?}"
    );
}

/// `keys rotate-master`: every stored secret (signing keys, webhook secrets, the server
/// secret, processor credentials) is re-sealed under the new key in one go; values the keyring
/// cannot open stop the rotation with nothing changed.
async fn master_key_rotation_reseals_everything(app: TestApp, calls: Calls) {
    use kakehashi::connectors::registry::Registry;
    use kakehashi::secrets::Keyring;
    let m = app.merchant().await;
    add_account(&app, &m, &[Method::Card]).await;
    // With a master key, nothing read back is stored in clear.
    let stored = app
        .scalar_str(&format!(
            "SELECT secret FROM signing_keys WHERE merchant_id = '{}'",
            m.id
        ))
        .await
        .unwrap();
    assert!(
        stored.starts_with("sealed:v1:") && !stored.contains(&m.secret),
        "{stored}"
    );
    let hooks = app
        .scalar_str(&format!(
            "SELECT webhook_secrets FROM merchants WHERE id = '{}'",
            m.id
        ))
        .await
        .unwrap();
    assert!(
        hooks.starts_with("sealed:v1:") && !hooks.contains("whsec_"),
        "{hooks}"
    );
    // An open enrolment link's TOTP secret is sealed too (and resealed below).
    let invite = kakehashi::console::invites::invite(
        &app.db,
        &app.state.keys,
        &app.state.public_url,
        Some(&m.id),
        "sealed@shop.example",
        kakehashi::console::Role::Admin,
        "test",
        app.state.now_ms(),
    )
    .await
    .unwrap();
    let stored_totp = app
        .scalar_str(&format!(
            "SELECT totp_secret FROM console_invites WHERE id = '{}'",
            invite.id
        ))
        .await
        .unwrap();
    assert!(stored_totp.starts_with("sealed:v1:"), "{stored_totp}");
    // ... and links signed with the (sealed) key still open.
    let f = app.fields(&m, "sealed-link", 1000, &[]);
    assert_eq!(app.open(&m, &f, UA_PC).await.0, 200);

    let old_id = Keyring::new(Some(TEST_MASTER_KEY), &[])
        .unwrap()
        .current_id()
        .unwrap()
        .to_owned();
    let status = kakehashi::flows::secrets::status(&app.db).await.unwrap();
    let total: usize = status.values().sum();
    assert_eq!(status.get(&old_id), Some(&total), "{status:?}");
    assert!(
        total >= 5,
        "server secret, signing key, webhook secrets, credentials, account webhook secret"
    );
    let new = Keyring::generate();
    // Without the old key nothing can be opened: refused, nothing changed.
    let only_new = Keyring::new(Some(&new), &[]).unwrap();
    assert!(kakehashi::flows::secrets::reseal_all(&app.db, &only_new)
        .await
        .is_err());
    assert_eq!(
        kakehashi::flows::secrets::status(&app.db).await.unwrap(),
        status
    );
    let ring = Keyring::new(Some(&new), &[TEST_MASTER_KEY.to_owned()]).unwrap();
    assert_eq!(
        kakehashi::flows::secrets::reseal_all(&app.db, &ring)
            .await
            .unwrap(),
        total
    );
    let after = kakehashi::flows::secrets::status(&app.db).await.unwrap();
    assert_eq!(
        after.get(ring.current_id().unwrap()),
        Some(&total),
        "{after:?}"
    );
    assert!(!after.contains_key(&old_id));
    // A server with only the new key serves the account and verifies the merchant's links.
    let mut reg = Registry::new(
        "http://127.0.0.1",
        b"secret",
        Arc::new(Keyring::new(Some(&new), &[]).unwrap()),
    );
    reg.register(Arc::new(FakeProcessor { calls }));
    let accounts = kakehashi::db::processors::for_merchant(&app.db, &m.id)
        .await
        .unwrap();
    assert_eq!(reg.live_methods(Mode::Live, &accounts), vec![Method::Card]);
    let keys = Keyring::new(Some(&new), &[]).unwrap();
    let (_, secret) = kakehashi::db::merchants::merchant_with_key(&app.db, &keys, &m.id, &m.key_id)
        .await
        .unwrap();
    assert_eq!(secret, m.secret);
    let row = kakehashi::db::console_invites::get(&app.db, &invite.id)
        .await
        .unwrap()
        .unwrap();
    assert!(kakehashi::console::invites::secret(&keys, &row).is_ok());
    // And one with only the old key no longer can.
    let mut old = Registry::new(
        "http://127.0.0.1",
        b"secret",
        Arc::new(Keyring::new(Some(TEST_MASTER_KEY), &[]).unwrap()),
    );
    old.register(Arc::new(FakeProcessor {
        calls: Calls::default(),
    }));
    assert!(old.live_methods(Mode::Live, &accounts).is_empty());
}
both_live!(master_key_rotation_reseals_everything);

/// The CLI applies the same go-live rules: refused without a live account, accepted with one.
async fn cli_mode_switch_follows_the_rules(app: TestApp, _calls: Calls) {
    use kakehashi::cli::{merchant, MerchantCmd, Settings};
    let m = app.merchant().await;
    let set_live = || MerchantCmd::Set {
        merchant_id: m.id.clone(),
        name: None,
        status: None,
        carrier_continuous: None,
        saved_card_cvc: None,
        settings: Settings {
            mode: Some("live".into()),
            ..Settings::default()
        },
    };
    let err = merchant(
        &app.db,
        &app.state.connectors,
        &app.state.config,
        set_live(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("cannot switch to live"), "{err}");
    assert_eq!(
        app.scalar_str(&format!("SELECT mode FROM merchants WHERE id = '{}'", m.id))
            .await
            .unwrap(),
        "test"
    );
    add_account(&app, &m, &[Method::Konbini]).await;
    merchant(
        &app.db,
        &app.state.connectors,
        &app.state.config,
        set_live(),
    )
    .await
    .unwrap();
    assert_eq!(
        app.scalar_str(&format!("SELECT mode FROM merchants WHERE id = '{}'", m.id))
            .await
            .unwrap(),
        "live"
    );
    // A new merchant cannot start live.
    let add = MerchantCmd::Add {
        name: "x".into(),
        id: None,
        settings: Settings {
            mode: Some("live".into()),
            ..Settings::default()
        },
    };
    assert!(
        merchant(&app.db, &app.state.connectors, &app.state.config, add)
            .await
            .is_err()
    );
}
both_live!(cli_mode_switch_follows_the_rules);

/// Two refunds of one payment at the same time: one reaches the processor, the other is told
/// to retry (`operation_in_progress`); the processor gets the operation id as idempotency key.
/// An operation whose outcome was never recorded is finished once by the sweep.
async fn card_actions_are_claimed_before_the_processor_call(app: TestApp, calls: Calls) {
    let m = app.merchant().await;
    add_account(&app, &m, &[Method::Card]).await;
    go_live(&app, &m).await;
    pay_card(&app, &m, "ops", 5000).await;
    let p = payment(&app, "ops").await;
    assert_eq!(p.status.code(), "captured");
    let key = app.api_key(&m).await;
    let path = format!("/api/v1/payments/{}/refund", p.id);
    let body = serde_json::json!({"amount": 1000});
    let (a, b) = tokio::join!(
        app.api_post(&path, &key, body.clone()),
        app.api_post(&path, &key, body.clone())
    );
    let mut statuses = [a.status, b.status];
    statuses.sort();
    assert_eq!(statuses, [200, 409], "{} {}", a.json, b.json);
    let refused = if a.status == 409 { &a } else { &b };
    assert_eq!(refused.code(), "operation_in_progress");
    let p = payment(&app, "ops").await;
    assert_eq!(p.refunded_amount, 1000);
    let refunds: Vec<String> = calls
        .lock()
        .unwrap()
        .iter()
        .filter(|c| c.starts_with("card.refund"))
        .cloned()
        .collect();
    assert_eq!(refunds.len(), 1, "{refunds:?}");
    let op_id: String = app
        .scalar_str("SELECT id FROM payment_operations WHERE kind = 'refund' AND status = 'done'")
        .await
        .unwrap();
    assert!(
        refunds[0].contains(&op_id),
        "idempotency key is the operation id"
    );

    // A crash after the processor refunded but before we recorded it: the claim is pending.
    let op = kakehashi::db::operations::claim(
        &app.db,
        &p.id,
        kakehashi::db::operations::OpKind::Refund,
        Some(500),
        "test",
        app.state.now_ms(),
    )
    .await
    .unwrap()
    .unwrap();
    // While it is pending, other actions wait.
    let r = app.api_post(&path, &key, body.clone()).await;
    assert_eq!((r.status, r.code()), (409, "operation_in_progress"));
    let reg = app.state.connectors.clone();
    let now = kakehashi::util::now_ms();
    assert_eq!(
        kakehashi::flows::card::resume_operations(&app.db, &reg, now)
            .await
            .unwrap(),
        0,
        "too fresh"
    );
    let later = now + kakehashi::flows::card::RESUME_AFTER_MS + 1;
    assert_eq!(
        kakehashi::flows::card::resume_operations(&app.db, &reg, later)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        kakehashi::flows::card::resume_operations(&app.db, &reg, later)
            .await
            .unwrap(),
        0
    );
    let p = payment(&app, "ops").await;
    assert_eq!(p.refunded_amount, 1500);
    let events: Vec<String> = kakehashi::db::payments::events(&app.db, &p.id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .filter(|t| t == "payment.refunded")
        .collect();
    assert_eq!(events.len(), 2, "one event per refund");
    assert!(
        calls.lock().unwrap().iter().any(|c| c.contains(&op)),
        "resumed with the same key"
    );
}
both_live!(card_actions_are_claimed_before_the_processor_call);

/// An installation that ran without a master key keeps its secrets in clear; once a key is
/// set, `keys rotate-master` seals them all, and the values still work.
async fn secrets_stored_in_clear_are_sealed_by_rotation(app: TestApp) {
    use kakehashi::secrets::Keyring;
    let m = app.merchant().await;
    let status = kakehashi::flows::secrets::status(&app.db).await.unwrap();
    assert!(status.get("clear").copied().unwrap_or(0) >= 3, "{status:?}");
    let key = Keyring::generate();
    let ring = Keyring::new(Some(&key), &[]).unwrap();
    let n = kakehashi::flows::secrets::reseal_all(&app.db, &ring)
        .await
        .unwrap();
    let after = kakehashi::flows::secrets::status(&app.db).await.unwrap();
    assert_eq!(after.get(ring.current_id().unwrap()), Some(&n), "{after:?}");
    assert!(!after.contains_key("clear"));
    let (_, secret) = kakehashi::db::merchants::merchant_with_key(&app.db, &ring, &m.id, &m.key_id)
        .await
        .unwrap();
    assert_eq!(secret, m.secret);
    let merchant = kakehashi::db::merchants::get(&app.db, &m.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(merchant.webhook_secrets(&ring).unwrap().len(), 1);
}
both!(secrets_stored_in_clear_are_sealed_by_rotation);

/// The processor cannot start a bank or carrier payment: the pending payment committed before
/// the call fails with the connector's code (event and notification), and the checkout reopens
/// so the shopper can pay another way.
async fn a_refused_start_fails_the_pending_payment(app: TestApp, _calls: Calls) {
    let m = app.merchant().await;
    add_account(&app, &m, &Method::ALL).await;
    go_live(&app, &m).await;
    for (order, method, form) in [
        ("down-b", "banknet", ("bank", "0005")),
        ("down-d", "docomo", ("billing", "one_off")),
    ] {
        let page = app
            .choose(&m, order, UNAVAILABLE_AMOUNT, method, UA_PC)
            .await;
        let body = app.get(&page, UA_PC).await.text().await.unwrap();
        let r = app
            .post_form(&page, UA_PC, &[("csrf", &hidden(&body, "csrf")), form])
            .await;
        assert_eq!(r.status(), 500, "{method}");
        let p = payment(&app, order).await;
        assert!(
            matches!(p.status.code(), "declined" | "failed"),
            "{method}: {}",
            p.status
        );
        let events: Vec<String> = kakehashi::db::payments::events(&app.db, &p.id)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .collect();
        assert_eq!(
            events,
            vec!["payment.created", "payment.failed"],
            "{method}"
        );
        assert_eq!(app.checkout_status(&m, order).await, "open", "{method}");
        // The shopper can pay another way.
        let page = app
            .choose(&m, order, UNAVAILABLE_AMOUNT, "card", UA_PC)
            .await;
        assert!(page.ends_with("/card"), "{page}");
    }
}
both_live!(a_refused_start_fails_the_pending_payment);
