//! Card payments through real HTTP: every sandbox test card, 3-D Secure challenge, declines,
//! capture / cancel / refund, double submit, card-testing lock, and no stored card data.

use kakehashi::connectors::card::{sandbox_cards, SandboxScenario};

use crate::helpers::*;

const VISA: &str = "4111111111111111";
const CHALLENGE_VISA: &str = "4000000000002008";

/// A card checkout: the `/pay/{token}` base and the card form page.
pub struct CardPage {
    pub base: String,
    pub csrf: String,
}

pub async fn card_page(
    app: &TestApp,
    m: &TestMerchant,
    order: &str,
    amount: i64,
    ua: &str,
) -> CardPage {
    let f = app.fields(m, order, amount, &[]);
    let (status, body) = app.open(m, &f, ua).await;
    assert_eq!(status, 200, "{body}");
    let action = action(&body);
    let csrf = hidden(&body, "csrf");
    let r = app
        .post_form(&action, ua, &[("csrf", &csrf), ("method", "card")])
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
    assert!(form.contains("name=\"number\""), "{form}");
    CardPage {
        csrf: hidden(&form, "csrf"),
        base,
    }
}

impl CardPage {
    pub async fn pay(
        &self,
        app: &TestApp,
        ua: &str,
        number: &str,
        cvc: &str,
        option: &str,
    ) -> reqwest::Response {
        let year = future_exp_year();
        app.post_form(
            &format!("{}/card", self.base),
            ua,
            &[
                ("csrf", &self.csrf),
                ("number", number),
                ("exp_month", "12"),
                ("exp_year", &year),
                ("cvc", cvc),
                ("option", option),
            ],
        )
        .await
    }

    pub async fn otp(&self, app: &TestApp, ua: &str, code: &str) -> reqwest::Response {
        app.post_form(
            &format!("{}/card/challenge", self.base),
            ua,
            &[("csrf", &self.csrf), ("otp", code)],
        )
        .await
    }

    pub async fn result(&self, app: &TestApp, ua: &str) -> String {
        app.get(&format!("{}/card/result", self.base), ua)
            .await
            .text()
            .await
            .unwrap()
    }
}

async fn payment_status(app: &TestApp, order: &str) -> Vec<String> {
    let sql = format!("SELECT status FROM payments WHERE order_id = '{order}' ORDER BY created_at");
    kakehashi::on_db!(&app.db, c => sqlx::query_scalar::<_, String>(&sql).fetch_all(c).await)
        .unwrap()
}

