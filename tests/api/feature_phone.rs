//! Feature phones: a client that sends a classic carrier User-Agent, never keeps a cookie and
//! posts in Shift_JIS can pay; every page it gets is small, script-free Shift_JIS.

use crate::helpers::*;

/// A feature-phone browser: no cookie jar, Shift_JIS form posts, checks every page it gets.
pub struct Phone<'a> {
    pub app: &'a TestApp,
    pub ua: &'static str,
}

impl Phone<'_> {
    fn check(&self, r: &reqwest::Response) {
        assert!(
            r.headers().get("set-cookie").is_none(),
            "{}: no cookie is ever needed",
            self.ua
        );
    }

    /// GETs a page and returns its decoded text after checking encoding, size and markup.
    pub async fn get(&self, url: &str) -> String {
        let r = self.app.get(url, self.ua).await;
        self.check(&r);
        assert_eq!(r.status(), 200, "{url}");
        page_text(self.ua, r).await
    }

    /// POSTs a form encoded in Shift_JIS; returns (status, location or page text).
    pub async fn post(&self, url: &str, form: &[(&str, &str)]) -> (u16, String) {
        let mut body = String::new();
        for (k, v) in form {
            let (bytes, _, _) = encoding_rs::SHIFT_JIS.encode(v);
            let v = percent_encoding::percent_encode(&bytes, percent_encoding::NON_ALPHANUMERIC);
            body.push_str(&format!("{k}={v}&"));
        }
        let url = if url.starts_with('/') {
            format!("{}{url}", self.app.base)
        } else {
            url.to_owned()
        };
        let r = self
            .app
            .client
            .post(url)
            .header("user-agent", self.ua)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        self.check(&r);
        let status = r.status().as_u16();
        if status == 303 {
            return (status, r.headers()["location"].to_str().unwrap().to_owned());
        }
        (status, page_text(self.ua, r).await)
    }
}

async fn page_text(ua: &str, r: reqwest::Response) -> String {
    assert_eq!(
        r.headers()["content-type"],
        "text/html; charset=Shift_JIS",
        "{ua}"
    );
    let bytes = r.bytes().await.unwrap();
    assert!(
        bytes.len() < 10 * 1024,
        "{ua}: page is {} bytes",
        bytes.len()
    );
    let (text, _, errors) = encoding_rs::SHIFT_JIS.decode(&bytes);
    assert!(!errors, "{ua}: decodes as Shift_JIS");
    assert!(
        !text.contains("<script") && !text.contains("stylesheet") && !text.contains(" style="),
        "{ua}: no script or CSS"
    );
    assert!(!text.contains("<table"), "{ua}: no tables");
    text.into_owned()
}

async fn card_payment_from_each_carriers_feature_phone(app: TestApp) {
    let m = app.merchant().await;
    for (i, ua) in [UA_DOCOMO, UA_AU, UA_SOFTBANK, UA_DOCOMO_1]
        .into_iter()
        .enumerate()
    {
        let phone = Phone { app: &app, ua };
        let order = format!("fp-{i}");
        let selector = phone
            .get(&app.link(&m, &app.fields(&m, &order, 2480, &[])))
            .await;
        assert!(selector.contains("accesskey=\"1\""), "{ua}: accesskeys");
        assert!(selector.contains("2,480円"));
        let (status, card_url) = phone
            .post(
                &action(&selector),
                &[("csrf", &hidden(&selector, "csrf")), ("method", "card")],
            )
            .await;
        assert_eq!(status, 303, "{ua}");
        let form = phone.get(&card_url).await;
        assert!(form.contains("istyle=\"4\""), "{ua}: numeric input hint");
        let csrf = hidden(&form, "csrf");
        let (status, result) = phone
            .post(
                &card_url,
                &[
                    ("csrf", &csrf),
                    ("number", "4111111111111111"),
                    ("exp_month", "12"),
                    ("exp_year", &future_exp_year()),
                    ("cvc", "123"),
                    ("option", "lump"),
                ],
            )
            .await;
        assert_eq!(status, 303, "{ua}: {result}");
        let done = phone.get(&result).await;
        assert!(done.contains("お支払いが完了しました"), "{ua}");
        // The session rode in the URL: no cookie was set anywhere (checked on every response).
        assert!(result.starts_with("/pay/"));
    }
}
both!(card_payment_from_each_carriers_feature_phone);

async fn challenge_and_errors_on_a_feature_phone(app: TestApp) {
    let m = app.merchant().await;
    let phone = Phone {
        app: &app,
        ua: UA_AU,
    };
    let selector = phone
        .get(&app.link(&m, &app.fields(&m, "fp-otp", 1000, &[])))
        .await;
    let (_, card_url) = phone
        .post(
            &action(&selector),
            &[("csrf", &hidden(&selector, "csrf")), ("method", "card")],
        )
        .await;
    let form = phone.get(&card_url).await;
    let csrf = hidden(&form, "csrf");
    // Bad input re-renders the small form with the reason.
    let (status, page) = phone
        .post(
            &card_url,
            &[
                ("csrf", &csrf),
                ("number", "1234"),
                ("exp_month", "12"),
                ("exp_year", &future_exp_year()),
                ("cvc", "123"),
            ],
        )
        .await;
    assert_eq!(status, 422);
    assert!(page.contains("カード番号"));
    let (status, next) = phone
        .post(
            &card_url,
            &[
                ("csrf", &csrf),
                ("number", "4000000000002008"),
                ("exp_month", "12"),
                ("exp_year", &future_exp_year()),
                ("cvc", "123"),
            ],
        )
        .await;
    assert_eq!(status, 303);
    let challenge = phone.get(&next).await;
    assert!(challenge.contains("123456"));
    let (status, result) = phone
        .post(
            &format!("{card_url}/challenge"),
            &[("csrf", &csrf), ("otp", "123456")],
        )
        .await;
    assert_eq!(status, 303, "{result}");
    assert!(phone.get(&result).await.contains("お支払いが完了しました"));
    // CSRF works without cookies: a forged token is refused.
    let (status, _) = phone
        .post(
            &card_url,
            &[("csrf", "forged"), ("number", "4111111111111111")],
        )
        .await;
    assert_eq!(status, 403);
}
both!(challenge_and_errors_on_a_feature_phone);

