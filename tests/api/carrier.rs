//! Carrier billing end to end over HTTP: each carrier on PC and smartphone, d払い on a feature
//! phone (Shift_JIS, no cookies), wrong password, decline, cancel, the monthly limit, and
//! continuous billing (monthly charge, cancellation).

use kakehashi::flows::carrier::{cancel_subscription, charge_due_subscriptions, set_continuous};

use crate::helpers::*;

const PHONE: &str = "090-1234-5678";

/// From the selector to the sandbox carrier page; returns its URL.
async fn to_carrier(
    app: &TestApp,
    m: &TestMerchant,
    order: &str,
    amount: i64,
    carrier: &str,
    ua: &str,
    billing: &str,
) -> String {
    let page = app.choose(m, order, amount, carrier, ua).await;
    assert!(page.ends_with(&format!("/{carrier}")), "{page}");
    let body = app.get(&page, ua).await.text().await.unwrap();
    let r = app
        .post_form(
            &page,
            ua,
            &[("csrf", &hidden(&body, "csrf")), ("billing", billing)],
        )
        .await;
    assert_eq!(r.status(), 303, "start {carrier}");
    let url = location(&r);
    assert!(
        url.starts_with(&format!("{}/sandbox/carrier/{carrier}/", app.base)),
        "{url}"
    );
    url
}

/// Logs in on the sandbox page; returns the response.
async fn login(app: &TestApp, url: &str, ua: &str, phone: &str, pw: &str) -> reqwest::Response {
    let body = app.get(url, ua).await.text().await.unwrap();
    app.post_form(
        url,
        ua,
        &[
            ("csrf", &hidden(&body, "csrf")),
            ("step", "login"),
            ("phone", phone),
            ("password", pw),
        ],
    )
    .await
}

async fn decide(app: &TestApp, url: &str, ua: &str, decision: &str) -> String {
    let body = app.get(url, ua).await.text().await.unwrap();
    let r = app
        .post_form(
            url,
            ua,
            &[
                ("csrf", &hidden(&body, "csrf")),
                ("step", "decide"),
                ("decision", decision),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);
    location(&r)
}

/// Follows a signed return to the result page; returns (payment id, result page body).
async fn come_back(app: &TestApp, ret: &str, ua: &str) -> (String, String) {
    let pid = ret
        .split('?')
        .next()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    let r = app.get(ret, ua).await;
    assert_eq!(r.status(), 303, "{ret}");
    let body = app.get(&location(&r), ua).await.text().await.unwrap();
    (pid, body)
}

/// The whole happy path; returns the payment id.
async fn pay(
    app: &TestApp,
    m: &TestMerchant,
    order: &str,
    amount: i64,
    carrier: &str,
    ua: &str,
) -> String {
    let url = to_carrier(app, m, order, amount, carrier, ua, "one_off").await;
    let r = login(app, &url, ua, PHONE, "1234").await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("承認する"));
    let ret = decide(app, &url, ua, "approve").await;
    let (pid, body) = come_back(app, &ret, ua).await;
    assert!(body.contains("お支払いが完了しました"), "{body}");
    assert!(body.contains("ショップに戻る"));
    pid
}

async fn each_carrier_on_pc_and_smartphone(app: TestApp) {
    let rx = Receiver::start().await;
    let m = app
        .merchant_with(|n| n.callback_url = Some(rx.url.clone()))
        .await;
    let mut n = 0;
    for carrier in ["docomo", "au", "softbank"] {
        for ua in [UA_PC, UA_ANDROID] {
            n += 1;
            let order = format!("cr-{n}");
            let pid = pay(&app, &m, &order, 1_200, carrier, ua).await;
            assert_eq!(app.payment_status(&pid).await, "completed");
            assert_eq!(app.checkout_status(&m, &order).await, "paid");
            let p = kakehashi::db::payments::get(&app.db, &pid)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(p.method.code(), carrier);
            // The login phone number is kept only as a keyed hash.
            assert!(p.details_json()["phone_hash"].as_str().unwrap().len() == 64);
            assert!(!p.details.contains("12345678"), "{}", p.details);
        }
    }
    rx.wait_for("six payment.completed", |h| {
        h.iter()
            .filter(|h| h.json()["type"] == "payment.completed")
            .count()
            == 6
    })
    .await;
}
both!(each_carrier_on_pc_and_smartphone);

