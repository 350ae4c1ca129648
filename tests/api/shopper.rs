//! The shopper's experience (issue 16): error pages that lead back to the shop in the
//! merchant's brand, the test-mode banner, and why an enabled method is not offered.

use crate::helpers::*;

fn cancel() -> String {
    format!("{SHOP}/cart")
}

/// Expired, tampered and session-expired pages wear the merchant's theme, say what happened in
/// plain words and link back to the shop (cancel URL, else return URL).
async fn error_pages_are_branded_and_lead_back_to_the_shop(app: TestApp) {
    let m = app.merchant().await;
    let cancel = cancel();
    let back = format!("href=\"{cancel}\"");

    // Expired link (GET).
    let past = (now_s() - 60).to_string();
    let f = app.fields(
        &m,
        "err-1",
        1000,
        &[("expires_at", &past), ("cancel_url", &cancel)],
    );
    let (status, body) = app.open(&m, &f, UA_PC).await;
    assert_eq!(status, 410);
    assert_eq!(error_code(&body), "link_expired");
    assert!(body.contains("テスト商店"), "merchant name: {body}");
    assert!(body.contains("theme-demo.css"), "merchant theme");
    assert!(body.contains("demo-logo.svg"), "merchant logo");
    assert!(body.contains("id=\"back-to-shop\""), "{body}");
    assert!(body.contains(&back), "cancel URL: {body}");
    assert!(body.contains("お支払いリンクの有効期限が切れています"));

    // The same, posted as a cart form.
    let link = app.link(&m, &f);
    let query = link.split_once('?').unwrap().1.to_owned();
    let pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let form: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let r = app.post_form("/checkout", UA_PC, &form).await;
    assert_eq!(r.status(), 410);
    let body = r.text().await.unwrap();
    assert!(
        body.contains(&back) && body.contains("テスト商店"),
        "{body}"
    );

    // English link.
    let f = app.fields(&m, "err-2", 1000, &[("expires_at", &past), ("lang", "en")]);
    let (_, body) = app.open(&m, &f, UA_PC).await;
    assert!(body.contains("This payment link has expired"), "{body}");
    assert!(
        body.contains(&format!("href=\"{SHOP}/thanks\"")),
        "return URL without a cancel URL"
    );
    assert!(body.contains("<html lang=\"en\">"));

    // Tampered link: branded, but only a registered origin is linked.
    let f = app.fields(
        &m,
        "err-3",
        1000,
        &[("cancel_url", "https://evil.example/x")],
    );
    let tampered = app.link(&m, &f).replace("amount=1000", "amount=1");
    let r = app.get(&tampered, UA_PC).await;
    assert_eq!(r.status(), 403);
    let body = r.text().await.unwrap();
    assert_eq!(error_code(&body), "bad_signature");
    assert!(body.contains("テスト商店"));
    assert!(body.contains("このお支払いリンクは正しくありません"));
    assert!(!body.contains("evil.example"), "{body}");
    assert!(body.contains(&format!("href=\"{SHOP}/thanks\"")), "{body}");

    // Session expired: the checkout is known from the token.
    let f = app.fields(&m, "err-4", 1000, &[("cancel_url", &cancel)]);
    let (_, body) = app.open(&m, &f, UA_PC).await;
    let pay = action(&body).trim_end_matches("/method").to_owned();
    app.clock.advance(std::time::Duration::from_secs(2 * 3600));
    let r = app.get(&pay, UA_PC).await;
    assert_eq!(r.status(), 410);
    let body = r.text().await.unwrap();
    assert_eq!(error_code(&body), "session_expired");
    assert!(
        body.contains("テスト商店") && body.contains(&back),
        "{body}"
    );
    assert!(body.contains("お手続きの有効時間が過ぎました"));

    // Feature phone: the way back is on key 0.
    let r = app.get(&pay, UA_DOCOMO).await;
    let body = sjis_text(r).await;
    assert!(body.contains("accesskey=\"0\""), "{body}");
    assert!(body.contains(&back), "{body}");
    assert!(body.contains("demo-logo"), "merchant logo: {body}");

    // A merchant we cannot name: the neutral page, no link.
    let f = app.fields(&m, "err-5", 1000, &[("merchant_id", "m_nobody")]);
    let (_, body) = app.open(&m, &f, UA_PC).await;
    assert!(!body.contains("back-to-shop"), "{body}");
    assert!(body.contains("Kakehashi"));
}
both!(error_pages_are_branded_and_lead_back_to_the_shop);