async fn frictionless_card_pays_and_notifies(app: TestApp) {
    let rx = Receiver::start().await;
    let m = app
        .merchant_with(|n| n.callback_url = Some(rx.url.clone()))
        .await;
    for (ua, order) in [(UA_PC, "c-pc"), (UA_IPHONE, "c-sp")] {
        let page = card_page(&app, &m, order, 4800, ua).await;
        let r = page
            .pay(&app, ua, "4111 1111 1111 1111", "123", "lump")
            .await;
        assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
        assert!(r.headers()["location"]
            .to_str()
            .unwrap()
            .ends_with("/card/result"));
        let body = page.result(&app, ua).await;
        assert!(body.contains("お支払いが完了しました"), "{body}");
        assert!(body.contains("VISA **** 1111"));
        let start = body.find("id=\"return-link\" href=\"").unwrap() + 23;
        let ret = body[start..]
            .split('"')
            .next()
            .unwrap()
            .replace("&amp;", "&")
            .replace("&#38;", "&");
        assert!(ret.starts_with("https://shop.example/thanks?"));
        assert!(
            ret.contains(&format!("order_id={order}"))
                && ret.contains("status=captured")
                && ret.contains("signature=")
        );
        assert_eq!(payment_status(&app, order).await, vec!["captured"]);
    }
    let hits = rx
        .wait_for("authorized + captured for both", |h| h.len() >= 4)
        .await;
    let types: Vec<String> = hits
        .iter()
        .map(|h| h.json()["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        types.iter().filter(|t| *t == "payment.authorized").count(),
        2
    );
    assert_eq!(types.iter().filter(|t| *t == "payment.captured").count(), 2);
    let card = &hits[0].json()["data"]["card"];
    assert_eq!(card["last4"], "1111");
    assert_eq!(card["three_ds"]["status"], "Y");
    // Re-opening the link after paying shows the paid state, never a second payment.
    let (_, body) = app
        .open(&m, &app.fields(&m, "c-pc", 4800, &[]), UA_PC)
        .await;
    assert!(body.contains("お支払いは完了しています"));
}
both!(frictionless_card_pays_and_notifies);

async fn every_documented_test_card_behaves_as_documented(app: TestApp) {
    let m = app
        .merchant_with(|n| n.card_options = "lump,inst3".into())
        .await;
    for (i, card) in sandbox_cards().iter().enumerate() {
        let order = format!("tc-{i}");
        let page = card_page(&app, &m, &order, 1000, UA_PC).await;
        let cvc = if card.digits().starts_with("34") || card.digits().starts_with("37") {
            "1234"
        } else {
            "123"
        };
        let r = page.pay(&app, UA_PC, &card.digits(), cvc, "lump").await;
        let status = r.status().as_u16();
        let body = r.text().await.unwrap();
        let expect = card.scenario;
        use SandboxScenario as S;
        match expect {
            S::Challenge => {
                assert_eq!(status, 303, "{}: challenge redirect", card.number);
                let form = app
                    .get(&format!("{}/card/challenge", page.base), UA_PC)
                    .await
                    .text()
                    .await
                    .unwrap();
                assert!(form.contains("123456"), "sandbox hint");
                let wrong = page.otp(&app, UA_PC, "000000").await;
                assert_eq!(wrong.status(), 422);
                assert!(wrong.text().await.unwrap().contains("残り2回"));
                let ok = page.otp(&app, UA_PC, "123456").await;
                assert_eq!(ok.status(), 303, "{}", card.number);
                assert_eq!(
                    payment_status(&app, &order).await,
                    vec!["captured"],
                    "{}",
                    card.number
                );
            }
            S::Frictionless | S::Attempted | S::CaptureFails => {
                assert_eq!(status, 303, "{}: {body}", card.number);
                let want = if matches!(expect, S::CaptureFails) {
                    "authorized"
                } else {
                    "captured"
                };
                assert_eq!(
                    payment_status(&app, &order).await,
                    vec![want],
                    "{}",
                    card.number
                );
            }
            _ => {
                assert_eq!(
                    status, 402,
                    "{}: declined or failed 3DS: {body}",
                    card.number
                );
                assert!(
                    body.contains("id=\"form-error\""),
                    "{}: reason shown",
                    card.number
                );
                assert!(
                    body.contains("別の方法で支払う"),
                    "retry or choose another method"
                );
                assert_eq!(
                    payment_status(&app, &order).await,
                    vec!["failed"],
                    "{}",
                    card.number
                );
            }
        }
    }
}
both!(every_documented_test_card_behaves_as_documented);

async fn three_wrong_codes_fail_the_payment(app: TestApp) {
    let m = app.merchant().await;
    let page = card_page(&app, &m, "otp-3", 1000, UA_PC).await;
    assert_eq!(
        page.pay(&app, UA_PC, CHALLENGE_VISA, "123", "lump")
            .await
            .status(),
        303
    );
    assert_eq!(page.otp(&app, UA_PC, "111111").await.status(), 422);
    assert_eq!(page.otp(&app, UA_PC, "222222").await.status(), 422);
    let r = page.otp(&app, UA_PC, "333333").await;
    assert_eq!(r.status(), 402);
    assert_eq!(payment_status(&app, "otp-3").await, vec!["failed"]);
    // A retry with another card works: the failed payment does not block the checkout.
    assert_eq!(
        page.pay(&app, UA_PC, VISA, "123", "lump").await.status(),
        303
    );
    assert_eq!(
        payment_status(&app, "otp-3").await,
        vec!["failed", "captured"]
    );
}
both!(three_wrong_codes_fail_the_payment);

async fn form_errors_are_shown_per_field_and_never_echo_the_card(app: TestApp) {
    let m = app
        .merchant_with(|n| n.card_options = "lump,inst3,bonus".into())
        .await;
    let page = card_page(&app, &m, "fe", 1000, UA_PC).await;
    // An expiry year ahead of today, and last year's (expired whatever the month).
    let (valid, past) = (future_exp_year(), past_exp_year());
    let (valid, past) = (valid.as_str(), past.as_str());
    let cases = [
        (
            "4111111111111112",
            "11",
            valid,
            "123",
            "lump",
            "cc-number-err",
        ),
        ("4111111111111111", "13", valid, "123", "lump", "cc-exp-err"),
        ("4111111111111111", "01", past, "123", "lump", "cc-exp-err"),
        ("4111111111111111", "11", valid, "98", "lump", "cc-csc-err"),
        ("378282246310005", "11", valid, "987", "lump", "cc-csc-err"),
        (
            "378282246310005",
            "11",
            valid,
            "9876",
            "inst3",
            "cc-option-err",
        ),
        (
            "4111111111111111",
            "11",
            valid,
            "987",
            "inst24",
            "cc-option-err",
        ),
    ];
    for (number, mm, yy, cvc, option, err) in cases {
        let r = app
            .post_form(
                &format!("{}/card", page.base),
                UA_PC,
                &[
                    ("csrf", &page.csrf),
                    ("number", number),
                    ("exp_month", mm),
                    ("exp_year", yy),
                    ("cvc", cvc),
                    ("option", option),
                ],
            )
            .await;
        assert_eq!(r.status(), 422, "{number} {err}");
        let body = r.text().await.unwrap();
        assert!(
            body.contains(&format!("id=\"{err}\"")),
            "{number}/{mm}/{yy}/{cvc}/{option}: {err}"
        );
        assert!(!body.contains(number), "the card number is never echoed");
        assert!(
            !body.contains(&format!("value=\"{cvc}\"")),
            "the code is never echoed"
        );
    }
    assert_eq!(
        app.count("payments").await,
        0,
        "invalid input changes nothing"
    );
}
both!(form_errors_are_shown_per_field_and_never_echo_the_card);

async fn manual_capture_partial_capture_refund_and_cancel(app: TestApp) {
    let rx = Receiver::start().await;
    let m = app
        .merchant_with(|n| {
            n.capture_mode = "manual".into();
            n.callback_url = Some(rx.url.clone());
        })
        .await;
    let page = card_page(&app, &m, "mc", 10_000, UA_PC).await;
    assert_eq!(
        page.pay(&app, UA_PC, VISA, "123", "lump").await.status(),
        303
    );
    assert_eq!(payment_status(&app, "mc").await, vec!["authorized"]);
    let state = app_state(&app).await;
    let id = app
        .scalar_str("SELECT id FROM payments WHERE order_id = 'mc'")
        .await
        .unwrap();
    use kakehashi::flows::card;
    let err = card::capture(&state, &id, Some(10_001), "test")
        .await
        .unwrap_err();
    assert!(
        format!("{err:?}").contains("amount_exceeds_authorized"),
        "{err:?}"
    );
    let p = card::capture(&state, &id, Some(8_000), "test")
        .await
        .unwrap();
    assert_eq!((p.status.code(), p.captured_amount), ("captured", 8_000));
    let err = card::refund(&state, &id, 9_000, "test").await.unwrap_err();
    assert!(format!("{err:?}").contains("amount_exceeds_captured"));
    let p = card::refund(&state, &id, 3_000, "test").await.unwrap();
    assert_eq!((p.status.code(), p.refunded_amount), ("captured", 3_000));
    let p = card::refund(&state, &id, 5_000, "test").await.unwrap();
    assert_eq!(p.status.code(), "refunded");
    let err = card::cancel(&state, &id, "test").await.unwrap_err();
    assert!(format!("{err:?}").contains("invalid_transition"));
    let events: Vec<String> = kakehashi::db::payments::events(&app.db, &id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        events,
        vec![
            "payment.created",
            "payment.authorized",
            "payment.captured",
            "payment.refunded",
            "payment.refunded"
        ]
    );
    rx.wait_for("four notifications", |h| h.len() >= 4).await;

    // Cancel before capture.
    let page = card_page(&app, &m, "mc2", 500, UA_PC).await;
    assert_eq!(
        page.pay(&app, UA_PC, VISA, "123", "lump").await.status(),
        303
    );
    let id2 = app
        .scalar_str("SELECT id FROM payments WHERE order_id = 'mc2'")
        .await
        .unwrap();
    assert_eq!(
        card::cancel(&state, &id2, "test")
            .await
            .unwrap()
            .status
            .code(),
        "cancelled"
    );
    // Lapse: an authorization older than the limit expires.
    let page = card_page(&app, &m, "mc3", 500, UA_PC).await;
    assert_eq!(
        page.pay(&app, UA_PC, VISA, "123", "lump").await.status(),
        303
    );
    let now = kakehashi::util::now_ms();
    assert_eq!(
        card::lapse_due(&app.db, now + 61 * 86_400_000, 60)
            .await
            .unwrap(),
        1
    );
    assert_eq!(payment_status(&app, "mc3").await, vec!["expired"]);
}
both!(manual_capture_partial_capture_refund_and_cancel);

/// An AppState on the test's database, for calling the domain functions the CLI uses.
async fn app_state(app: &TestApp) -> kakehashi::state::AppState {
    let config = kakehashi::config::Config::for_tests(String::new());
    kakehashi::startup::App::build_with_db(config, app.db.clone())
        .await
        .unwrap()
        .state
}

async fn twenty_concurrent_submissions_make_one_payment(app: TestApp) {
    let m = app.merchant().await;
    let page = std::sync::Arc::new(card_page(&app, &m, "dbl", 2000, UA_PC).await);
    let app = std::sync::Arc::new(app);
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let (page, app) = (page.clone(), app.clone());
        set.spawn(async move {
            page.pay(&app, UA_PC, VISA, "123", "lump")
                .await
                .status()
                .as_u16()
        });
    }
    while let Some(s) = set.join_next().await {
        assert_eq!(s.unwrap(), 303);
    }
    assert_eq!(app.count("payments").await, 1);
    let authorized = app
        .count("payment_events WHERE type = 'payment.authorized'")
        .await;
    assert_eq!(authorized, 1, "exactly one authorization");
    // A refresh after paying shows the result, not a second charge.
    let body = page.result(&app, UA_PC).await;
    assert!(body.contains("お支払いが完了しました"));
    assert_eq!(
        page.pay(&app, UA_PC, VISA, "123", "lump").await.status(),
        303
    );
    assert_eq!(app.count("payments").await, 1);
}
both!(twenty_concurrent_submissions_make_one_payment);

