//! Fees, settlements (精算) and PDF reports through the real server: fees charged when a
//! payment is collected (konbini 速報 through the sandbox endpoint, card capture) and undone by
//! a reversal, refunds, the cut-off (twice: one settlement per period), `settlement.created`,
//! the console pages, CSV and PDFs (their text read back), and merchant isolation.

use kakehashi::cli::SettlementCmd;
use kakehashi::console::Role;
use kakehashi::db::payments::{self, NewPayment, PaymentRow};
use kakehashi::db::settlements::{self, Terms};
use kakehashi::domain::fees::Schedule;
use kakehashi::domain::payout::{self, Cycle};
use kakehashi::domain::Method;
use serde_json::Value;

use crate::console::{user, Console};
use crate::helpers::*;

/// A checkout (opened through its signed link) and a payment of `method` at `institution` in
/// `status`, written directly in the store as the console tests do.
pub(crate) async fn payment(
    app: &TestApp,
    m: &TestMerchant,
    order: &str,
    method: Method,
    institution: &str,
    status: &str,
    amount: i64,
) -> PaymentRow {
    let f = app.fields(m, order, amount, &[]);
    assert_eq!(app.open(m, &f, UA_PC).await.0, 200);
    let co = kakehashi::db::checkouts::find_by_order(&app.db, &m.id, order)
        .await
        .unwrap()
        .unwrap();
    let mut tx = app.db.begin().await.unwrap();
    let p = payments::create(
        &mut tx,
        &NewPayment {
            merchant_id: &m.id,
            checkout_id: &co.id,
            order_id: order,
            method,
            institution: Some(institution),
            status: kakehashi::domain::payment::PaymentStatus::decode(method, status).unwrap(),
            amount,
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
    if method == Method::Card {
        // The sandbox acquirer's token for an approved authorization of `amount`.
        let token = format!("sbxtok-frictionless-{amount}-t{}", &p.id[4..12]);
        let mut tx = app.db.begin().await.unwrap();
        kakehashi::db::payments::set_connector_ref(&mut tx, &p.id, &token)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
    payments::get(&app.db, &p.id).await.unwrap().unwrap()
}

/// A konbini number paid (速報) through the signed sandbox control endpoint.
pub(crate) async fn sandbox(app: &TestApp, m: &TestMerchant, payment_id: &str, action: &str) {
    let path = format!("/sandbox/v1/payments/{payment_id}/{action}");
    let ts = now_s();
    let sig = kakehashi::signing::sign(&m.secret, &format!("POST\n{path}\n{ts}"));
    let r = app
        .client
        .post(format!("{}{path}", app.base))
        .header("x-merchant-id", &m.id)
        .header("x-key-id", &m.key_id)
        .header("x-timestamp", ts.to_string())
        .header("x-signature", sig)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{action}: {body}");
}

pub(crate) async fn fee_of(app: &TestApp, id: &str) -> i64 {
    payments::get(&app.db, id).await.unwrap().unwrap().fee
}

pub(crate) async fn terms(app: &TestApp, m: &TestMerchant, goods_taxable: bool) {
    settlements::set_terms(
        &app.db,
        &Terms {
            merchant_id: m.id.clone(),
            cycle: Cycle::MonthEnd,
            payout_delay_days: 15,
            settlement_fee: 1_500,
            goods_taxable,
        },
        app.state.now_ms(),
    )
    .await
    .unwrap();
}

/// The day after the current month-end period (Japan time): its cut-off date.
pub(crate) fn cutoff_day(app: &TestApp) -> (payout::Period, time::Date) {
    let today = payout::jst_date(app.state.now_ms());
    let period = payout::period_of(Cycle::MonthEnd, today);
    (period, period.last + time::Duration::days(1))
}

pub(crate) fn pdf_text(bytes: &[u8]) -> String {
    pdf_extract::extract_text_from_mem(bytes).unwrap()
}

/// The PDF text without the spaces and line breaks an extractor puts between drawn strings.
pub(crate) fn squeezed(text: &str) -> String {
    text.chars().filter(|c| !c.is_whitespace()).collect()
}

async fn settlement_over_a_period_with_refunds(app: TestApp) {
    let rx = Receiver::start().await;
    let m = app
        .merchant_with(|n| {
            n.callback_url = Some(rx.url.clone());
            n.name = "さくら商店".into();
        })
        .await;
    terms(&app, &m, false).await;
    let now = app.state.now_ms();
    // Smart Pit プラン120 for konbini, 3.25 % for cards.
    let plan120 = Schedule {
        fixed_fee: 120,
        rate_bp: 0,
    };
    settlements::set_schedule(&app.db, &m.id, Method::Konbini, plan120, now)
        .await
        .unwrap();
    let card = Schedule {
        fixed_fee: 0,
        rate_bp: 325,
    };
    settlements::set_schedule(&app.db, &m.id, Method::Card, card, now)
        .await
        .unwrap();

    // Konbini at the stamp boundary: 50,000 carries 200 yen, 49,999 none.
    let a = payment(
        &app,
        &m,
        "s-a",
        Method::Konbini,
        "lawson",
        "awaiting_payment",
        50_000,
    )
    .await;
    assert_eq!(
        fee_of(&app, &a.id).await,
        0,
        "nothing is charged before collection"
    );
    sandbox(&app, &m, &a.id, "paid").await;
    assert_eq!(fee_of(&app, &a.id).await, 120 + 12 + 200);
    let b = payment(
        &app,
        &m,
        "s-b",
        Method::Konbini,
        "seven",
        "awaiting_payment",
        49_999,
    )
    .await;
    sandbox(&app, &m, &b.id, "paid").await;
    assert_eq!(fee_of(&app, &b.id).await, 120 + 12);
    // 確報 after 速報 charges nothing twice.
    sandbox(&app, &m, &b.id, "confirm").await;
    assert_eq!(fee_of(&app, &b.id).await, 132);
    // Paid, then 速報取消: everything is undone.
    let c = payment(
        &app,
        &m,
        "s-c",
        Method::Konbini,
        "lawson",
        "awaiting_payment",
        10_000,
    )
    .await;
    sandbox(&app, &m, &c.id, "paid").await;
    sandbox(&app, &m, &c.id, "reverse").await;
    assert_eq!(fee_of(&app, &c.id).await, 0);
    // Never paid: no fee (0 yen per uncollected payment).
    let e = payment(
        &app,
        &m,
        "s-e",
        Method::Konbini,
        "lawson",
        "awaiting_payment",
        3_000,
    )
    .await;
    // Card: 3.25 % of 20,000 = 650 (+65 tax) when captured; a refund returns no fee.
    let d = payment(&app, &m, "s-d", Method::Card, "VISA", "authorized", 20_000).await;
    assert_eq!(
        fee_of(&app, &d.id).await,
        0,
        "an authorisation is not collected"
    );
    kakehashi::flows::card::capture(&app.state, &d.id, None, "test")
        .await
        .unwrap();
    assert_eq!(fee_of(&app, &d.id).await, 715);
    kakehashi::flows::card::refund(&app.state, &d.id, 5_000, "test")
        .await
        .unwrap();
    assert_eq!(fee_of(&app, &d.id).await, 715);
    assert!(settlements::entries_of_payment(&app.db, &e.id)
        .await
        .unwrap()
        .is_empty());

    // Nothing is settled before the period ends.
    let (period, day) = cutoff_day(&app);
    let today = payout::jst_date(now);
    let made = kakehashi::flows::settlements::cutoff(&app.db, today, now)
        .await
        .unwrap();
    assert!(made.is_empty());

    let made = kakehashi::flows::settlements::cutoff(&app.db, day, now)
        .await
        .unwrap();
    assert_eq!(made.len(), 1);
    let s = &made[0];
    assert_eq!(s.merchant_id, m.id);
    assert_eq!(s.period_start, payout::ymd(period.first));
    assert_eq!(s.period_end, payout::ymd(period.last));
    assert_eq!(s.payout_date, payout::ymd(payout::payout_date(period, 15)));
    // Hand-computed: collected 50,000 + 49,999 + 10,000 + 20,000; refunds 10,000 (reversal)
    // + 5,000; fees 120 × 3 − 120 + 650 = 890; tax on 890 + 1,500 = 239; stamp 200.
    assert_eq!(s.payment_count, 4);
    assert_eq!(s.gross, 129_999);
    assert_eq!(s.refunds, 15_000);
    assert_eq!(s.fees, 890);
    assert_eq!(s.settlement_fee, 1_500);
    assert_eq!(s.fee_tax, 239);
    assert_eq!(s.stamp_duty, 200);
    assert_eq!(s.net, 112_170);

    // The CLI's cut-off for the same day builds nothing more.
    kakehashi::cli::settlement(
        &app.db,
        SettlementCmd::Cutoff {
            date: Some(payout::ymd(day)),
        },
    )
    .await
    .unwrap();
    assert_eq!(app.count("settlements").await, 1);
    let again = kakehashi::flows::settlements::cutoff(&app.db, day + time::Duration::days(3), now)
        .await
        .unwrap();
    assert!(again.is_empty());
    assert_eq!(app.count("settlements").await, 1);

    // settlement.created reaches the merchant, once.
    app.state.wake_notifier();
    let hits = rx
        .wait_for("settlement.created", |h| {
            h.iter().any(|h| h.json()["type"] == "settlement.created")
        })
        .await;
    let ev: Vec<Value> = hits
        .iter()
        .map(|h| h.json())
        .filter(|j| j["type"] == "settlement.created")
        .collect();
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0]["data"]["settlement_id"], s.id.as_str());
    assert_eq!(ev[0]["data"]["net"], 112_170);
    assert_eq!(ev[0]["data"]["payout_date"], s.payout_date.as_str());
}
both!(settlement_over_a_period_with_refunds);

async fn console_pages_csv_pdf_and_isolation(app: TestApp) {
    let m = app.merchant_with(|n| n.name = "さくら商店".into()).await;
    let other = app.merchant().await;
    terms(&app, &m, false).await;
    let a = payment(
        &app,
        &m,
        "p-a",
        Method::Konbini,
        "lawson",
        "awaiting_payment",
        50_000,
    )
    .await;
    sandbox(&app, &m, &a.id, "paid").await;
    let b = payment(
        &app,
        &m,
        "p-b",
        Method::Konbini,
        "famima",
        "awaiting_payment",
        12_345,
    )
    .await;
    sandbox(&app, &m, &b.id, "paid").await;
    let (_, day) = cutoff_day(&app);
    let now = app.state.now_ms();
    let made = kakehashi::flows::settlements::cutoff(&app.db, day, now)
        .await
        .unwrap();
    let s = made.into_iter().find(|s| s.merchant_id == m.id).unwrap();
    // 62,345 − 1,500 − 150 tax − 200 stamp.
    assert_eq!(s.net, 60_495);

    let staff = Console::login(&app, &user(&app, Some(&m.id), Role::General).await).await;
    let (status, list) = staff.get("/console/settlements").await;
    assert_eq!(status, 200);
    assert!(list.contains(&s.id), "{list}");
    let (status, page) = staff.get(&format!("/console/settlements/{}", s.id)).await;
    assert_eq!(status, 200);
    assert!(page.contains("60,495円"), "{page}");
    assert!(page.contains(&a.id));
    // The payment's detail shows its fees and the settlement that took them.
    let (_, detail) = staff.get(&format!("/console/payments/{}", a.id)).await;
    assert!(detail.contains("手数料・精算"), "{detail}");
    assert!(detail.contains(&format!("/console/settlements/{}", s.id)));

    // CSV of the entries: header and one line per entry.
    let (status, csv) = staff
        .get(&format!("/console/settlements/{}/csv", s.id))
        .await;
    assert_eq!(status, 200);
    let lines: Vec<&str> = csv.trim_end().split("\r\n").collect();
    assert_eq!(lines.len(), 3, "{csv}");
    assert!(lines[0]
        .trim_start_matches('\u{feff}')
        .starts_with("日時,決済ID,取引ID"));
    assert!(lines
        .iter()
        .any(|l| l.contains(&a.id) && l.contains(",50000,0,0,0,200")));
    let (_, list_csv) = staff.get("/console/settlements.csv").await;
    assert!(list_csv.contains(&format!("{},{}", s.id, m.id)));
    assert!(list_csv.contains(",60495"));

    // The statement PDF: real text, with the totals.
    let r = staff_get(&staff, &format!("/console/settlements/{}/pdf", s.id)).await;
    assert_eq!(r.0, 200);
    assert_eq!(r.1, "application/pdf");
    let text = squeezed(&pdf_text(&r.2));
    for want in [
        "支払明細書",
        "さくら商店様",
        "差引支払額",
        "60,495円",
        "62,345円",
        "印紙代",
        s.id.as_str(),
        a.id.as_str(),
    ] {
        assert!(text.contains(want), "{want} in the statement: {text}");
    }
    // The konbini collection report of the month.
    let today = payout::jst_date(now);
    let from = payout::ymd(payout::period_of(Cycle::MonthEnd, today).first);
    let r = staff_get(
        &staff,
        &format!(
            "/console/reports/konbini.pdf?from={from}&to={}",
            payout::ymd(today)
        ),
    )
    .await;
    assert_eq!(r.0, 200);
    let text = squeezed(&pdf_text(&r.2));
    for want in [
        "収納明細書",
        "ローソン",
        "ファミリーマート",
        "62,345円",
        "2件",
        b.id.as_str(),
    ] {
        assert!(text.contains(want), "{want} in the konbini report: {text}");
    }

    // Another merchant's staff: not found, and not listed.
    let intruder = Console::login(&app, &user(&app, Some(&other.id), Role::Admin).await).await;
    for path in [
        format!("/console/settlements/{}", s.id),
        format!("/console/settlements/{}/csv", s.id),
        format!("/console/settlements/{}/pdf", s.id),
    ] {
        assert_eq!(intruder.get(&path).await.0, 404, "{path}");
    }
    let (_, theirs) = intruder.get("/console/settlements").await;
    assert!(!theirs.contains(&s.id));
    let (_, theirs) = intruder.get("/console/settlements.csv").await;
    assert!(!theirs.contains(&s.id));
    // Their konbini report is their own: a merchant parameter is ignored.
    let r = staff_get(
        &intruder,
        &format!("/console/reports/konbini.pdf?merchant={}", m.id),
    )
    .await;
    assert_eq!(r.0, 200);
    let text = squeezed(&pdf_text(&r.2));
    assert!(!text.contains(&a.id) && text.contains("0件"), "{text}");
    // Signed out: the sign-in page.
    let anon = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = anon
        .get(format!("{}/console/settlements/{}/pdf", app.base, s.id))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
}
both!(console_pages_csv_pdf_and_isolation);

/// A GET returning status, content type and body bytes.
async fn staff_get(c: &Console, path: &str) -> (u16, String, Vec<u8>) {
    let r = c.get_raw(path).await;
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (r.status().as_u16(), ct, r.bytes().await.unwrap().to_vec())
}

async fn stamp_duty_follows_the_chain_for_taxable_goods(app: TestApp) {
    let m = app.merchant().await;
    terms(&app, &m, true).await;
    // Taxable goods: Lawson compares the tax-excluded price (50,000 included → 45,454), while
    // 7-Eleven stamps every receipt from 50,000; 55,000 at Lawson is 50,000 excluded.
    let cases = [
        ("t-l50", "lawson", 50_000, 0),
        ("t-l55", "lawson", 55_000, 200),
        ("t-s50", "seven", 50_000, 200),
        ("t-s49", "seven", 49_999, 0),
    ];
    for (order, chain, amount, stamp) in cases {
        let p = payment(
            &app,
            &m,
            order,
            Method::Konbini,
            chain,
            "awaiting_payment",
            amount,
        )
        .await;
        sandbox(&app, &m, &p.id, "paid").await;
        let entries = settlements::entries_of_payment(&app.db, &p.id)
            .await
            .unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].stamp_duty, stamp, "{chain} {amount}");
        assert_eq!(
            fee_of(&app, &p.id).await,
            stamp,
            "no schedule: stamp duty only"
        );
    }
}
both!(stamp_duty_follows_the_chain_for_taxable_goods);