/// Every shopper page of a test-mode merchant says that nothing real is charged.
async fn test_mode_banner_on_shopper_pages(app: TestApp) {
    let m = app.merchant().await;
    for ua in [UA_PC, UA_IPHONE] {
        let f = app.fields(&m, &format!("tm-{}", ua.len()), 1000, &[]);
        let (_, body) = app.open(&m, &f, ua).await;
        assert!(body.contains("id=\"test-mode-banner\""), "selector: {body}");
        assert!(body.contains("実際のカードへの請求やお金の移動は行われません"));
        let pay = action(&body).trim_end_matches("/method").to_owned();
        let body = app
            .get(&format!("{pay}/card"), ua)
            .await
            .text()
            .await
            .unwrap();
        assert!(
            body.contains("id=\"test-mode-banner\""),
            "card form: {body}"
        );
    }
    let f = app.fields(&m, "tm-fp", 1000, &[]);
    let r = app.get(&app.link(&m, &f), UA_DOCOMO).await;
    let body = sjis_text(r).await;
    assert!(
        body.contains("[テストモード]実際の請求はされません"),
        "{body}"
    );
    // English pages say it in English.
    let f = app.fields(&m, "tm-en", 1000, &[("lang", "en")]);
    let (_, body) = app.open(&m, &f, UA_PC).await;
    assert!(body.contains("Real cards are not charged"), "{body}");
}
both!(test_mode_banner_on_shopper_pages);

/// At ¥350,000 convenience-store and carrier billing are above their limits: the selector says
/// so instead of leaving them out silently; a feature phone says which methods it cannot use.
async fn selector_says_why_a_method_is_missing(app: TestApp) {
    let m = app.merchant().await;
    let f = app.fields(&m, "why-1", 350_000, &[]);
    let (status, body) = app.open(&m, &f, UA_PC).await;
    assert_eq!(status, 200, "{body}");
    assert!(!body.contains("value=\"konbini\""));
    assert!(
        body.contains("コンビニ決済は300,000円を超えるご注文ではご利用いただけません。"),
        "{body}"
    );
    assert!(
        body.contains("d払いは100,000円を超えるご注文ではご利用いただけません。"),
        "{body}"
    );
    assert!(
        !body.contains("クレジットカードは"),
        "card is offered: no note"
    );
    let f = app.fields(&m, "why-2", 350_000, &[("lang", "en")]);
    let (_, body) = app.open(&m, &f, UA_PC).await;
    assert!(
        body.contains("Convenience store is not available for orders over ¥300,000."),
        "{body}"
    );
    // Nothing to explain for a small order on a PC.
    let f = app.fields(&m, "why-3", 1000, &[]);
    let (_, body) = app.open(&m, &f, UA_PC).await;
    assert!(!body.contains("id=\"unavailable\""));
    // Feature phone: the device is the reason.
    let f = app.fields(&m, "why-4", 1000, &[]);
    let body = sjis_text(app.get(&app.link(&m, &f), UA_DOCOMO).await).await;
    assert!(
        body.contains("auかんたん決済はこの端末ではご利用いただけません。"),
        "{body}"
    );
    // A method the link did not ask for is not the shopper's business.
    let f = app.fields(&m, "why-5", 350_000, &[("methods", "card")]);
    let (_, body) = app.open(&m, &f, UA_PC).await;
    assert!(!body.contains("コンビニ決済は"), "{body}");
}
both!(selector_says_why_a_method_is_missing);

/// One phrase for "choose another payment method" on every method page (PC and feature
/// phone), in the page's language.
async fn one_phrase_for_choosing_another_method(app: TestApp) {
    let m = app.merchant().await;
    for (lang, phrase) in [
        ("ja", "別の方法で支払う"),
        ("en", "Choose another payment method"),
    ] {
        let f = app.fields(&m, &format!("phrase-{lang}"), 1000, &[("lang", lang)]);
        let (_, body) = app.open(&m, &f, UA_PC).await;
        let pay = action(&body).trim_end_matches("/method").to_owned();
        for method in ["card", "konbini", "payeasy", "banknet", "docomo"] {
            let body = app
                .get(&format!("{pay}/{method}"), UA_PC)
                .await
                .text()
                .await
                .unwrap();
            assert!(body.contains(phrase), "{lang} {method}: {body}");
            for other in [
                "他のお支払い方法を選ぶ",
                "お支払い方法の選択に戻る",
                "Pay another way",
            ] {
                assert!(!body.contains(other), "{lang} {method}: {other}");
            }
        }
    }
    let f = app.fields(&m, "phrase-fp", 1000, &[]);
    let body = sjis_text(app.get(&app.link(&m, &f), UA_DOCOMO).await).await;
    let pay = action(&body).trim_end_matches("/method").to_owned();
    for method in ["konbini", "payeasy"] {
        let body = sjis_text(app.get(&format!("{pay}/{method}"), UA_DOCOMO).await).await;
        assert!(body.contains("0.別の方法で支払う"), "fp {method}: {body}");
    }
}
both!(one_phrase_for_choosing_another_method);

