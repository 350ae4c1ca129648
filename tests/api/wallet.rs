//! Wallets (PayPay, au PAY, …) in test mode, end to end over HTTP: the wallet choice with our
//! badges, the sandbox wallet page's three outcomes, signed returns (and forged ones), the
//! timeout job, refunds (partial, then the rest) through the API, and feature phones.

use kakehashi::flows::wallet::timeout_due;

use crate::helpers::*;

/// From the selector to the sandbox wallet page; returns (wallet page URL, method page path).
async fn to_wallet(
    app: &TestApp,
    m: &TestMerchant,
    order: &str,
    wallet: &str,
    ua: &str,
) -> (String, String) {
    let f = app.fields(m, order, 4_800, &[]);
    let (status, sel) = app.open(m, &f, ua).await;
    assert_eq!(status, 200, "{sel}");
    assert!(sel.contains("value=\"wallet\""), "offered on the selector");
    assert!(
        sel.contains("スマホ決済（PayPayなど）") && sel.contains("class=\"badge\""),
        "{sel}"
    );
    let r = app
        .post_form(
            &action(&sel),
            ua,
            &[("csrf", &hidden(&sel, "csrf")), ("method", "wallet")],
        )
        .await;
    assert_eq!(r.status(), 303);
    let method_page = location(&r);
    assert!(method_page.ends_with("/wallet"), "{method_page}");
    let r = app.get(&method_page, ua).await;
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    for name in [
        "PayPay",
        "au PAY",
        "メルペイ",
        "楽天ペイ",
        "ペイディ",
        "LINE Pay",
    ] {
        assert!(body.contains(name), "{name}");
    }
    assert!(body.contains("<svg class=\"badge\""), "our own badges");
    assert!(!body.contains("style="), "no inline styles (CSP)");
    let r = app
        .post_form(
            &method_page,
            ua,
            &[("csrf", &hidden(&body, "csrf")), ("wallet", wallet)],
        )
        .await;
    assert_eq!(r.status(), 303);
    let wallet_url = location(&r);
    assert!(
        wallet_url.starts_with(&format!("{}/sandbox/wallet/{wallet}/", app.base)),
        "{wallet_url}"
    );
    (wallet_url, method_page)
}

/// Presses a button on the sandbox wallet page.
async fn press(app: &TestApp, wallet_url: &str, choice: &str) -> reqwest::Response {
    let body = app.get(wallet_url, UA_PC).await.text().await.unwrap();
    assert!(body.contains("テスト環境"), "bannered as a sandbox page");
    assert!(body.contains("支払う（承認）") && body.contains("画面を閉じる（離脱）"));
    app.post_form(
        wallet_url,
        UA_PC,
        &[("csrf", &hidden(&body, "csrf")), ("choice", choice)],
    )
    .await
}

fn payment_id_of(return_url: &str) -> String {
    let path = return_url.split('?').next().unwrap();
    path.rsplit('/').next().unwrap().to_owned()
}

