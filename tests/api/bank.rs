//! Bank net (銀行ネット) end to end over HTTP: bank choice, the sandbox bank page's three outcomes,
//! signed returns (and forged ones), the timeout job and the merchant notification.

use kakehashi::flows::bank::timeout_due;

use crate::helpers::*;

/// Goes from the selector to the sandbox bank page; returns (bank page URL, method page path).
async fn to_bank(app: &TestApp, m: &TestMerchant, order: &str, ua: &str) -> (String, String) {
    let method_page = app.choose(m, order, 4_800, "banknet", ua).await;
    assert!(method_page.ends_with("/banknet"), "{method_page}");
    let r = app.get(&method_page, ua).await;
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    assert!(body.contains("三菱UFJ銀行") && body.contains("ゆうちょ銀行"));
    assert!(!body.contains("style="), "no inline styles (CSP)");
    let r = app
        .post_form(
            &method_page,
            ua,
            &[("csrf", &hidden(&body, "csrf")), ("bank", "0005")],
        )
        .await;
    assert_eq!(r.status(), 303);
    let bank_url = location(&r);
    assert!(
        bank_url.starts_with(&format!("{}/sandbox/bank/0005/", app.base)),
        "{bank_url}"
    );
    (bank_url, method_page)
}

/// Presses a button on the sandbox bank page; returns the response.
async fn press(app: &TestApp, bank_url: &str, choice: &str) -> reqwest::Response {
    let body = app.get(bank_url, UA_PC).await.text().await.unwrap();
    assert!(body.contains("テスト環境"), "bannered as a sandbox page");
    assert!(body.contains("支払う（承認）") && body.contains("画面を閉じる（離脱）"));
    assert!(
        !body.contains("theme-demo"),
        "no merchant theme on the bank page"
    );
    app.post_form(
        bank_url,
        UA_PC,
        &[("csrf", &hidden(&body, "csrf")), ("choice", choice)],
    )
    .await
}

fn payment_id_of(return_url: &str) -> String {
    let path = return_url.split('?').next().unwrap();
    path.rsplit('/').next().unwrap().to_owned()
}

async fn approve_pays_and_notifies(app: TestApp) {
    let rx = Receiver::start().await;
    let m = app
        .merchant_with(|n| n.callback_url = Some(rx.url.clone()))
        .await;
    let (bank_url, _) = to_bank(&app, &m, "bk-1", UA_PC).await;
    assert_eq!(app.checkout_status(&m, "bk-1").await, "pending");
    let r = press(&app, &bank_url, "approve").await;
    assert_eq!(r.status(), 303);
    let ret = location(&r);
    assert!(
        ret.contains("/banknet/return/") && ret.contains("sig="),
        "{ret}"
    );
    let pid = payment_id_of(&ret);
    assert_eq!(app.payment_status(&pid).await, "awaiting_bank");

    let r = app.get(&ret, UA_PC).await;
    assert_eq!(r.status(), 303);
    let result = location(&r);
    let body = app.get(&result, UA_PC).await.text().await.unwrap();
    assert!(body.contains("お支払いが完了しました"), "{body}");
    assert!(body.contains(&pid));
    assert_eq!(app.payment_status(&pid).await, "paid");
    assert_eq!(app.checkout_status(&m, "bk-1").await, "paid");

    // "ショップに戻る" carries the result, signed with the merchant's key.
    let link = body
        .split("id=\"return-to-shop\" href=\"")
        .nth(1)
        .expect("return link")
        .split('"')
        .next()
        .unwrap()
        .replace("&#38;", "&")
        .replace("&amp;", "&");
    assert!(link.starts_with("https://shop.example/thanks?"), "{link}");
    let url = url::Url::parse(&link).unwrap();
    let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    let get = |k: &str| pairs.iter().find(|(a, _)| a == k).unwrap().1.clone();
    assert_eq!(get("payment_id"), pid);
    assert_eq!(get("status"), "paid");
    assert_eq!(get("order_id"), "bk-1");
    let signed: Vec<(&str, &str)> = pairs
        .iter()
        .filter(|(k, _)| k != "signature")
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let canonical = kakehashi::signing::canonical(signed.iter().copied());
    assert!(kakehashi::signing::verify(
        &m.secret,
        &canonical,
        &get("signature")
    ));

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
    assert_eq!(hit.json()["data"]["payment_id"], pid.as_str());
    assert_eq!(hit.json()["data"]["method"], "banknet");
    assert_eq!(hit.json()["data"]["institution"], "0005");
}
both!(approve_pays_and_notifies);