async fn repeated_declines_lock_the_checkout(app: TestApp) {
    let m = app.merchant().await;
    let page = card_page(&app, &m, "lock", 1000, UA_PC).await;
    for _ in 0..5 {
        assert_eq!(
            page.pay(&app, UA_PC, "4000000000005100", "123", "lump")
                .await
                .status(),
            402
        );
    }
    let r = page.pay(&app, UA_PC, VISA, "123", "lump").await;
    assert_eq!(r.status(), 429);
    let body = r.text().await.unwrap();
    assert_eq!(error_code(&body), "checkout_locked");
    // The locked page is the shop's, says why in plain words and leads back to the shop.
    assert!(
        body.contains("テスト商店") && body.contains("id=\"back-to-shop\""),
        "{body}"
    );
    assert!(
        body.contains("カードのご利用を一時的に停止しています"),
        "{body}"
    );
    assert_eq!(
        app.count("payments").await,
        5,
        "the locked attempt charged nothing"
    );
}
both!(repeated_declines_lock_the_checkout);

async fn card_data_is_never_stored_logged_or_shown(app: TestApp) {
    let m = app.merchant().await;
    let pan = "5555555555554444";
    let cvc = "987";
    let page = card_page(&app, &m, "pci", 1000, UA_PC).await;
    let r = page.pay(&app, UA_PC, pan, cvc, "lump").await;
    assert_eq!(r.status(), 303);
    let mut pages = vec![page.result(&app, UA_PC).await];
    // A failing submission re-renders the form: it must not echo either value.
    let page2 = card_page(&app, &m, "pci2", 1000, UA_PC).await;
    let r = page2
        .pay(&app, UA_PC, "4000000000005308", cvc, "lump")
        .await;
    pages.push(r.text().await.unwrap());
    for p in &pages {
        assert!(!p.contains(pan) && !p.contains("5555 5555") && !p.contains("4000000000005308"));
        // As a value anywhere on the page (a bare "987" may occur inside a random token).
        assert!(!p.contains(&format!("\"{cvc}\"")) && !p.contains(&format!(">{cvc}<")));
    }
    // A challenge left waiting: its card is held (sealed) in the database meanwhile.
    let page3 = card_page(&app, &m, "pci3", 1000, UA_PC).await;
    let r = page3.pay(&app, UA_PC, CHALLENGE_VISA, cvc, "lump").await;
    assert_eq!(r.status(), 303);
    assert_eq!(app.count("pending_cards").await, 1, "the card is held");
    // Every text column of every table.
    let tables_sql = match &app.db {
        kakehashi::db::Db::Sqlite { .. } => {
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        }
        kakehashi::db::Db::Postgres(_) => {
            "SELECT table_name::text FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
        }
    };
    let tables: Vec<String> = kakehashi::on_db!(&app.db, c => sqlx::query_scalar(tables_sql)
        .fetch_all(c)
        .await)
    .unwrap();
    assert!(tables.iter().any(|t| t == "pending_cards"), "{tables:?}");
    assert!(tables.len() > 20, "{tables:?}");
    for table in tables {
        let sql = format!("SELECT * FROM {table}");
        let dump: Vec<String> = kakehashi::on_db!(&app.db, c => {
            use sqlx::Row;
            let rows = sqlx::query(&sql).fetch_all(c).await.unwrap();
            Ok::<_, sqlx::Error>(rows.iter()
                .flat_map(|r| (0..r.columns().len()).map(move |i| r.try_get::<String, _>(i).unwrap_or_default()))
                .collect::<Vec<String>>())
        })
        .unwrap();
        let all = dump.join("\n");
        assert!(
            !all.contains(pan)
                && !all.contains("4000000000005308")
                && !all.contains(CHALLENGE_VISA),
            "{table} holds a card number"
        );
        assert!(
            !all.contains(&format!("\"{cvc}\"")) && !all.contains(&format!("={cvc}")),
            "{table} holds the code"
        );
    }
    let logs = logs();
    assert!(!logs.is_empty(), "logs were captured");
    assert!(
        !logs.contains(pan) && !logs.contains("4000000000005308") && !logs.contains(CHALLENGE_VISA),
        "card number in logs"
    );
    assert!(
        !logs.contains(&format!("cvc={cvc}")) && !logs.contains(&format!("\"{cvc}\"")),
        "code in logs"
    );
}
both!(card_data_is_never_stored_logged_or_shown);