async fn approve_pays_notifies_and_refunds(app: TestApp) {
    let rx = Receiver::start().await;
    let m = app
        .merchant_with(|n| n.callback_url = Some(rx.url.clone()))
        .await;
    let (wallet_url, _) = to_wallet(&app, &m, "wl-1", "paypay", UA_PC).await;
    assert_eq!(app.checkout_status(&m, "wl-1").await, "pending");
    let r = press(&app, &wallet_url, "approve").await;
    assert_eq!(r.status(), 303);
    let ret = location(&r);
    assert!(
        ret.contains("/wallet/return/") && ret.contains("sig="),
        "{ret}"
    );
    let pid = payment_id_of(&ret);
    assert_eq!(app.payment_status(&pid).await, "awaiting_wallet");

    let r = app.get(&ret, UA_PC).await;
    assert_eq!(r.status(), 303);
    let body = app.get(&location(&r), UA_PC).await.text().await.unwrap();
    assert!(body.contains("お支払いが完了しました"), "{body}");
    assert!(body.contains("PayPay") && body.contains(&pid));
    assert!(body.contains("id=\"return-to-shop\""));
    assert_eq!(app.payment_status(&pid).await, "paid");
    assert_eq!(app.checkout_status(&m, "wl-1").await, "paid");
    // Reloading the return changes nothing.
    assert_eq!(app.get(&ret, UA_PC).await.status(), 303);
    let events = kakehashi::db::payments::events(&app.db, &pid)
        .await
        .unwrap();
    assert_eq!(
        events.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(),
        ["payment.created", "payment.completed"]
    );
    let hits = rx
        .wait_for("payment.completed", |h| {
            h.iter().any(|h| h.json()["type"] == "payment.completed")
        })
        .await;
    let hit = hits
        .iter()
        .find(|h| h.json()["type"] == "payment.completed")
        .unwrap();
    assert_eq!(hit.json()["data"]["method"], "wallet");
    assert_eq!(hit.json()["data"]["institution"], "paypay");

    // Refunds through the API: part, then more than what is left (refused), then the rest.
    let key = app.api_key(&m).await;
    let path = format!("/api/v1/payments/{pid}/refund");
    let r = app
        .api_post(&path, &key, serde_json::json!({ "amount": 1_000 }))
        .await;
    assert_eq!(r.status, 200, "{}", r.json);
    assert_eq!(r.json["status"], "paid");
    assert_eq!(r.json["refunded_amount"], 1_000);
    let r = app
        .api_post(&path, &key, serde_json::json!({ "amount": 3_801 }))
        .await;
    assert_eq!(r.code(), "amount_exceeds_captured", "{}", r.json);
    let r = app
        .api_post(&path, &key, serde_json::json!({ "amount": 3_800 }))
        .await;
    assert_eq!(r.status, 200, "{}", r.json);
    assert_eq!(r.json["status"], "refunded");
    assert_eq!(r.json["refunded_amount"], 4_800);
    let r = app
        .api_post(&path, &key, serde_json::json!({ "amount": 1 }))
        .await;
    assert_eq!((r.status, r.code()), (409, "invalid_transition"));
    let events = kakehashi::db::payments::events(&app.db, &pid)
        .await
        .unwrap();
    let refunds: Vec<_> = events
        .iter()
        .filter(|e| e.kind == "payment.refunded")
        .map(|e| e.amount)
        .collect();
    assert_eq!(refunds, [Some(1_000), Some(3_800)]);
    rx.wait_for("two payment.refunded", |h| {
        h.iter()
            .filter(|h| h.json()["type"] == "payment.refunded")
            .count()
            == 2
    })
    .await;
}
both!(approve_pays_notifies_and_refunds);

async fn decline_fails_and_offers_another_method(app: TestApp) {
    let m = app.merchant().await;
    let (wallet_url, method_page) = to_wallet(&app, &m, "wl-2", "merpay", UA_IPHONE).await;
    let ret = location(&press(&app, &wallet_url, "decline").await);
    let pid = payment_id_of(&ret);
    let result = location(&app.get(&ret, UA_IPHONE).await);
    let body = app.get(&result, UA_IPHONE).await.text().await.unwrap();
    assert!(
        body.contains("ウォレットでお支払いが承認されませんでした"),
        "{body}"
    );
    assert!(body.contains("別の方法で支払う"));
    assert_eq!(app.payment_status(&pid).await, "failed");
    assert_eq!(app.checkout_status(&m, "wl-2").await, "open");
    // A failed payment cannot be refunded.
    let key = app.api_key(&m).await;
    let r = app
        .api_post(
            &format!("/api/v1/payments/{pid}/refund"),
            &key,
            serde_json::json!({ "amount": 100 }),
        )
        .await;
    assert_eq!((r.status, r.code()), (409, "invalid_transition"));
    // The wallet can be tried again: a new payment.
    let body = app.get(&method_page, UA_IPHONE).await.text().await.unwrap();
    let r = app
        .post_form(
            &method_page,
            UA_IPHONE,
            &[("csrf", &hidden(&body, "csrf")), ("wallet", "paypay")],
        )
        .await;
    assert_eq!(r.status(), 303);
    assert!(location(&r).contains("/sandbox/wallet/paypay/"));
    assert_eq!(app.count("payments").await, 2);
}
both!(decline_fails_and_offers_another_method);

