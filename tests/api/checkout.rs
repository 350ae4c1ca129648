//! Opening signed links: selector, resume, every rejection reason, device layouts, themes.

use crate::helpers::*;

async fn selector_shows_theme_order_and_methods(app: TestApp) {
    let m = app.merchant().await;
    let f = app.fields(&m, "ord-1", 1500, &[]);
    let (status, body) = app.open(&m, &f, UA_PC).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("layout-pc"));
    assert!(body.contains("demo-logo.svg"), "theme logo");
    assert!(body.contains("theme-demo.css"), "theme colours stylesheet");
    assert!(body.contains("1,500"));
    assert!(body.contains("ord-1"));
    assert!(body.contains("テスト商品"));
    assert!(body.contains("テスト商店"));
    assert!(body.contains("value=\"card\""));
    assert!(!body.contains("style="), "no inline styles (CSP)");
    assert_eq!(app.count("checkouts").await, 1);
}
both!(selector_shows_theme_order_and_methods);

async fn reopening_resumes_the_same_checkout(app: TestApp) {
    let m = app.merchant().await;
    let f = app.fields(&m, "ord-2", 2000, &[]);
    assert_eq!(app.open(&m, &f, UA_PC).await.0, 200);
    // Re-signed later with another expiry: still the same order.
    let later = (now_s() + 7200).to_string();
    let f2 = app.fields(&m, "ord-2", 2000, &[("expires_at", &later)]);
    assert_eq!(app.open(&m, &f2, UA_IPHONE).await.0, 200);
    assert_eq!(app.count("checkouts").await, 1);
}
both!(reopening_resumes_the_same_checkout);

/// Opens a link expecting refusal; checks the code and that nothing was written.
async fn refused(app: &TestApp, url: &str, code: &str) {
    let before = app.count("checkouts").await;
    let r = app.get(url, UA_PC).await;
    let status = r.status().as_u16();
    let body = r.text().await.unwrap();
    assert!((400..500).contains(&status), "{code}: status {status}");
    assert_eq!(error_code(&body), code, "{url}");
    assert!(
        !body.contains("panicked") && !body.contains("sqlx"),
        "no internals"
    );
    assert_eq!(app.count("checkouts").await, before, "{code} wrote nothing");
}

async fn every_rejection_has_a_reason_and_writes_nothing(app: TestApp) {
    let m = app.merchant().await;
    let other = app.merchant().await;
    let ok = app.fields(&m, "ord-r", 1000, &[]);
    let link = |extra: &[(&str, &str)]| app.link(&m, &app.fields(&m, "ord-r", 1000, extra));

    refused(&app, &link(&[("item_name", "")]), "missing_field").await;
    refused(&app, &link(&[("colour", "red")]), "unknown_field").await;
    // Tampered amount after signing.
    let tampered = app.link(&m, &ok).replace("amount=1000", "amount=1");
    refused(&app, &tampered, "bad_signature").await;
    // Signed with another merchant's secret.
    refused(&app, &app.link(&other, &ok), "bad_signature").await;
    let no_sig = app.link(&m, &ok);
    let no_sig = &no_sig[..no_sig.find("&signature=").unwrap()];
    refused(&app, no_sig, "missing_field").await;
    refused(
        &app,
        &link(&[("merchant_id", "m_nobody")]),
        "unknown_merchant",
    )
    .await;
    refused(&app, &link(&[("key_id", "k_nothing")]), "unknown_key").await;
    let past = (now_s() - 1).to_string();
    refused(&app, &link(&[("expires_at", &past)]), "link_expired").await;
    let far = (now_s() + 40 * 24 * 3600).to_string();
    refused(&app, &link(&[("expires_at", &far)]), "expiry_too_far").await;
    for bad in ["0", "-100", "1.5", "01", "1e3", "10000000"] {
        refused(&app, &link(&[("amount", bad)]), "invalid_amount").await;
    }
    for bad in [
        "//evil.example/x",
        "javascript:alert(1)",
        "https:\\\\evil.example/",
        "https://evil.example/thanks",
        "https://shop.example@evil.example/",
        "http://shop.example/thanks",
    ] {
        refused(
            &app,
            &link(&[("return_url", bad)]),
            "return_url_not_allowed",
        )
        .await;
    }
    refused(
        &app,
        &link(&[("cancel_url", "https://evil.example/")]),
        "return_url_not_allowed",
    )
    .await;
    refused(&app, &link(&[("order_id", "has space")]), "invalid_field").await;
    refused(&app, &link(&[("methods", "card,bitcoin")]), "invalid_field").await;

    // Over every enabled method's limit: a konbini-only merchant and 300,001 yen.
    let konbini_only = app
        .merchant_with(|n| n.methods = vec![kakehashi::domain::Method::Konbini])
        .await;
    let f = app.fields(&konbini_only, "big", 300_001, &[]);
    refused(&app, &app.link(&konbini_only, &f), "amount_over_limit").await;

    // Same order id, different content.
    assert_eq!(app.open(&m, &ok, UA_PC).await.0, 200);
    refused(&app, &link(&[("amount", "999")]), "order_conflict").await;
    assert_eq!(app.count("checkouts").await, 1);
}
both!(every_rejection_has_a_reason_and_writes_nothing);