async fn decline_fails_and_offers_another_method(app: TestApp) {
    let m = app.merchant().await;
    let (bank_url, method_page) = to_bank(&app, &m, "bk-2", UA_IPHONE).await;
    let ret = location(&press(&app, &bank_url, "decline").await);
    let pid = payment_id_of(&ret);
    let result = location(&app.get(&ret, UA_IPHONE).await);
    let body = app.get(&result, UA_IPHONE).await.text().await.unwrap();
    assert!(body.contains("layout-sp"));
    assert!(body.contains("お支払いは完了しませんでした"), "{body}");
    assert!(body.contains("銀行でお支払いが承認されませんでした"));
    assert!(body.contains("別の方法で支払う"));
    // The shopper's word for the status, not the console's (失敗).
    assert!(
        body.contains("id=\"result-status\">お支払いできませんでした<"),
        "{body}"
    );
    assert!(
        !body.contains("return-to-shop"),
        "no shop link without a cancel_url"
    );
    assert_eq!(app.payment_status(&pid).await, "declined");
    assert_eq!(app.checkout_status(&m, "bk-2").await, "open");

    // 別の方法で支払う: back to the selector, which works again.
    let retry = body
        .split("id=\"retry\" href=\"")
        .nth(1)
        .expect("retry link")
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    assert!(retry.starts_with("/pay/"), "{retry}");
    let sel = app.get(&retry, UA_IPHONE).await.text().await.unwrap();
    assert!(sel.contains("value=\"banknet\"") && sel.contains("value=\"docomo\""));
    // And bank net can be tried again: a new payment.
    let body = app.get(&method_page, UA_IPHONE).await.text().await.unwrap();
    let r = app
        .post_form(
            &method_page,
            UA_IPHONE,
            &[("csrf", &hidden(&body, "csrf")), ("bank", "0036")],
        )
        .await;
    assert_eq!(r.status(), 303);
    assert!(location(&r).contains("/sandbox/bank/0036/"));
    assert_eq!(app.count("payments").await, 2);
}
both!(decline_fails_and_offers_another_method);

async fn walk_away_times_out(app: TestApp) {
    let rx = Receiver::start().await;
    let m = app
        .merchant_with(|n| n.callback_url = Some(rx.url.clone()))
        .await;
    let (bank_url, _) = to_bank(&app, &m, "bk-3", UA_PC).await;
    let r = press(&app, &bank_url, "walk_away").await;
    assert_eq!(r.status(), 200, "no redirect back");
    assert!(r.text().await.unwrap().contains("walked-away"));
    let session = bank_url.rsplit('/').next().unwrap();
    let p = kakehashi::flows::redirect::by_session(
        &app.db,
        kakehashi::domain::Method::Banknet,
        session,
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(p.status.code(), "awaiting_bank");
    // Issue 16 item 9: the shopper who left the bank and comes back to the checkout learns
    // that nothing was charged, when the payment will be cancelled, and what then.
    let f = app.fields(&m, "bk-3", 4_800, &[]);
    let r = app.get(&app.link(&m, &f), UA_PC).await;
    assert_eq!(r.status(), 303, "reopening the link");
    let result = location(&r);
    assert!(result.contains("/banknet/result/"), "{result}");
    let body = app.get(&result, UA_PC).await.text().await.unwrap();
    let cancel_at = kakehashi::routes::redirect_result::abandon_note(
        p.created_at + kakehashi::domain::bank::PENDING_TIMEOUT_MS,
        false,
    );
    assert!(body.contains(&cancel_at), "{body}");
    assert!(body.contains("お支払いはされていません"));

    // Not yet due: nothing happens.
    let now = kakehashi::util::now_ms();
    assert_eq!(timeout_due(&app.db, now).await.unwrap(), 0);
    assert_eq!(app.payment_status(&p.id).await, "awaiting_bank");
    // 30 minutes later the job fails it and reopens the checkout.
    let later = p.created_at + kakehashi::domain::bank::PENDING_TIMEOUT_MS + 1_000;
    assert_eq!(timeout_due(&app.db, later).await.unwrap(), 1);
    assert_eq!(timeout_due(&app.db, later).await.unwrap(), 0, "once only");
    assert_eq!(app.payment_status(&p.id).await, "timed_out");
    assert_eq!(app.checkout_status(&m, "bk-3").await, "open");
    let events = kakehashi::db::payments::events(&app.db, &p.id)
        .await
        .unwrap();
    assert_eq!(events.last().unwrap().kind, "payment.expired");
    app.advance_clock_to(later);
    rx.wait_for("payment.expired", |h| {
        h.iter().any(|h| h.json()["type"] == "payment.expired")
    })
    .await;
    // The bank page of a timed-out payment still accepts a (late) approval: money that moved
    // is recorded, never dropped.
    let ret = location(&press(&app, &bank_url, "approve").await);
    app.get(&ret, UA_PC).await;
    assert_eq!(app.payment_status(&p.id).await, "paid");
}
both!(walk_away_times_out);