async fn feature_phone_card_payment(app: TestApp) {
    let m = app.merchant().await;
    let page = card_page(&app, &m, "fp-card", 1000, UA_DOCOMO).await;
    let r = page.pay(&app, UA_DOCOMO, VISA, "123", "lump").await;
    assert_eq!(r.status(), 303);
    let r = app
        .get(&format!("{}/card/result", page.base), UA_DOCOMO)
        .await;
    assert_eq!(r.headers()["content-type"], "text/html; charset=Shift_JIS");
    let bytes = r.bytes().await.unwrap();
    let (body, _, errors) = encoding_rs::SHIFT_JIS.decode(&bytes);
    assert!(!errors && bytes.len() < 10 * 1024);
    assert!(body.contains("お支払いが完了しました"));
}
both!(feature_phone_card_payment);

async fn demo_return_page_verifies_the_signed_result(app: TestApp) {
    let m = app.merchant().await;
    let page = card_page(&app, &m, "demo-ret", 1000, UA_PC).await;
    assert_eq!(
        page.pay(&app, UA_PC, VISA, "123", "lump").await.status(),
        303
    );
    let body = page.result(&app, UA_PC).await;
    let start = body.find("id=\"return-link\" href=\"").unwrap() + 23;
    let ret = body[start..]
        .split('"')
        .next()
        .unwrap()
        .replace("&amp;", "&")
        .replace("&#38;", "&");
    let query = ret.split_once('?').unwrap().1.to_owned();
    let ok = app
        .get(&format!("/demo/return?{query}"), UA_PC)
        .await
        .text()
        .await
        .unwrap();
    assert!(ok.contains("検証OK"), "{query}");
    let forged = query.replace("status=captured", "status=cancelled");
    let bad = app
        .get(&format!("/demo/return?{forged}"), UA_PC)
        .await
        .text()
        .await
        .unwrap();
    assert!(bad.contains("検証できません"));
}
both!(demo_return_page_verifies_the_signed_result);