async fn docomo_on_a_feature_phone(app: TestApp) {
    let m = app.merchant().await;
    let f = app.fields(&m, "fp-1", 800, &[]);
    let r = app.get(&app.link(&m, &f), UA_DOCOMO).await;
    let sel = sjis_text(r).await;
    assert!(sel.contains("value=\"docomo\""));
    assert!(!sel.contains("value=\"au\"") && !sel.contains("value=\"softbank\""));
    // Shift_JIS form posts, no cookies: the session lives in the URL.
    let r = app
        .post_sjis(
            &action(&sel),
            UA_DOCOMO,
            &[("csrf", &hidden(&sel, "csrf")), ("method", "docomo")],
        )
        .await;
    assert_eq!(r.status(), 303);
    assert!(r.headers().get("set-cookie").is_none());
    let page = location(&r);
    let r = app.get(&page, UA_DOCOMO).await;
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .contains("Shift_JIS"));
    let body = sjis_text(r).await;
    assert!(body.contains("d払い") && body.contains("accesskey="));
    assert!(!body.contains("<script") && !body.contains("継続課金"));
    let r = app
        .post_sjis(
            &page,
            UA_DOCOMO,
            &[("csrf", &hidden(&body, "csrf")), ("billing", "one_off")],
        )
        .await;
    assert_eq!(r.status(), 303);
    let sbx = location(&r);

    // The sandbox carrier page in the feature-phone layout.
    let r = app.get(&sbx, UA_DOCOMO).await;
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .contains("Shift_JIS"));
    let bytes = r.bytes().await.unwrap();
    assert!(bytes.len() < 10 * 1024, "small page");
    let body = encoding_rs::SHIFT_JIS.decode(&bytes).0.into_owned();
    assert!(body.contains("テスト環境"));
    assert!(body.contains("istyle=\"4\" mode=\"numeric\""));
    assert!(body.contains("accesskey=\"1\""));
    assert!(!body.contains("<script") && !body.contains("stylesheet"));
    let csrf = hidden(&body, "csrf");
    // A wrong password first (message in Shift_JIS), then the right one.
    let r = app
        .post_sjis(
            &sbx,
            UA_DOCOMO,
            &[
                ("csrf", &csrf),
                ("step", "login"),
                ("phone", "09012345678"),
                ("password", "5555"),
            ],
        )
        .await;
    assert!(sjis_text(r).await.contains("暗証番号が違います"));
    let r = app
        .post_sjis(
            &sbx,
            UA_DOCOMO,
            &[
                ("csrf", &csrf),
                ("step", "login"),
                ("phone", "09012345678"),
                ("password", "1234"),
            ],
        )
        .await;
    assert!(sjis_text(r).await.contains("承認する"));
    let r = app
        .post_sjis(
            &sbx,
            UA_DOCOMO,
            &[("csrf", &csrf), ("step", "decide"), ("decision", "approve")],
        )
        .await;
    assert_eq!(r.status(), 303);
    let r = app.get(&location(&r), UA_DOCOMO).await;
    assert_eq!(r.status(), 303);
    let r = app.get(&location(&r), UA_DOCOMO).await;
    let body = sjis_text(r).await;
    assert!(body.contains("お支払いが完了しました"), "{body}");
    assert!(body.contains("accesskey=\"0\">0.ショップに戻る"));
    assert_eq!(app.checkout_status(&m, "fp-1").await, "paid");
}
both!(docomo_on_a_feature_phone);