async fn paid_order_shows_its_state_not_a_second_payment(app: TestApp) {
    let m = app.merchant().await;
    let f = app.fields(&m, "ord-paid", 1200, &[]);
    assert_eq!(app.open(&m, &f, UA_PC).await.0, 200);
    app.db
        .execute_write("UPDATE checkouts SET status = 'paid'")
        .await
        .unwrap();
    let (status, body) = app.open(&m, &f, UA_PC).await;
    assert_eq!(status, 200);
    assert!(body.contains("お支払いは完了しています"));
    assert!(!body.contains("name=\"method\""), "no way to pay again");
}
both!(paid_order_shows_its_state_not_a_second_payment);

async fn layouts_follow_the_user_agent(app: TestApp) {
    let m = app.merchant().await;
    let f = app.fields(&m, "ord-ua", 1000, &[]);
    for (ua, layout) in [
        (UA_PC, "layout-pc"),
        (UA_MAC, "layout-pc"),
        (UA_CRAWLER, "layout-pc"),
        ("", "layout-pc"),
        (UA_IPHONE, "layout-sp"),
        (UA_ANDROID, "layout-sp"),
        (UA_IPAD, "layout-sp"),
        (UA_ANDROID_TABLET, "layout-sp"),
    ] {
        let r = app.get(&app.link(&m, &f), ua).await;
        assert_eq!(r.headers()["content-type"], "text/html; charset=utf-8");
        let body = r.text().await.unwrap();
        assert!(body.contains(layout), "{ua} -> {layout}");
    }
    for ua in [UA_DOCOMO, UA_AU, UA_SOFTBANK, UA_DOCOMO_1] {
        let r = app.get(&app.link(&m, &f), ua).await;
        assert_eq!(r.status(), 200, "{ua}");
        assert_eq!(r.headers()["content-type"], "text/html; charset=Shift_JIS");
        let bytes = r.bytes().await.unwrap();
        let (body, _, errors) = encoding_rs::SHIFT_JIS.decode(&bytes);
        assert!(!errors, "{ua}: valid Shift_JIS");
        assert!(body.contains("テスト商品"));
        assert!(!body.contains("<script"), "{ua}: no script");
        assert!(!body.contains("stylesheet"), "{ua}: no external CSS");
        assert!(bytes.len() < 10 * 1024, "{ua}: small page");
        assert!(body.contains("logo.gif"), "{ua}: GIF logo");
        assert!(
            !body.contains("value=\"au\"") && !body.contains("value=\"softbank\""),
            "{ua}: no au/SoftBank billing"
        );
    }
}
both!(layouts_follow_the_user_agent);

async fn shopper_can_switch_between_pc_and_smartphone(app: TestApp) {
    let m = app.merchant().await;
    let f = app.fields(&m, "ord-sw", 1000, &[]);
    let (_, body) = app.open(&m, &f, UA_PC).await;
    let start = body.find("class=\"switch\" href=\"").unwrap() + 21;
    let href = body[start..]
        .split('"')
        .next()
        .unwrap()
        .replace("&amp;", "&")
        .replace("&#38;", "&");
    let r = app.get(&href, UA_PC).await;
    assert_eq!(r.status(), 303);
    let loc = r.headers()["location"].to_str().unwrap().to_owned();
    let body = app.get(&loc, UA_PC).await.text().await.unwrap();
    assert!(body.contains("layout-sp"), "switched to smartphone layout");
    assert!(body.contains("PC表示"), "and can switch back");
}
both!(shopper_can_switch_between_pc_and_smartphone);