async fn walk_away_times_out_and_a_late_approval_is_kept(app: TestApp) {
    let rx = Receiver::start().await;
    let m = app
        .merchant_with(|n| n.callback_url = Some(rx.url.clone()))
        .await;
    let (wallet_url, _) = to_wallet(&app, &m, "wl-3", "aupay", UA_PC).await;
    let r = press(&app, &wallet_url, "walk_away").await;
    assert_eq!(r.status(), 200, "no redirect back");
    assert!(r.text().await.unwrap().contains("walked-away"));
    let session = wallet_url.rsplit('/').next().unwrap();
    let p =
        kakehashi::flows::redirect::by_session(&app.db, kakehashi::domain::Method::Wallet, session)
            .await
            .unwrap()
            .unwrap();
    assert_eq!(p.status.code(), "awaiting_wallet");
    // Back at the checkout, the shopper learns nothing was charged and when it is cancelled.
    let f = app.fields(&m, "wl-3", 4_800, &[]);
    let r = app.get(&app.link(&m, &f), UA_PC).await;
    assert_eq!(r.status(), 303, "reopening the link");
    let result = location(&r);
    assert!(result.contains("/wallet/result/"), "{result}");
    let body = app.get(&result, UA_PC).await.text().await.unwrap();
    let note = kakehashi::routes::redirect_result::wallet_note(
        p.created_at + kakehashi::domain::wallet::PENDING_TIMEOUT_MS,
        false,
    );
    assert!(body.contains(&note), "{body}");

    let now = p.created_at + 60_000;
    assert_eq!(timeout_due(&app.db, now).await.unwrap(), 0, "not yet due");
    let later = p.created_at + kakehashi::domain::wallet::PENDING_TIMEOUT_MS + 1_000;
    assert_eq!(timeout_due(&app.db, later).await.unwrap(), 1);
    assert_eq!(timeout_due(&app.db, later).await.unwrap(), 0, "once only");
    assert_eq!(app.payment_status(&p.id).await, "timed_out");
    assert_eq!(app.checkout_status(&m, "wl-3").await, "open");
    app.advance_clock_to(later);
    rx.wait_for("payment.expired", |h| {
        h.iter().any(|h| h.json()["type"] == "payment.expired")
    })
    .await;
    // A late approval (the money moved) is recorded, never dropped.
    let ret = location(&press(&app, &wallet_url, "approve").await);
    app.get(&ret, UA_PC).await;
    assert_eq!(app.payment_status(&p.id).await, "paid");
}
both!(walk_away_times_out_and_a_late_approval_is_kept);

/// The console's 返金 on a paid wallet payment: shown on the payment page, confirmed, partial
/// then the rest; an over-refund is refused and changes nothing.
async fn console_refunds_a_wallet_payment(app: TestApp) {
    use crate::console::{user, Console};
    let m = app.merchant().await;
    let (wallet_url, _) = to_wallet(&app, &m, "wl-6", "paypay", UA_PC).await;
    let ret = location(&press(&app, &wallet_url, "approve").await);
    let pid = payment_id_of(&ret);
    app.get(&ret, UA_PC).await;
    assert_eq!(app.payment_status(&pid).await, "paid");

    let u = user(&app, Some(&m.id), kakehashi::console::Role::Admin).await;
    let c = Console::login(&app, &u).await;
    let (s, page) = c.get(&format!("/console/payments/{pid}")).await;
    assert_eq!(s, 200);
    assert!(page.contains("value=\"refund\""), "{page}");
    let csrf = hidden(&page, "csrf");
    let path = format!("/console/payments/{pid}/action");
    let refund = |amount: &'static str| {
        let csrf = csrf.clone();
        let path = path.clone();
        let c = &c;
        async move {
            c.post(
                &path,
                &[
                    ("csrf", &csrf),
                    ("op", "refund"),
                    ("amount", amount),
                    ("confirm", "yes"),
                ],
            )
            .await
        }
    };
    assert_eq!(refund("800").await.status(), 303);
    assert_eq!(refund("4001").await.status(), 409);
    let row = kakehashi::db::payments::get(&app.db, &pid)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((row.status.code(), row.refunded_amount), ("paid", 800));
    assert_eq!(refund("4000").await.status(), 303);
    let row = kakehashi::db::payments::get(&app.db, &pid)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (row.status.code(), row.refunded_amount),
        ("refunded", 4_800)
    );
    let (_, page) = c.get(&format!("/console/payments/{pid}")).await;
    assert!(!page.contains("value=\"refund\""), "nothing left to refund");
}
both!(console_refunds_a_wallet_payment);