async fn au_and_softbank_not_on_feature_phones(app: TestApp) {
    let m = app.merchant().await;
    for (i, ua) in [UA_AU, UA_SOFTBANK, UA_DOCOMO].into_iter().enumerate() {
        let f = app.fields(&m, &format!("fp-x{i}"), 800, &[]);
        let sel = sjis_text(app.get(&app.link(&m, &f), ua).await).await;
        let token_action = action(&sel);
        for carrier in ["au", "softbank"] {
            let r = app
                .post_sjis(
                    &token_action,
                    ua,
                    &[("csrf", &hidden(&sel, "csrf")), ("method", carrier)],
                )
                .await;
            assert_eq!(r.status(), 400, "{carrier} on {ua}");
            assert_eq!(error_code(&sjis_text(r).await), "method_not_available");
            // The carrier page itself refuses too.
            let page = token_action.replace("/method", &format!("/{carrier}"));
            let r = app.get(&page, ua).await;
            assert_eq!(error_code(&sjis_text(r).await), "method_not_available");
        }
    }
    assert_eq!(app.count("payments").await, 0);
}
both!(au_and_softbank_not_on_feature_phones);

async fn wrong_password_then_decline_then_cancel(app: TestApp) {
    let m = app.merchant().await;
    let url = to_carrier(&app, &m, "cd-1", 3_000, "au", UA_PC, "one_off").await;
    let r = login(&app, &url, UA_PC, PHONE, "9999").await;
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    assert!(body.contains("暗証番号が違います"));
    assert!(
        body.contains("value=\"090-1234-5678\""),
        "number kept for the retry"
    );
    let body = login(&app, &url, UA_PC, "0312345678", "1234")
        .await
        .text()
        .await
        .unwrap();
    assert!(body.contains("070・080・090"));
    // Approving without a login is not possible.
    let b = app.get(&url, UA_PC).await.text().await.unwrap();
    let r = app
        .post_form(
            &url,
            UA_PC,
            &[
                ("csrf", &hidden(&b, "csrf")),
                ("step", "decide"),
                ("decision", "approve"),
            ],
        )
        .await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("先にログインしてください"));

    // 0000: the carrier declines.
    let r = login(&app, &url, UA_PC, PHONE, "0000").await;
    assert_eq!(r.status(), 303);
    let (pid, body) = come_back(&app, &location(&r), UA_PC).await;
    assert!(body.contains("携帯電話会社でお支払いが承認されませんでした"));
    assert!(body.contains("別の方法で支払う"));
    assert_eq!(app.payment_status(&pid).await, "failed");
    assert_eq!(app.checkout_status(&m, "cd-1").await, "open");

    // Try again with another carrier and cancel on its page: may then pay another way.
    let token_page = app.choose(&m, "cd-1", 3_000, "softbank", UA_PC).await;
    let body = app.get(&token_page, UA_PC).await.text().await.unwrap();
    let r = app
        .post_form(
            &token_page,
            UA_PC,
            &[("csrf", &hidden(&body, "csrf")), ("billing", "one_off")],
        )
        .await;
    let url = location(&r);
    let ret = decide(&app, &url, UA_PC, "cancel").await;
    let (pid2, body) = come_back(&app, &ret, UA_PC).await;
    assert!(body.contains("お支払いをキャンセルしました"));
    assert_eq!(app.payment_status(&pid2).await, "cancelled");
    let pid3 = pay(&app, &m, "cd-1", 3_000, "docomo", UA_PC).await;
    assert_eq!(app.payment_status(&pid3).await, "completed");
}
both!(wrong_password_then_decline_then_cancel);

async fn abandoned_attempt_does_not_block_a_new_one(app: TestApp) {
    let m = app.merchant().await;
    let first = to_carrier(&app, &m, "ab-1", 500, "docomo", UA_PC, "one_off").await;
    // The shopper leaves the carrier page and starts again.
    let pid = pay(&app, &m, "ab-1", 500, "au", UA_PC).await;
    assert_eq!(app.payment_status(&pid).await, "completed");
    let session = first.rsplit('/').next().unwrap();
    let old =
        kakehashi::flows::redirect::by_session(&app.db, kakehashi::domain::Method::Docomo, session)
            .await
            .unwrap()
            .unwrap();
    assert_eq!(old.status.code(), "cancelled");
    // Its page is closed now.
    assert_eq!(app.get(&first, UA_PC).await.status(), 409);
}
both!(abandoned_attempt_does_not_block_a_new_one);