/// Issue 16 item 7: au and SoftBank feature phones are offered d払い only (the carriers'
/// rule); the selector and the d払い page say plainly it is docomo's, paid with a d ACCOUNT,
/// and never that it goes on the phone's own bill. A docomo phone keeps the phone-bill text.
async fn d_barai_on_other_carriers_feature_phones_says_whose_it_is(app: TestApp) {
    let m = app.merchant().await;
    for (i, ua) in [UA_AU, UA_SOFTBANK, UA_DOCOMO].into_iter().enumerate() {
        let phone = Phone { app: &app, ua };
        let f = app.fields(&m, &format!("fp-d{i}"), 1000, &[]);
        let selector = phone.get(&app.link(&m, &f)).await;
        assert!(
            selector.contains("d払い（ドコモのdアカウント）"),
            "{ua}: {selector}"
        );
        assert!(!selector.contains("value=\"au\"") && !selector.contains("value=\"softbank\""));
        let (status, next) = phone
            .post(
                &action(&selector),
                &[("csrf", &hidden(&selector, "csrf")), ("method", "docomo")],
            )
            .await;
        assert_eq!(status, 303, "{next}");
        let page = phone.get(&next).await;
        if ua == UA_DOCOMO {
            assert!(page.contains("携帯電話のご利用料金と合わせて"), "{page}");
        } else {
            assert!(
                page.contains("NTTドコモのdアカウントでのお支払い"),
                "{ua}: {page}"
            );
            assert!(page.contains("ご利用料金とは合算されません"));
            assert!(
                !page.contains("ご利用料金と合わせて"),
                "{ua}: no own-bill wording"
            );
        }
    }
}
both!(d_barai_on_other_carriers_feature_phones_says_whose_it_is);

/// ガラホ User-Agents (from `device.rs`'s table).
const UA_GARAHO: &[&str] = &[
    "Mozilla/5.0 (Linux; Android 5.1; KYF31 Build/101.0.2c10) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/37.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 5.1; SH-01J Build/S9030) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/39.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 6.0.1; 602SH Build/S3031) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/44.0.2403.133 Mobile Safari/537.36",
];

/// HTML plus its stylesheets, in bytes.
async fn weight(app: &TestApp, ua: &str, html: &str) -> usize {
    let mut total = html.len();
    for part in html.split("<link rel=\"stylesheet\" href=\"").skip(1) {
        let href = part.split('"').next().unwrap();
        total += app.get(href, ua).await.bytes().await.unwrap().len();
    }
    total
}

/// Issue 16 item 8: a ガラホ gets the compact layout in UTF-8 with numbered accesskeys, every
/// method a smartphone could use (not the feature-phone subset), and light pages.
async fn garaho_gets_a_compact_utf8_layout_with_accesskeys(app: TestApp) {
    let m = app.merchant().await;
    for (i, ua) in UA_GARAHO.iter().copied().enumerate() {
        let f = app.fields(&m, &format!("gh-{i}"), 1000, &[]);
        let r = app.get(&app.link(&m, &f), ua).await;
        assert_eq!(r.status(), 200);
        assert_eq!(
            r.headers()["content-type"],
            "text/html; charset=utf-8",
            "{ua}"
        );
        let selector = r.text().await.unwrap();
        assert!(selector.contains("layout-gh"), "{ua}");
        for method in [
            "card", "konbini", "payeasy", "banknet", "docomo", "au", "softbank",
        ] {
            assert!(
                selector.contains(&format!("value=\"{method}\"")),
                "{ua}: {method}"
            );
        }
        assert!(selector.contains("accesskey=\"1\"") && selector.contains(">1. "));
        assert!(!selector.contains("view?to="), "no PC/smartphone switch");
        assert!(weight(&app, ua, &selector).await < 15 * 1024);
        // The konbini chain list and its confirm step keep the keys; a UTF-8 post works.
        let r = app
            .post_form(
                &action(&selector),
                ua,
                &[("csrf", &hidden(&selector, "csrf")), ("method", "konbini")],
            )
            .await;
        assert_eq!(r.status(), 303);
        let path = r.headers()["location"].to_str().unwrap().to_owned();
        let chains = app.get(&path, ua).await.text().await.unwrap();
        assert!(chains.contains("accesskey=\"2\"") && chains.contains("accesskey=\"0\""));
        let r = app
            .post_form(
                &path,
                ua,
                &[("csrf", &hidden(&chains, "csrf")), ("chain", "lawson")],
            )
            .await;
        assert_eq!(r.status(), 200);
        let confirm = r.text().await.unwrap();
        assert!(confirm.contains("ローソンでお支払い: 番号を発行します"));
        assert!(confirm.contains("id=\"issue\" type=\"submit\" accesskey=\"1\""));
    }
    // A classic feature phone still gets the Shift_JIS pages and the feature-phone subset.
    let f = app.fields(&m, "gh-fp", 1000, &[]);
    let classic = Phone {
        app: &app,
        ua: UA_AU,
    }
    .get(&app.link(&m, &f))
    .await;
    assert!(!classic.contains("value=\"banknet\""));
}
both!(garaho_gets_a_compact_utf8_layout_with_accesskeys);