/// The `settlements` worker (ticking at the sweep interval) settles a period on its first tick
/// after the period ended, and notifies the merchant.
async fn the_worker_settles_when_the_period_ends(app: TestApp) {
    let rx = Receiver::start().await;
    let m = app
        .merchant_with(|n| n.callback_url = Some(rx.url.clone()))
        .await;
    terms(&app, &m, false).await;
    let a = payment(
        &app,
        &m,
        "w-a",
        Method::Konbini,
        "lawson",
        "awaiting_payment",
        10_000,
    )
    .await;
    sandbox(&app, &m, &a.id, "paid").await;
    assert_eq!(
        app.count("settlements").await,
        0,
        "the period has not ended"
    );
    let (period, day) = cutoff_day(&app);
    app.advance_clock_to(payout::jst_midnight_ms(day) + 60_000);
    let s = eventually("the worker's settlement", || async {
        settlements::list(
            &app.db,
            &kakehashi::domain::scope::Scope::Merchant(m.id.clone()),
            None,
            10,
        )
        .await
        .unwrap()
        .into_iter()
        .next()
    })
    .await;
    assert_eq!(s.period_start, payout::ymd(period.first));
    assert_eq!((s.gross, s.net), (10_000, 10_000 - 1_500 - 150));
    rx.wait_for("settlement.created", |h| {
        h.iter().any(|h| h.json()["type"] == "settlement.created")
    })
    .await;
}

mod worker {
    use crate::helpers::{spawn_app_with, Backend};

    #[tokio::test]
    async fn sqlite() {
        let app = spawn_app_with(Backend::Sqlite, |c| c.sweep_interval_ms = 50)
            .await
            .unwrap();
        super::the_worker_settles_when_the_period_ends(app).await;
    }

    #[tokio::test]
    async fn postgres() {
        if let Some(app) = spawn_app_with(Backend::Postgres, |c| c.sweep_interval_ms = 50).await {
            super::the_worker_settles_when_the_period_ends(app).await;
        }
    }
}