async fn monthly_limit_per_phone_number(app: TestApp) {
    let rx = Receiver::start().await;
    let m = app
        .merchant_with(|n| n.callback_url = Some(rx.url.clone()))
        .await;
    pay(&app, &m, "lim-1", 60_000, "docomo", UA_PC).await;
    // Same phone number, same month: 60,000 + 50,000 > 100,000.
    let url = to_carrier(&app, &m, "lim-2", 50_000, "docomo", UA_PC, "one_off").await;
    let r = login(&app, &url, UA_PC, "09012345678", "1234").await;
    assert_eq!(r.status(), 303);
    let result = location(&r);
    let body = app.get(&result, UA_PC).await.text().await.unwrap();
    assert!(
        body.contains("今月のご利用上限（100,000円）を超える"),
        "{body}"
    );
    assert!(body.contains("残りは40,000円"));
    assert!(body.contains("別の方法で支払う"));
    let pid = result.rsplit('/').next().unwrap();
    let p = kakehashi::db::payments::get(&app.db, pid)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(p.status.code(), "failed");
    assert_eq!(
        p.details_json()["failure_reason"],
        "carrier_monthly_limit_exceeded"
    );
    assert_eq!(app.checkout_status(&m, "lim-2").await, "open");
    rx.wait_for("payment.failed", |h| {
        h.iter().any(|h| h.json()["type"] == "payment.failed")
    })
    .await;
    // Another phone number has its own limit.
    let url = to_carrier(&app, &m, "lim-2", 50_000, "docomo", UA_PC, "one_off").await;
    assert_eq!(
        login(&app, &url, UA_PC, "08011112222", "1234")
            .await
            .status(),
        200
    );
    // Exactly up to the limit is fine for the first number.
    pay(&app, &m, "lim-3", 40_000, "docomo", UA_PC).await;
}
both!(monthly_limit_per_phone_number);

