//! What bank net and wallets share through the one redirect flow, table-driven over both
//! methods (test names say `bank_and_wallet`, so `cargo test bank` and `cargo test wallet` run
//! them): forged returns are refused and change nothing, and neither is offered on feature
//! phones.

use crate::helpers::*;

/// One redirect method as the shopper meets it.
struct Case {
    method: &'static str,
    /// The form field naming the institution, also the sandbox page's path segment.
    field: &'static str,
    institution: &'static str,
    waiting: &'static str,
    declined: &'static str,
    /// A signed field swapped for another valid value (the institution).
    swap: (&'static str, &'static str),
}

const CASES: [Case; 2] = [
    Case {
        method: "banknet",
        field: "bank",
        institution: "0005",
        waiting: "awaiting_bank",
        declined: "declined",
        swap: ("bank=0005", "bank=0036"),
    },
    Case {
        method: "wallet",
        field: "wallet",
        institution: "paypay",
        waiting: "awaiting_wallet",
        declined: "failed",
        swap: ("wallet=paypay", "wallet=linepay"),
    },
];

/// From the selector to the sandbox institution page; returns its URL.
async fn to_sandbox(app: &TestApp, m: &TestMerchant, c: &Case, order: &str) -> String {
    let method_page = app.choose(m, order, 4_800, c.method, UA_PC).await;
    let body = app.get(&method_page, UA_PC).await.text().await.unwrap();
    let r = app
        .post_form(
            &method_page,
            UA_PC,
            &[("csrf", &hidden(&body, "csrf")), (c.field, c.institution)],
        )
        .await;
    assert_eq!(r.status(), 303, "{}", c.method);
    let url = location(&r);
    let prefix = format!("{}/sandbox/{}/{}/", app.base, c.field, c.institution);
    assert!(url.starts_with(&prefix), "{url}");
    url
}

/// Presses a button on a sandbox institution page.
async fn press(app: &TestApp, url: &str, choice: &str) -> reqwest::Response {
    let body = app.get(url, UA_PC).await.text().await.unwrap();
    assert!(body.contains("テスト環境"), "bannered as a sandbox page");
    assert!(body.contains("支払う（承認）") && body.contains("画面を閉じる（離脱）"));
    assert!(!body.contains("theme-demo"), "no merchant theme");
    app.post_form(
        url,
        UA_PC,
        &[("csrf", &hidden(&body, "csrf")), ("choice", choice)],
    )
    .await
}

async fn forged_bank_and_wallet_returns_are_refused(app: TestApp) {
    let m = app.merchant().await;
    for (i, c) in CASES.iter().enumerate() {
        let url = to_sandbox(&app, &m, c, &format!("rd-4{i}")).await;
        let ret = location(&press(&app, &url, "decline").await);
        let pid = ret
            .split('?')
            .next()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap()
            .to_owned();
        let forged = [
            ret.replace("result=declined", "result=paid"),
            format!("{ret}&extra=1"),
            ret.replace("amount=4800", "amount=1"),
            ret.replace(c.swap.0, c.swap.1),
            ret.split("&sig=").next().unwrap().to_owned(),
        ];
        for f in forged {
            assert_ne!(f, ret, "{}: the forgery changes the URL", c.method);
            let r = app.get(&f, UA_PC).await;
            assert_eq!(r.status(), 403, "{f}");
            assert_eq!(error_code(&r.text().await.unwrap()), "return_rejected");
        }
        assert_eq!(app.payment_status(&pid).await, c.waiting);
        // A genuine return replayed against another payment id is refused too.
        let other = ret.replace(&format!("/return/{pid}"), "/return/pay_other");
        assert_eq!(app.get(&other, UA_PC).await.status(), 403);
        // Bad CSRF on the sandbox page changes nothing.
        let r = app
            .post_form(&url, UA_PC, &[("csrf", "x"), ("choice", "approve")])
            .await;
        assert_eq!(r.status(), 403);
        assert_eq!(app.payment_status(&pid).await, c.waiting);
        // The genuine one still works.
        app.get(&ret, UA_PC).await;
        assert_eq!(app.payment_status(&pid).await, c.declined, "{}", c.method);
    }
}
both!(forged_bank_and_wallet_returns_are_refused);

async fn bank_and_wallet_not_offered_on_feature_phones(app: TestApp) {
    let m = app.merchant().await;
    let f = app.fields(&m, "rd-5", 1000, &[]);
    let (_, body) = app.open(&m, &f, UA_DOCOMO).await;
    assert!(body.contains("value=\"docomo\""), "{body}");
    for c in &CASES {
        assert!(
            !body.contains(&format!("value=\"{}\"", c.method)),
            "{}",
            c.method
        );
        // Forcing the choice is refused.
        let r = app
            .post_form(
                &action(&body),
                UA_DOCOMO,
                &[("csrf", &hidden(&body, "csrf")), ("method", c.method)],
            )
            .await;
        assert_ne!(r.status(), 303, "{}", c.method);
    }
    assert_eq!(app.count("payments").await, 0);
}
both!(bank_and_wallet_not_offered_on_feature_phones);