async fn form_post_in_shift_jis_is_decoded(app: TestApp) {
    let m = app.merchant().await;
    let f = app.fields(&m, "ord-sjis", 3300, &[("item_name", "抹茶ﾗﾃ～セット")]);
    let pairs: Vec<(&str, &str)> = f.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    let query = kakehashi::signing::signed_query(&m.secret, &pairs);
    // Re-encode the UTF-8 form as Shift_JIS, as an old cart would post it.
    let utf8 = kakehashi::form::decode(query.as_bytes(), encoding_rs::UTF_8);
    let mut body = String::new();
    for (k, v) in utf8 {
        let (bytes, _, _) = encoding_rs::SHIFT_JIS.encode(&v);
        let enc = percent_encoding::percent_encode(&bytes, percent_encoding::NON_ALPHANUMERIC);
        body.push_str(&format!("{k}={enc}&"));
    }
    let r = app
        .client
        .post(format!("{}/checkout", app.base))
        .header(
            "content-type",
            "application/x-www-form-urlencoded; charset=Shift_JIS",
        )
        .header("user-agent", UA_PC)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let loc = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(loc.starts_with("/pay/"));
    let page = app.get(&loc, UA_PC).await.text().await.unwrap();
    assert!(
        page.contains("抹茶ﾗﾃ～セット"),
        "kanji and half-width kana round-trip"
    );
}
both!(form_post_in_shift_jis_is_decoded);

async fn choosing_a_method_checks_csrf_and_offer(app: TestApp) {
    let m = app.merchant().await;
    let f = app.fields(&m, "ord-m", 1000, &[]);
    let (_, body) = app.open(&m, &f, UA_PC).await;
    let action = action(&body);
    let csrf = hidden(&body, "csrf");
    let r = app
        .post_form(&action, UA_PC, &[("csrf", "forged"), ("method", "card")])
        .await;
    assert_eq!(r.status(), 403);
    assert_eq!(error_code(&r.text().await.unwrap()), "bad_csrf");
    let r = app
        .post_form(&action, UA_PC, &[("csrf", &csrf), ("method", "bitcoin")])
        .await;
    assert_eq!(error_code(&r.text().await.unwrap()), "method_not_available");
    let r = app
        .post_form(&action, UA_PC, &[("csrf", &csrf), ("method", "card")])
        .await;
    assert_eq!(r.status(), 303);
    assert!(r.headers()["location"].to_str().unwrap().ends_with("/card"));
    // A forged session token is refused.
    let forged = action.replace("/pay/co_", "/pay/co_x");
    let r = app
        .post_form(&forged, UA_PC, &[("csrf", &csrf), ("method", "card")])
        .await;
    assert_eq!(error_code(&r.text().await.unwrap()), "session_expired");
}
both!(choosing_a_method_checks_csrf_and_offer);

async fn security_headers_and_asset_caching(app: TestApp) {
    let m = app.merchant().await;
    let f = app.fields(&m, "ord-h", 1000, &[]);
    let r = app.get(&app.link(&m, &f), UA_PC).await;
    let h = r.headers().clone();
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(!csp.contains("unsafe-inline"));
    assert!(csp.contains("frame-ancestors 'none'"));
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["referrer-policy"], "no-referrer");
    let body = r.text().await.unwrap();
    let start = body.find("/assets/").unwrap();
    let css = body[start..].split('"').next().unwrap();
    let r = app.get(css, UA_PC).await;
    assert_eq!(r.status(), 200);
    assert!(r.headers()["cache-control"]
        .to_str()
        .unwrap()
        .contains("immutable"));
    let r = app.get("/assets/000000000000/app.css", UA_PC).await;
    assert_eq!(r.status(), 404);
    let r = app.get("/nowhere", UA_PC).await;
    assert_eq!(r.status(), 404);
    assert!(r.headers().contains_key("content-security-policy"));
}
both!(security_headers_and_asset_caching);