/// `kakehashi payment refund` on a wallet payment goes through the wallet's refund (not the
/// card's): part, then the rest; a second refund of nothing left is refused.
async fn cli_refunds_a_wallet_payment(app: TestApp) {
    use kakehashi::cli::{payment, PaymentCmd};
    let m = app.merchant().await;
    let (wallet_url, _) = to_wallet(&app, &m, "wl-7", "linepay", UA_PC).await;
    let ret = location(&press(&app, &wallet_url, "approve").await);
    let pid = payment_id_of(&ret);
    app.get(&ret, UA_PC).await;
    let refund = |amount: i64| PaymentCmd::Refund {
        payment_id: pid.clone(),
        amount,
    };
    payment(&app.state, refund(1_800)).await.unwrap();
    let row = kakehashi::db::payments::get(&app.db, &pid)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((row.status.code(), row.refunded_amount), ("paid", 1_800));
    payment(&app.state, refund(3_000)).await.unwrap();
    assert_eq!(app.payment_status(&pid).await, "refunded");
    assert!(payment(&app.state, refund(1)).await.is_err());
    let events = kakehashi::db::payments::events(&app.db, &pid)
        .await
        .unwrap();
    assert!(events
        .iter()
        .filter(|e| e.kind == "payment.refunded")
        .all(|e| e.actor == "cli"));
}
both!(cli_refunds_a_wallet_payment);

/// The merchant chooses its wallet brands on the console's settings page: the selector and the
/// wallet page show only those, a POST naming another brand is refused and stores nothing, and
/// wallets on with no brand chosen is refused. Merchants who never chose keep every brand.
async fn merchant_chooses_wallet_brands(app: TestApp) {
    use crate::console::{user, Console};
    let m = app.merchant().await;
    let stored = kakehashi::db::merchants::get(&app.db, &m.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.wallet_brands, kakehashi::domain::wallet::Brands::All);
    let u = user(&app, Some(&m.id), kakehashi::console::Role::Admin).await;
    let c = Console::login(&app, &u).await;
    let (s, page) = c.get("/console/settings").await;
    assert_eq!(s, 200);
    assert!(page.contains("スマホ決済のブランド"), "{page}");
    assert!(page.contains("name=\"wallets\" value=\"linepay\" checked"));
    let csrf = hidden(&page, "csrf");
    let base = [
        ("csrf", csrf.as_str()),
        ("return_origins", "https://shop.example"),
        ("methods", "card"),
        ("methods", "konbini"),
        ("methods", "wallet"),
        ("chains", "seven"),
        ("konbini_days", "10"),
        ("capture_mode", "auto"),
        ("theme", "demo"),
    ];
    // Wallets on, no brand: refused, nothing stored.
    let r = c.post("/console/settings", &base).await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("ブランドを1つ以上選択"));
    let mut good = base.to_vec();
    good.push(("wallets", "merpay"));
    good.push(("wallets", "aupay"));
    assert_eq!(c.post("/console/settings", &good).await.status(), 303);
    let stored = kakehashi::db::merchants::get(&app.db, &m.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.wallet_brands.code(), "aupay,merpay");

    // The selector no longer promises PayPay; the wallet page lists the two brands only.
    let f = app.fields(&m, "wl-9", 2_000, &[]);
    let (_, sel) = app.open(&m, &f, UA_PC).await;
    assert!(sel.contains("value=\"wallet\""), "{sel}");
    assert!(!sel.contains("PayPayなど"), "{sel}");
    let method_page = app.choose(&m, "wl-10", 2_000, "wallet", UA_PC).await;
    let body = app.get(&method_page, UA_PC).await.text().await.unwrap();
    assert!(
        body.contains("au PAY") && body.contains("メルペイ"),
        "{body}"
    );
    for other in [
        "value=\"paypay\"",
        "value=\"linepay\"",
        "楽天ペイ",
        "ペイディ",
    ] {
        assert!(!body.contains(other), "{other}");
    }
    // A hand-made POST naming a brand the merchant does not offer: refused, nothing stored.
    let r = app
        .post_form(
            &method_page,
            UA_PC,
            &[("csrf", &hidden(&body, "csrf")), ("wallet", "paypay")],
        )
        .await;
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(&r.text().await.unwrap()), "method_not_available");
    assert_eq!(app.count("payments").await, 0);
    assert_eq!(app.checkout_status(&m, "wl-10").await, "open");
    // An offered one still works.
    let r = app
        .post_form(
            &method_page,
            UA_PC,
            &[("csrf", &hidden(&body, "csrf")), ("wallet", "aupay")],
        )
        .await;
    assert_eq!(r.status(), 303);
    assert!(location(&r).contains("/sandbox/wallet/aupay/"));
}
both!(merchant_chooses_wallet_brands);