/// The connector approved, but the server died before recording it: reconciliation asks the
/// connector and records exactly one authorization.
async fn reconciliation_completes_an_unrecorded_authorization(app: TestApp) {
    use kakehashi::connectors::card::{AuthorizeOutcome, AuthorizeRequest, CardConnector};
    use kakehashi::domain::card::*;
    let m = app.merchant().await;
    let f = app.fields(&m, "rec", 2500, &[]);
    assert_eq!(app.open(&m, &f, UA_PC).await.0, 200);
    let co = kakehashi::db::checkouts::find_by_order(&app.db, &m.id, "rec")
        .await
        .unwrap()
        .unwrap();
    let state = app_state(&app).await;
    let mut tx = app.db.begin().await.unwrap();
    let p = kakehashi::db::payments::create(
        &mut tx,
        &kakehashi::db::payments::NewPayment {
            merchant_id: &m.id,
            checkout_id: &co.id,
            order_id: "rec",
            method: kakehashi::domain::Method::Card,
            institution: Some("VISA"),
            status: kakehashi::domain::card::CardStatus::Awaiting3ds.into(),
            amount: 2500,
            fee: 0,
            deadline_at: None,
            details: serde_json::json!({}),
            connector: &kakehashi::domain::processor::ConnectorId::Sandbox,
        },
        "test",
        app.state.now_ms(),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let three_ds = ThreeDsResult {
        status: ThreeDsStatus::from_code("Y").unwrap(),
        eci: Some("05".into()),
    };
    let approved = state
        .connectors
        .sandbox_pages()
        .card
        .authorize(&AuthorizeRequest {
            payment_id: p.id.clone(),
            mode: kakehashi::domain::Mode::Test,
            card: CardNumber::parse(VISA).unwrap(),
            expiry: Expiry::new(future_exp_year_full(), 12).unwrap(),
            cvc: SecurityCode::parse("123", Brand::Visa).unwrap(),
            holder: None,
            amount: 2500,
            option: PaymentOption::parse("lump").unwrap(),
            three_ds,
        })
        .await
        .unwrap();
    assert!(matches!(approved, AuthorizeOutcome::Approved { .. }));
    // Nothing is reconciled while the payment is fresh.
    let now = kakehashi::util::now_ms();
    assert_eq!(
        kakehashi::flows::card::reconcile_stale(&app.db, &state.connectors, now)
            .await
            .unwrap(),
        0
    );
    let later = now + 2 * 60_000;
    assert_eq!(
        kakehashi::flows::card::reconcile_stale(&app.db, &state.connectors, later)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        kakehashi::flows::card::reconcile_stale(&app.db, &state.connectors, later)
            .await
            .unwrap(),
        0
    );
    assert_eq!(payment_status(&app, "rec").await, vec!["authorized"]);
    let authorized = app
        .count("payment_events WHERE type = 'payment.authorized'")
        .await;
    assert_eq!(authorized, 1, "exactly one event");
    let ev = kakehashi::db::payments::events(&app.db, &p.id)
        .await
        .unwrap();
    assert_eq!(ev.last().unwrap().actor, "system:reconcile");
    // A payment the connector never approved fails once the card data is gone.
    let f = app.fields(&m, "rec2", 900, &[]);
    assert_eq!(app.open(&m, &f, UA_PC).await.0, 200);
    let page = card_page(&app, &m, "rec3", 900, UA_PC).await;
    assert_eq!(
        page.pay(&app, UA_PC, CHALLENGE_VISA, "123", "lump")
            .await
            .status(),
        303
    );
    let much_later = now + 20 * 60_000;
    assert_eq!(
        kakehashi::flows::card::reconcile_stale(&app.db, &state.connectors, much_later)
            .await
            .unwrap(),
        1
    );
    assert_eq!(payment_status(&app, "rec3").await, vec!["failed"]);
}
both!(reconciliation_completes_an_unrecorded_authorization);

/// Issue 16 item 14: the challenge page uses one term (ワンタイムパスワード) and has a way
/// back: cancelling fails the challenged payment (not counted as a card failure) and shows the
/// selector, where the shopper can pay again.
async fn the_challenge_page_has_a_way_back(app: TestApp) {
    let m = app.merchant().await;
    for ua in [UA_PC, UA_DOCOMO] {
        let order = format!("ch-back-{}", ua.len());
        let page = card_page(&app, &m, &order, 1000, ua).await;
        let r = page.pay(&app, ua, "4000000000002008", "123", "lump").await;
        assert_eq!(r.status(), 303);
        let r = app.get(&format!("{}/card/challenge", page.base), ua).await;
        let body = if ua == UA_DOCOMO {
            sjis_text(r).await
        } else {
            r.text().await.unwrap()
        };
        assert!(
            !body.contains("認証コード") && !body.contains("認証ｺｰﾄﾞ"),
            "one term: {body}"
        );
        assert!(
            body.contains("ワンタイムパスワード") || body.contains("ﾜﾝﾀｲﾑﾊﾟｽﾜｰﾄﾞ"),
            "{body}"
        );
        let cancel = format!("{}/card/challenge/cancel", page.base);
        assert!(
            body.contains(&cancel.replace(&app.base, "")) || body.contains(&cancel),
            "{body}"
        );
        if ua == UA_DOCOMO {
            assert!(body.contains("accesskey=\"0\""), "{body}");
        }
        // A forged form is refused.
        let r = app.post_form(&cancel, ua, &[("csrf", "x")]).await;
        assert_eq!(r.status(), 403);
        let r = app.post_form(&cancel, ua, &[("csrf", &page.csrf)]).await;
        assert_eq!(r.status(), 303);
        assert!(
            location(&r).ends_with(page.base.rsplit('/').next().unwrap()),
            "to the selector"
        );
        assert_eq!(payment_status(&app, &order).await, ["failed"]);
        // The selector works again and the card can be paid.
        let r = page.pay(&app, ua, "4111111111111111", "123", "lump").await;
        assert_eq!(r.status(), 303, "paid after cancelling the challenge");
        assert_eq!(
            payment_status(&app, &order).await.last().unwrap(),
            "captured"
        );
    }
}
both!(the_challenge_page_has_a_way_back);