/// A stored setting that is not a valid code fails loudly (an internal error, logged) instead
/// of being read as a default: a corrupted method list must not silently become "no methods".
async fn corrupted_settings_fail_loudly(app: TestApp) {
    let m = app.merchant().await;
    let mut tx = app.db.begin().await.unwrap();
    kakehashi::exec_tx!(&mut tx, c => sqlx::query("UPDATE merchants SET methods = 'card,bitcoin' WHERE id = $1")
        .bind(&m.id)
        .execute(c)
        .await)
    .unwrap();
    tx.commit().await.unwrap();
    let f = app.fields(&m, "corrupt", 1000, &[]);
    let r = app.get(&app.link(&m, &f), UA_PC).await;
    assert_eq!(r.status(), 500);
    let logs = logs();
    assert!(
        logs.contains("error occurred while decoding column methods"),
        "{}",
        logs.lines()
            .filter(|l| l.contains("internal error"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert_eq!(app.count("checkouts").await, 0);
}
both!(corrupted_settings_fail_loudly);

/// Expiry checks read the app's clock: a link valid for a minute is refused once the clock has
/// moved two minutes on (no sleeping).
async fn expiry_follows_the_clock(app: TestApp) {
    let m = app.merchant().await;
    let f = app.fields(
        &m,
        "clock",
        1000,
        &[("expires_at", &(now_s() + 60).to_string())],
    );
    let link = app.link(&m, &f);
    assert_eq!(app.get(&link, UA_PC).await.status(), 200);
    app.clock.advance(std::time::Duration::from_secs(120));
    let r = app.get(&link, UA_PC).await;
    assert_eq!(r.status(), 410);
    assert_eq!(error_code(&r.text().await.unwrap()), "link_expired");
}
both!(expiry_follows_the_clock);

/// A shopper session ends at its absolute lifetime (`KAKEHASHI_SESSION_MAX_S`, 2 h) however
/// often it was renewed: the layout switch issues a fresh token each time, but never one that
/// outlives the session's start + 2 h. Then the branded session-expired page.
async fn session_has_an_absolute_lifetime(app: TestApp) {
    let m = app.merchant().await;
    let f = app.fields(&m, "ord-max", 1000, &[]);
    let (_, body) = app.open(&m, &f, UA_PC).await;
    let mut pay = action(&body).trim_end_matches("/method").to_owned();
    // Renew every 50 minutes: each renewal alone would live another hour.
    for (i, to) in ["sp", "pc"].iter().enumerate() {
        app.clock.advance(std::time::Duration::from_secs(50 * 60));
        let r = app.get(&format!("{pay}/view?to={to}"), UA_PC).await;
        assert_eq!(r.status(), 303, "renewal {i}");
        pay = r.headers()["location"].to_str().unwrap().to_owned();
        assert_eq!(app.get(&pay, UA_PC).await.status(), 200, "renewal {i}");
    }
    // 1 h 40 min in: the last token was issued 0 min ago, but the session is 2 h old at 2 h.
    app.clock.advance(std::time::Duration::from_secs(20 * 60));
    let r = app.get(&pay, UA_PC).await;
    assert_eq!(r.status(), 410);
    let body = r.text().await.unwrap();
    assert_eq!(error_code(&body), "session_expired");
    assert!(body.contains("テスト商店"), "branded: {body}");
    assert!(body.contains("お手続きの有効時間が過ぎました"));
    // Nor can the expired session be renewed.
    let r = app.get(&format!("{pay}/view?to=pc"), UA_PC).await;
    assert_eq!(r.status(), 410);
}
both!(session_has_an_absolute_lifetime);

/// On SQLite a checkout's own writes (its creation at the first open, the chosen method) do not
/// wait for the disk: their COMMITs are counted as relaxed. (Each may also join a durable group
/// a background worker began, and then commits durably: hence several checkouts.)
#[tokio::test]
async fn sqlite_a_checkouts_own_writes_do_not_wait_for_the_disk() {
    let Some(app) = spawn_app(Backend::Sqlite).await else {
        return;
    };
    let m = app.merchant().await;
    let before = app.db.write_stats().expect("SQLite");
    for i in 0..3 {
        let f = app.fields(&m, &format!("ord-rx-{i}"), 1000, &[]);
        let (status, body) = app.open(&m, &f, UA_PC).await;
        assert_eq!(status, 200, "{body}");
        let r = app
            .post_form(
                &action(&body),
                UA_PC,
                &[("csrf", &hidden(&body, "csrf")), ("method", "card")],
            )
            .await;
        assert_eq!(r.status(), 303);
    }
    let after = app.db.write_stats().expect("SQLite");
    assert!(
        after.relaxed_commits > before.relaxed_commits,
        "{before:?} → {after:?}"
    );
    assert_eq!(app.count("checkouts").await, 3);
}
