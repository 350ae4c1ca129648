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