async fn continuous_billing_charges_monthly_until_cancelled(app: TestApp) {
    let reg = app.state.connectors.clone();
    let rx = Receiver::start().await;
    let m = app
        .merchant_with(|n| n.callback_url = Some(rx.url.clone()))
        .await;
    // Off by default: the choice is not offered and a forged post is refused.
    let page = app.choose(&m, "sub-0", 980, "softbank", UA_PC).await;
    let body = app.get(&page, UA_PC).await.text().await.unwrap();
    assert!(!body.contains("継続課金"));
    let r = app
        .post_form(
            &page,
            UA_PC,
            &[("csrf", &hidden(&body, "csrf")), ("billing", "continuous")],
        )
        .await;
    assert_eq!(r.status(), 400);
    assert_eq!(app.count("payments").await, 0);

    set_continuous(&app.db, &m.id, true).await.unwrap();
    let page = app.choose(&m, "sub-1", 980, "softbank", UA_IPHONE).await;
    let body = app.get(&page, UA_IPHONE).await.text().await.unwrap();
    assert!(body.contains("都度払い") && body.contains("継続課金"));
    let url = to_carrier(&app, &m, "sub-1", 980, "softbank", UA_IPHONE, "continuous").await;
    assert!(app
        .get(&url, UA_IPHONE)
        .await
        .text()
        .await
        .unwrap()
        .contains("継続課金"));
    login(&app, &url, UA_IPHONE, PHONE, "1234").await;
    let ret = decide(&app, &url, UA_IPHONE, "approve").await;
    let (pid, body) = come_back(&app, &ret, UA_IPHONE).await;
    assert!(body.contains("お支払いが完了しました"));
    let first = kakehashi::db::payments::get(&app.db, &pid)
        .await
        .unwrap()
        .unwrap();
    let sub_id = first.details_json()["subscription_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let sub = kakehashi::flows::carrier::subscription(&app.db, &sub_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sub.status, "active");
    assert_eq!(sub.amount, 980);
    assert!(sub.next_charge_at > first.paid_at.unwrap() + 27 * 24 * 3600 * 1000);

    // Not due yet.
    let now = kakehashi::util::now_ms();
    assert_eq!(
        charge_due_subscriptions(&app.db, &reg, now).await.unwrap(),
        0
    );
    // A month later: one new completed payment, notified as subscription.charged.
    assert_eq!(
        charge_due_subscriptions(&app.db, &reg, sub.next_charge_at)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        charge_due_subscriptions(&app.db, &reg, sub.next_charge_at)
            .await
            .unwrap(),
        0,
        "once per month"
    );
    assert_eq!(app.count("payments").await, 2);
    let charged = app
        .scalar_str(&format!(
            "SELECT id FROM payments WHERE id <> '{pid}' AND status = 'completed'"
        ))
        .await
        .expect("monthly charge payment");
    let events = kakehashi::db::payments::events(&app.db, &charged)
        .await
        .unwrap();
    assert_eq!(events.last().unwrap().kind, "subscription.charged");
    app.advance_clock_to(sub.next_charge_at);
    let hits = rx
        .wait_for("subscription.charged", |h| {
            h.iter().any(|h| h.json()["type"] == "subscription.charged")
        })
        .await;
    let hit = hits
        .iter()
        .find(|h| h.json()["type"] == "subscription.charged")
        .unwrap()
        .json();
    assert_eq!(hit["data"]["amount"], 980);
    assert_eq!(hit["data"]["softbank"]["subscription_id"], sub_id.as_str());
    assert_eq!(hit["data"]["order_id"], "sub-1#2");

    // Cancel: notified, and no more charges.
    cancel_subscription(&app.db, &reg, &sub_id, app.state.now_ms())
        .await
        .unwrap();
    assert!(
        cancel_subscription(&app.db, &reg, &sub_id, app.state.now_ms())
            .await
            .is_err(),
        "twice"
    );
    let sub = kakehashi::flows::carrier::subscription(&app.db, &sub_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sub.status, "cancelled");
    rx.wait_for("subscription.cancelled", |h| {
        h.iter()
            .any(|h| h.json()["type"] == "subscription.cancelled")
    })
    .await;
    let far = sub.next_charge_at + 400 * 24 * 3600 * 1000;
    assert_eq!(
        charge_due_subscriptions(&app.db, &reg, far).await.unwrap(),
        0
    );
    assert_eq!(app.count("payments").await, 2);
    assert!(
        cancel_subscription(&app.db, &reg, "sub_nothing", app.state.now_ms())
            .await
            .is_err()
    );
}
both!(continuous_billing_charges_monthly_until_cancelled);

async fn forged_carrier_return_is_refused(app: TestApp) {
    let m = app.merchant().await;
    let url = to_carrier(&app, &m, "fg-1", 700, "docomo", UA_PC, "one_off").await;
    let r = login(&app, &url, UA_PC, PHONE, "0000").await;
    let ret = location(&r);
    let forged = ret.replace("result=declined", "result=approved");
    let r = app.get(&forged, UA_PC).await;
    assert_eq!(r.status(), 403);
    assert_eq!(error_code(&r.text().await.unwrap()), "return_rejected");
    let pid = ret.split('?').next().unwrap().rsplit('/').next().unwrap();
    assert_eq!(app.payment_status(pid).await, "awaiting_auth");
    // The return of a docomo payment cannot be replayed on the au route.
    let r = app
        .get(&ret.replace("/docomo/return/", "/au/return/"), UA_PC)
        .await;
    assert_eq!(r.status(), 403);
}
both!(forged_carrier_return_is_refused);