async fn get_lang(app: &TestApp, url: &str, accept: &str) -> reqwest::Response {
    let url = if url.starts_with('/') {
        format!("{}{url}", app.base)
    } else {
        url.to_owned()
    };
    app.client
        .get(url)
        .header("user-agent", UA_PC)
        .header("accept-language", accept)
        .send()
        .await
        .unwrap()
}

/// Issue 16 item 13: a link without `lang` follows the browser's Accept-Language; a link's
/// `lang` wins; the footer switches between 日本語 and English.
async fn language_follows_the_browser_and_can_be_switched(app: TestApp) {
    let m = app.merchant().await;
    let f = app.fields(&m, "lang-1", 1000, &[]);
    let link = app.link(&m, &f);
    let body = get_lang(&app, &link, "en-US,en;q=0.9,ja;q=0.5")
        .await
        .text()
        .await
        .unwrap();
    assert!(body.contains("<html lang=\"en\">"), "{body}");
    assert!(body.contains("Choose a payment method"));
    assert!(body.contains("id=\"lang-switch\""), "{body}");
    assert!(body.contains(">日本語</a>"));
    let body = get_lang(&app, &link, "ja,en-US;q=0.8")
        .await
        .text()
        .await
        .unwrap();
    assert!(body.contains("<html lang=\"ja\">"), "{body}");
    assert!(body.contains(">English</a>"));
    // No header, or neither language: Japanese.
    let body = get_lang(&app, &link, "fr-FR").await.text().await.unwrap();
    assert!(body.contains("<html lang=\"ja\">"));
    // The link's lang wins over the browser.
    let f = app.fields(&m, "lang-2", 1000, &[("lang", "ja")]);
    let body = get_lang(&app, &app.link(&m, &f), "en")
        .await
        .text()
        .await
        .unwrap();
    assert!(body.contains("<html lang=\"ja\">"));
    // The switch changes the language of the session's pages.
    let pay = action(&body).trim_end_matches("/method").to_owned();
    let r = app.get(&format!("{pay}/lang?to=en"), UA_PC).await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), pay.replace(&app.base, ""));
    let body = app.get(&pay, UA_PC).await.text().await.unwrap();
    assert!(body.contains("<html lang=\"en\">"), "{body}");
    let body = app
        .get(&format!("{pay}/card"), UA_PC)
        .await
        .text()
        .await
        .unwrap();
    assert!(body.contains("<html lang=\"en\">"), "card form too");
    assert_eq!(
        app.get(&format!("{pay}/lang?to=fr"), UA_PC).await.status(),
        400
    );
    // Feature phones have no switch (their pages are Japanese).
    let body = sjis_text(app.get(&pay, UA_DOCOMO).await).await;
    assert!(!body.contains("lang-switch"));
}
both!(language_follows_the_browser_and_can_be_switched);

/// A page with its stylesheets and scripts, in bytes.
async fn weight(app: &TestApp, ua: &str, html: &str) -> usize {
    let mut total = html.len();
    for marker in ["<link rel=\"stylesheet\" href=\"", "<script src=\""] {
        for part in html.split(marker).skip(1) {
            let href = part.split('"').next().unwrap();
            total += app.get(href, ua).await.bytes().await.unwrap().len();
        }
    }
    total
}

/// Pages stay light with the badges, the copy script and the compact CSS: HTML + CSS + JS
/// under 15 KB on PC and smartphone (and ガラホ), for the heaviest pages.
async fn pages_stay_under_15_kb(app: TestApp) {
    let m = app.merchant().await;
    let garaho = "Mozilla/5.0 (Linux; Android 5.1; KYF31 Build/101.0.2c10) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/37.0.0.0 Mobile Safari/537.36";
    for (i, ua) in [UA_PC, UA_IPHONE, garaho].into_iter().enumerate() {
        let f = app.fields(&m, &format!("w-{i}"), 2000, &[]);
        let r = app.get(&app.link(&m, &f), ua).await;
        let selector = r.text().await.unwrap();
        assert!(
            weight(&app, ua, &selector).await < 15 * 1024,
            "{ua}: selector"
        );
        for method in ["card", "konbini"] {
            let r = app
                .post_form(
                    &action(&selector),
                    ua,
                    &[("csrf", &hidden(&selector, "csrf")), ("method", method)],
                )
                .await;
            let path = r.headers()["location"].to_str().unwrap().to_owned();
            let page = app.get(&path, ua).await.text().await.unwrap();
            let w = weight(&app, ua, &page).await;
            assert!(w < 15 * 1024, "{ua}: {method} page weighs {w} bytes");
        }
    }
}
both!(pages_stay_under_15_kb);
