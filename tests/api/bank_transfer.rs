//! Bank transfer (銀行振込) in the sandbox: a test-mode merchant without a processor gets an
//! obviously-test 振込先 on PC, smartphone and feature phone; the sandbox controls pay or
//! expire it (with the merchant's notifications); the shopper can withdraw it and pay another
//! way.

use serde_json::Value;

use crate::helpers::*;

fn is_fp(ua: &str) -> bool {
    ua == UA_DOCOMO || ua == UA_AU || ua == UA_SOFTBANK
}

async fn text(r: reqwest::Response, ua: &str) -> (u16, String) {
    let status = r.status().as_u16();
    let bytes = r.bytes().await.unwrap();
    if is_fp(ua) {
        let (t, _, errors) = encoding_rs::SHIFT_JIS.decode(&bytes);
        assert!(!errors, "valid Shift_JIS");
        assert!(bytes.len() < 10 * 1024, "feature phone page < 10 KB");
        assert!(!t.contains("<script"), "no script on feature phones");
        (status, t.into_owned())
    } else {
        (status, String::from_utf8(bytes.to_vec()).unwrap())
    }
}

fn location(r: &reqwest::Response) -> String {
    r.headers()["location"].to_str().unwrap().to_owned()
}

/// Opens the link on `ua`, picks bank transfer and issues the 振込先; returns (path, page).
async fn transfer_page(
    app: &TestApp,
    m: &TestMerchant,
    f: &[(String, String)],
    ua: &str,
) -> (String, String) {
    let before = app.count("payments").await;
    let (status, body) = text(app.get(&app.link(m, f), ua).await, ua).await;
    assert_eq!(status, 200, "{body}");
    let r = app
        .post_form(
            &action(&body),
            ua,
            &[
                ("csrf", &hidden(&body, "csrf")),
                ("method", "bank_transfer"),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);
    let path = location(&r);
    let (status, form) = text(app.get(&path, ua).await, ua).await;
    assert_eq!(status, 200, "{form}");
    assert_eq!(
        app.count("payments").await,
        before,
        "nothing before 発行する"
    );
    let r = app
        .post_form(&path, ua, &[("csrf", &hidden(&form, "csrf"))])
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), path);
    let (status, page) = text(app.get(&path, ua).await, ua).await;
    assert_eq!(status, 200, "{page}");
    (path, page)
}

fn acct(body: &str, key: &str) -> String {
    let needle = format!("id=\"acct-{key}\">");
    let i = body
        .find(&needle)
        .unwrap_or_else(|| panic!("no {key} in {body}"))
        + needle.len();
    body[i..].split('<').next().unwrap().to_owned()
}

async fn payment_id(app: &TestApp, order: &str) -> String {
    app.scalar_str(&format!(
        "SELECT id FROM payments WHERE order_id = '{order}'"
    ))
    .await
    .expect("payment")
}

async fn outbox_types(app: &TestApp, payment_id: &str) -> Vec<String> {
    kakehashi::on_db!(&app.db, c => sqlx::query_scalar(
        "SELECT type FROM outbox WHERE payment_id = $1 ORDER BY seq",
    )
    .bind(payment_id)
    .fetch_all(c)
    .await)
    .unwrap()
}

/// The sandbox control endpoint, signed with the merchant's key.
async fn sandbox(app: &TestApp, m: &TestMerchant, payment_id: &str, action: &str) -> (u16, Value) {
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
    (r.status().as_u16(), r.json().await.unwrap())
}

/// PC, smartphone and feature phone show the sandbox 振込先 (the same account on each), the
/// amount above Konbini's limit is fine, and the sandbox "pay now" control makes it paid with
/// `bank_transfer.issued` then `bank_transfer.paid` queued for the merchant.
async fn sandbox_bank_transfer_on_every_device_then_paid(app: TestApp) {
    let m = app.merchant().await;
    let f = app.fields(&m, "sbt-1", 450_000, &[]);
    let (path, pc) = transfer_page(&app, &m, &f, UA_PC).await;
    let number = acct(&pc, "account_number");
    assert_eq!(number.len(), 7);
    assert_eq!(
        acct(&pc, "bank_name"),
        kakehashi::connectors::konbini::SANDBOX_BANK_NAME
    );
    assert_eq!(acct(&pc, "account_type"), "普通");
    assert!(pc.contains("450,000"));
    assert!(pc.contains("テストモード"));
    let (_, sp) = text(app.get(&path, UA_ANDROID).await, UA_ANDROID).await;
    assert_eq!(acct(&sp, "account_number"), number);
    let (_, fp) = text(app.get(&path, UA_AU).await, UA_AU).await;
    assert!(fp.contains(&format!("口座番号:<br>{number}<br>")), "{fp}");
    assert!(fp.contains("銀行名:<br>"), "{fp}");

    let id = payment_id(&app, "sbt-1").await;
    let (status, v) = sandbox(&app, &m, &id, "paid").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["payment"]["status"], "paid");
    assert_eq!(v["payment"]["method"], "bank_transfer");
    assert_eq!(
        v["payment"]["number"]["account"]["account_number"],
        number.as_str()
    );
    assert_eq!(app.checkout_status(&m, "sbt-1").await, "paid");
    let (_, shown) = text(app.get(&path, UA_PC).await, UA_PC).await;
    assert!(shown.contains("お支払いを確認しました"));
    assert_eq!(
        outbox_types(&app, &id).await,
        ["bank_transfer.issued", "bank_transfer.paid"]
    );
    let (status, v) = sandbox(&app, &m, &id, "paid").await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (409, Some("duplicate"))
    );
}
both!(sandbox_bank_transfer_on_every_device_then_paid);

/// The sandbox's expiry control expires the account (`payment.expired`); the page then hides
/// it. A second transfer is withdrawn by the shopper ("change method"): cancelled, the checkout
/// open again.
async fn sandbox_bank_transfer_expiry_and_withdrawal(app: TestApp) {
    let m = app.merchant().await;
    let f = app.fields(&m, "sbt-2", 3000, &[]);
    let (path, _) = transfer_page(&app, &m, &f, UA_PC).await;
    let id = payment_id(&app, "sbt-2").await;
    let (status, v) = sandbox(&app, &m, &id, "expire").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["payment"]["status"], "expired");
    let (_, page) = text(app.get(&path, UA_PC).await, UA_PC).await;
    assert!(page.contains("data-status=\"expired\""));
    assert!(
        !page.contains("acct-account_number"),
        "an expired account is hidden"
    );
    assert_eq!(
        outbox_types(&app, &id).await,
        ["bank_transfer.issued", "payment.expired"]
    );

    let f = app.fields(&m, "sbt-3", 3000, &[]);
    let (_, page) = transfer_page(&app, &m, &f, UA_IPHONE).await;
    let change = page
        .match_indices("action=\"")
        .map(|(i, _)| page[i + 8..].split('"').next().unwrap().to_owned())
        .find(|a| a.ends_with("/number/change"))
        .expect("change form");
    let r = app
        .post_form(&change, UA_IPHONE, &[("csrf", &hidden(&page, "csrf"))])
        .await;
    assert_eq!(r.status(), 303);
    let id = payment_id(&app, "sbt-3").await;
    assert_eq!(app.payment_status(&id).await, "cancelled");
    assert_eq!(app.checkout_status(&m, "sbt-3").await, "open");
    assert_eq!(
        outbox_types(&app, &id).await,
        ["bank_transfer.issued", "payment.cancelled"]
    );
}
both!(sandbox_bank_transfer_expiry_and_withdrawal);
