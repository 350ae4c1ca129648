//! Konbini (コンビニ決済) and Pay-easy end to end through real HTTP: choosing the method and
//! the chain, the number page on every device, re-showing the number, refusals, stamp duty,
//! the sandbox control endpoint, notifications, expiry and late payments.

use kakehashi::db::checkouts;
use kakehashi::db::payments::{self, PaymentRow};
use kakehashi::domain::Mode;
use kakehashi::flows::konbini as flow;
use serde_json::Value;

use crate::helpers::*;

/// Reads a page; feature-phone pages are Shift_JIS and must stay under 10 KB.
async fn page(app: &TestApp, path: &str, ua: &str) -> (u16, String) {
    let r = app.get(path, ua).await;
    decode(r, ua).await
}

async fn decode(r: reqwest::Response, ua: &str) -> (u16, String) {
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let bytes = r.bytes().await.unwrap();
    if ua == UA_DOCOMO || ua == UA_AU || ua == UA_SOFTBANK {
        assert!(
            ct.contains("Shift_JIS"),
            "feature phone page in Shift_JIS: {ct}"
        );
        assert!(
            bytes.len() < 10 * 1024,
            "feature phone page < 10 KB: {}",
            bytes.len()
        );
        let (text, _, errors) = encoding_rs::SHIFT_JIS.decode(&bytes);
        assert!(!errors, "valid Shift_JIS");
        assert!(!text.contains("<table"), "no tables on feature phones");
        assert!(!text.contains("<script"), "no script on feature phones");
        (status, text.into_owned())
    } else {
        (status, String::from_utf8(bytes.to_vec()).unwrap())
    }
}

fn location(r: &reqwest::Response) -> String {
    r.headers()
        .get("location")
        .expect("redirect")
        .to_str()
        .unwrap()
        .to_owned()
}

/// Opens a link on `ua` and picks `method` on the selector; returns the method page's path.
async fn choose_method(
    app: &TestApp,
    m: &TestMerchant,
    f: &[(String, String)],
    ua: &str,
    method: &str,
) -> String {
    let r = app.get(&app.link(m, f), ua).await;
    let (status, body) = decode(r, ua).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains(&format!("value=\"{method}\"")),
        "{method} offered"
    );
    let csrf = hidden(&body, "csrf");
    let r = app
        .post_form(&action(&body), ua, &[("csrf", &csrf), ("method", method)])
        .await;
    assert_eq!(r.status().as_u16(), 303);
    let path = location(&r);
    assert!(path.ends_with(&format!("/{method}")), "{path}");
    path
}

/// On the chain page at `path`, picks `chain`; returns the response to the POST.
/// Chooses a chain, then confirms it on the confirm step ("…でお支払い: 番号を発行します").
async fn post_chain(app: &TestApp, path: &str, ua: &str, chain: &str) -> reqwest::Response {
    let (status, body) = page(app, path, ua).await;
    assert_eq!(status, 200, "{body}");
    let csrf = hidden(&body, "csrf");
    let before = app.count("payments").await;
    let r = app
        .post_form(path, ua, &[("csrf", &csrf), ("chain", chain)])
        .await;
    if r.status() != 200 {
        // Refused (not offered, not enabled): no confirm step.
        return r;
    }
    let (_, confirm) = decode(r, ua).await;
    assert!(
        confirm.contains("番号を発行します") || confirm.contains("issue your payment number"),
        "confirm step: {confirm}"
    );
    assert_eq!(
        app.count("payments").await,
        before,
        "nothing issued before 発行する"
    );
    app.post_form(
        path,
        ua,
        &[("csrf", &csrf), ("chain", chain), ("confirm", "1")],
    )
    .await
}

/// Full konbini flow to the number page; returns (path, number page).
async fn konbini_number(
    app: &TestApp,
    m: &TestMerchant,
    f: &[(String, String)],
    ua: &str,
    chain: &str,
) -> (String, String) {
    let path = choose_method(app, m, f, ua, "konbini").await;
    let r = post_chain(app, &path, ua, chain).await;
    assert_eq!(r.status().as_u16(), 303, "issued, then redirected");
    assert_eq!(location(&r), path);
    let (status, body) = page(app, &path, ua).await;
    assert_eq!(status, 200, "{body}");
    (path, body)
}

/// A number on a PC/smartphone number page.
fn num(body: &str, key: &str) -> String {
    let needle = format!("id=\"num-{key}\">");
    let i = body
        .find(&needle)
        .unwrap_or_else(|| panic!("no {key} in {body}"))
        + needle.len();
    // The digits are shown in groups (`<span class="grp">`): the number is their text.
    // Up to the end of the value (the copy button after it is not part of the number).
    let end = ["<button", "</dd>"]
        .iter()
        .filter_map(|t| body[i..].find(t))
        .min()
        .map_or(body.len(), |e| i + e);
    let shown = &body[i..end];
    let mut out = String::new();
    let mut in_tag = false;
    for ch in shown.chars() {
        match ch {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

/// A number on a feature-phone page: `label:<br>value<br>`.
fn fp_num(body: &str, label: &str) -> String {
    let needle = format!("{label}:<br>");
    let i = body
        .find(&needle)
        .unwrap_or_else(|| panic!("no {label} in {body}"))
        + needle.len();
    body[i..].split('<').next().unwrap().to_owned()
}

fn digits(s: &str, n: usize) -> bool {
    s.len() == n && s.bytes().all(|b| b.is_ascii_digit())
}

async fn payment_of(app: &TestApp, m: &TestMerchant, order: &str) -> PaymentRow {
    let co = checkouts::find_by_order(&app.db, &m.id, order)
        .await
        .unwrap()
        .unwrap();
    flow::issued_for_checkout(&app.db, &co.id)
        .await
        .unwrap()
        .expect("number issued")
}

async fn checkout_status(app: &TestApp, m: &TestMerchant, order: &str) -> String {
    checkouts::find_by_order(&app.db, &m.id, order)
        .await
        .unwrap()
        .unwrap()
        .status
        .code()
        .to_owned()
}

/// Calls the sandbox control endpoint signed with the merchant's key.
async fn sandbox_call(
    app: &TestApp,
    m: &TestMerchant,
    payment_id: &str,
    action: &str,
    query: &str,
) -> (u16, Value) {
    sandbox_signed(app, m, payment_id, action, query, now_s(), None).await
}

async fn sandbox_signed(
    app: &TestApp,
    m: &TestMerchant,
    payment_id: &str,
    action: &str,
    query: &str,
    ts: i64,
    signature: Option<&str>,
) -> (u16, Value) {
    let path = format!("/sandbox/v1/payments/{payment_id}/{action}{query}");
    let sig = signature
        .map(str::to_owned)
        .unwrap_or_else(|| kakehashi::signing::sign(&m.secret, &format!("POST\n{path}\n{ts}")));
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
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json"),
        "JSON answer"
    );
    (status, r.json().await.unwrap())
}

fn types(hits: &[Hit]) -> Vec<String> {
    hits.iter()
        .map(|h| h.json()["type"].as_str().unwrap().to_owned())
        .collect()
}

async fn wait_types(rx: &Receiver, want: &[&str]) -> Vec<Hit> {
    let hits = rx
        .wait_for(&format!("{want:?}"), |h| h.len() >= want.len())
        .await;
    assert_eq!(types(&hits), want);
    hits
}

async fn seven_eleven_on_pc_shows_the_slip_number_and_never_issues_twice(app: TestApp) {
    let m = app.merchant().await;
    let f = app.fields(&m, "k-7", 1500, &[]);
    let path = choose_method(&app, &m, &f, UA_PC, "konbini").await;
    let (status, chooser) = page(&app, &path, UA_PC).await;
    assert_eq!(status, 200);
    for name in [
        "セブン-イレブン",
        "ローソン",
        "ファミリーマート",
        "ミニストップ",
        "デイリーヤマザキ",
        "セイコーマート",
    ] {
        assert!(chooser.contains(name), "{name} offered");
    }
    assert!(
        chooser.contains(") 23:59<"),
        "deadline preview, with the weekday"
    );
    let r = post_chain(&app, &path, UA_PC, "seven").await;
    assert_eq!(r.status().as_u16(), 303);
    let (_, body) = page(&app, &path, UA_PC).await;
    assert!(body.contains("layout-pc"));
    assert!(body.contains("セブン-イレブンでのお支払い"));
    assert!(body.contains("払込票番号"));
    let slip = num(&body, "receipt_no");
    assert!(digits(&slip, 13), "13-digit 払込票番号: {slip}");
    assert!(
        body.contains(") 23:59<"),
        "deadline ends 23:59 JST, shown with the weekday"
    );
    assert!(body.contains("&yen;1,500"));
    assert!(
        body.contains("インターネット代金の支払い"),
        "how to pay at 7-Eleven"
    );
    assert!(body.contains("印刷する"), "print hint on PC");
    // CSP-safe: no inline style or script; the one script is our own file under /assets.
    assert!(!body.contains("style="), "CSP-safe");
    assert_eq!(
        body.matches("<script").count(),
        body.matches("<script src=\"/assets/").count(),
        "CSP-safe"
    );

    let p = payment_of(&app, &m, "k-7").await;
    assert_eq!(
        (p.method.code(), p.institution.as_deref(), p.status.code()),
        ("konbini", Some("seven"), "awaiting_payment")
    );
    assert_eq!(p.fee, 0, "no stamp duty under 50,000 yen");
    let deadline = p.deadline_at.unwrap();
    assert_eq!(
        deadline,
        kakehashi::domain::konbini::deadline_ms(p.created_at, 7),
        "merchant default of 7 days"
    );
    assert_eq!(checkout_status(&app, &m, "k-7").await, "pending");
    let events: Vec<String> = payments::events(&app.db, &p.id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(events, ["payment.created", "konbini.issued"]);

    // Reload, the checkout page and reopening the signed link all show the same number.
    let (_, again) = page(&app, &path, UA_PC).await;
    assert_eq!(num(&again, "receipt_no"), slip);
    let (_, checkout_page) = page(&app, path.trim_end_matches("/konbini"), UA_PC).await;
    assert_eq!(num(&checkout_page, "receipt_no"), slip);
    let (status, reopened) = app.open(&m, &f, UA_IPHONE).await;
    assert_eq!(status, 200);
    assert_eq!(num(&reopened, "receipt_no"), slip);
    assert!(!reopened.contains("value=\"card\""), "no selector any more");
    // Re-posting another chain shows the issued number; it never issues a second one.
    let csrf = hidden(&chooser, "csrf");
    let r = app
        .post_form(&path, UA_PC, &[("csrf", &csrf), ("chain", "lawson")])
        .await;
    assert_eq!(r.status().as_u16(), 303);
    let (_, after) = page(&app, &location(&r), UA_PC).await;
    assert_eq!(num(&after, "receipt_no"), slip);
    assert_eq!(app.count("payments").await, 1);
}
both!(seven_eleven_on_pc_shows_the_slip_number_and_never_issues_twice);

async fn lawson_on_smartphone_shows_customer_and_confirmation_numbers(app: TestApp) {
    let m = app.merchant().await;
    let f = app.fields(&m, "k-l", 2000, &[("konbini_days", "3")]);
    let (_, body) = konbini_number(&app, &m, &f, UA_IPHONE, "lawson").await;
    assert!(body.contains("layout-sp"));
    assert!(body.contains("ローソンでのお支払い"));
    assert!(digits(&num(&body, "customer_no"), 11), "お客様番号");
    assert!(digits(&num(&body, "confirm_no"), 4), "確認番号");
    assert!(body.contains("Loppi"), "how to pay at Lawson");
    assert!(body.contains("スクリーンショット"), "smartphone save hint");
    let p = payment_of(&app, &m, "k-l").await;
    assert_eq!(
        p.deadline_at.unwrap(),
        kakehashi::domain::konbini::deadline_ms(p.created_at, 3),
        "the link's konbini_days wins over the merchant default"
    );
}
both!(lawson_on_smartphone_shows_customer_and_confirmation_numbers);

async fn feature_phones_get_small_shift_jis_number_pages(app: TestApp) {
    let m = app.merchant().await;
    let f = app.fields(&m, "k-fp", 3000, &[]);
    let path = choose_method(&app, &m, &f, UA_DOCOMO, "konbini").await;
    let (_, chooser) = page(&app, &path, UA_DOCOMO).await;
    assert!(chooser.contains("accesskey=\"1\""), "keypad shortcuts");
    assert!(chooser.contains("ファミリーマート"));
    let r = post_chain(&app, &path, UA_DOCOMO, "famima").await;
    assert_eq!(r.status().as_u16(), 303);
    let (status, body) = page(&app, &path, UA_DOCOMO).await;
    assert_eq!(status, 200);
    assert!(body.contains("ファミリーマートでのお支払い"));
    assert!(digits(&fp_num(&body, "お客様番号"), 11));
    assert!(digits(&fp_num(&body, "確認番号"), 4));
    assert!(fp_num(&body, "お支払期限").ends_with(") 23:59"));
    assert!(body.contains("マルチコピー機"), "how to pay at FamilyMart");
    assert!(body.contains("accesskey=\"0\""));

    // Seicomart on au: one 11-digit 受付番号.
    let f = app.fields(&m, "k-fp2", 3000, &[]);
    let path = choose_method(&app, &m, &f, UA_AU, "konbini").await;
    assert_eq!(
        post_chain(&app, &path, UA_AU, "seicomart")
            .await
            .status()
            .as_u16(),
        303
    );
    let (_, body) = page(&app, &path, UA_AU).await;
    assert!(digits(&fp_num(&body, "受付番号"), 11));
    // Reopening on the phone shows the number again.
    let r = app.get(&app.link(&m, &f), UA_AU).await;
    let (_, reopened) = decode(r, UA_AU).await;
    assert_eq!(fp_num(&reopened, "受付番号"), fp_num(&body, "受付番号"));
}
both!(feature_phones_get_small_shift_jis_number_pages);

async fn chain_not_enabled_is_refused(app: TestApp) {
    let m = app
        .merchant_with(|n| n.konbini_chains = vec!["seven".into(), "lawson".into()])
        .await;
    let f = app.fields(&m, "k-ne", 1000, &[]);
    let path = choose_method(&app, &m, &f, UA_PC, "konbini").await;
    let (_, chooser) = page(&app, &path, UA_PC).await;
    assert!(chooser.contains("value=\"seven\""));
    assert!(!chooser.contains("value=\"famima\""), "only enabled chains");
    for chain in ["famima", "nosuchchain"] {
        let r = post_chain(&app, &path, UA_PC, chain).await;
        assert_eq!(r.status().as_u16(), 400);
        let body = r.text().await.unwrap();
        assert_eq!(error_code(&body), "chain_not_available");
        assert!(
            body.contains("value=\"seven\""),
            "the choice is shown again"
        );
    }
    assert_eq!(app.count("payments").await, 0);
    assert_eq!(checkout_status(&app, &m, "k-ne").await, "open");
}
both!(chain_not_enabled_is_refused);

async fn familymart_with_a_same_day_deadline_is_refused(app: TestApp) {
    let m = app.merchant().await;
    let f = app.fields(&m, "k-f0", 1000, &[("konbini_days", "0")]);
    let path = choose_method(&app, &m, &f, UA_PC, "konbini").await;
    let (_, chooser) = page(&app, &path, UA_PC).await;
    assert!(!chooser.contains("value=\"famima\""), "not offered");
    assert!(chooser.contains("ファミリーマートは当日期限"), "says why");
    let r = post_chain(&app, &path, UA_PC, "famima").await;
    assert_eq!(r.status().as_u16(), 400);
    let body = r.text().await.unwrap();
    assert_eq!(error_code(&body), "konbini_deadline_too_short");
    assert!(body.contains("他のコンビニをお選びください"));
    assert_eq!(app.count("payments").await, 0);
    // Other chains accept a same-day deadline: tonight 23:59:59 JST.
    let r = post_chain(&app, &path, UA_PC, "ministop").await;
    assert_eq!(r.status().as_u16(), 303);
    let p = payment_of(&app, &m, "k-f0").await;
    assert_eq!(
        p.deadline_at.unwrap(),
        kakehashi::domain::konbini::deadline_ms(p.created_at, 0)
    );
}
both!(familymart_with_a_same_day_deadline_is_refused);

async fn konbini_is_not_offered_above_300000_yen(app: TestApp) {
    let m = app.merchant().await;
    let f = app.fields(&m, "k-big", 300_001, &[]);
    let (status, body) = app.open(&m, &f, UA_PC).await;
    assert_eq!(status, 200);
    assert!(!body.contains("value=\"konbini\""), "konbini not offered");
    assert!(body.contains("value=\"payeasy\""), "Pay-easy still is");
    // Going to the konbini page directly is refused too.
    let token_path = action(&body).trim_end_matches("/method").to_owned();
    let r = app.get(&format!("{token_path}/konbini"), UA_PC).await;
    assert_eq!(r.status().as_u16(), 400);
    assert_eq!(error_code(&r.text().await.unwrap()), "method_not_available");
    // Exactly 300,000 is fine.
    let f = app.fields(&m, "k-max", 300_000, &[]);
    let (_, body) = app.open(&m, &f, UA_PC).await;
    assert!(body.contains("value=\"konbini\""));
}
both!(konbini_is_not_offered_above_300000_yen);

async fn stamp_duty_is_recorded_from_50000_yen(app: TestApp) {
    let m = app.merchant().await;
    for (order, amount, fee) in [("k-s1", 50_000, 200), ("k-s2", 49_999, 0)] {
        let f = app.fields(&m, order, amount, &[]);
        konbini_number(&app, &m, &f, UA_PC, "daily").await;
        let p = payment_of(&app, &m, order).await;
        assert_eq!(p.fee, fee, "{amount} yen");
        assert_eq!(p.amount, amount);
    }
}
both!(stamp_duty_is_recorded_from_50000_yen);

async fn sandbox_paid_then_confirmed_notifies_each_step(app: TestApp) {
    let rx = Receiver::start().await;
    let m = app
        .merchant_with(|n| n.callback_url = Some(rx.url.clone()))
        .await;
    let f = app.fields(&m, "k-pc", 4000, &[]);
    let (path, body) = konbini_number(&app, &m, &f, UA_PC, "seven").await;
    let id = body
        .split("id=\"payment-id\">")
        .nth(1)
        .unwrap()
        .split('<')
        .next()
        .unwrap()
        .to_owned();
    let hits = wait_types(&rx, &["konbini.issued"]).await;
    let issued = hits[0].json();
    assert_eq!(issued["data"]["payment_id"], id.as_str());
    assert_eq!(issued["data"]["status"], "awaiting_payment");
    assert_eq!(
        issued["data"]["konbini"]["receipt_no"],
        num(&body, "receipt_no").as_str()
    );

    let (status, v) = sandbox_call(&app, &m, &id, "paid", "").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["payment"]["status"], "paid");
    assert_eq!(v["payment"]["status_label_ja"], "消込済（速報）");
    assert!(v["payment"]["paid_at"].is_string());
    assert_eq!(checkout_status(&app, &m, "k-pc").await, "paid");
    let (_, shown) = page(&app, &path, UA_PC).await;
    assert!(shown.contains("お支払いを確認しました"));
    assert!(shown.contains("data-status=\"paid\""));

    let (status, v) = sandbox_call(&app, &m, &id, "confirm", "").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["payment"]["status"], "confirmed");
    let hits = wait_types(
        &rx,
        &["konbini.issued", "konbini.paid", "konbini.confirmed"],
    )
    .await;
    assert_eq!(hits[2].json()["data"]["status"], "confirmed");
    // 確報 is final: a reversal now is refused and changes nothing.
    let (status, v) = sandbox_call(&app, &m, &id, "reverse", "").await;
    assert_eq!(status, 409);
    assert_eq!(v["error"]["code"], "forbidden_transition");
    let (status, v) = sandbox_call(&app, &m, &id, "confirm", "").await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (409, Some("duplicate"))
    );
    let events = payments::events(&app.db, &id).await.unwrap();
    assert_eq!(events.len(), 4, "created, issued, paid, confirmed");
    assert_eq!(events[2].from_status.as_deref(), Some("awaiting_payment"));
    assert_eq!(events[2].actor, "sandbox_api");
}
both!(sandbox_paid_then_confirmed_notifies_each_step);

async fn sandbox_paid_then_reversed(app: TestApp) {
    let rx = Receiver::start().await;
    let m = app
        .merchant_with(|n| n.callback_url = Some(rx.url.clone()))
        .await;
    let f = app.fields(&m, "k-rv", 4000, &[]);
    let (path, _) = konbini_number(&app, &m, &f, UA_PC, "lawson").await;
    let p = payment_of(&app, &m, "k-rv").await;
    let (status, _) = sandbox_call(&app, &m, &p.id, "paid", "").await;
    assert_eq!(status, 200);
    let (status, v) = sandbox_call(&app, &m, &p.id, "reverse", "").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["payment"]["status"], "reversed");
    assert_eq!(v["payment"]["status_label_ja"], "速報取消");
    wait_types(&rx, &["konbini.issued", "konbini.paid", "konbini.reversed"]).await;
    // The number stays usable: the checkout is pending again and the page shows the number.
    assert_eq!(checkout_status(&app, &m, "k-rv").await, "pending");
    let (_, shown) = page(&app, &path, UA_PC).await;
    assert!(shown.contains("取り消されました"));
    assert_eq!(
        num(&shown, "customer_no"),
        flow::NumberDetails::of(&p).customer_no.unwrap()
    );
    // A reversed payment is never confirmed.
    let (status, v) = sandbox_call(&app, &m, &p.id, "confirm", "").await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (409, Some("forbidden_transition"))
    );
}
both!(sandbox_paid_then_reversed);

async fn sandbox_endpoint_refusals(app: TestApp) {
    let m = app.merchant().await;
    let other = app.merchant().await;
    let f = app.fields(&m, "k-sx", 1000, &[]);
    konbini_number(&app, &m, &f, UA_PC, "seven").await;
    let p = payment_of(&app, &m, "k-sx").await;
    let ts = now_s();

    let (status, v) = sandbox_signed(&app, &m, &p.id, "paid", "", ts, Some(&"0".repeat(64))).await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (401, Some("bad_signature"))
    );
    // Signed with another merchant's secret.
    let wrong = kakehashi::signing::sign(
        &other.secret,
        &format!("POST\n/sandbox/v1/payments/{}/paid\n{ts}", p.id),
    );
    let (status, v) = sandbox_signed(&app, &m, &p.id, "paid", "", ts, Some(&wrong)).await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (401, Some("bad_signature"))
    );
    // Correctly signed but six minutes old.
    let (status, v) = sandbox_signed(&app, &m, &p.id, "paid", "", ts - 360, None).await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (401, Some("stale_timestamp"))
    );
    // Missing headers.
    let r = app
        .client
        .post(format!("{}/sandbox/v1/payments/{}/paid", app.base, p.id))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "missing_header");
    // Unknown payment, another merchant's payment, unknown action.
    let (status, v) = sandbox_call(&app, &m, "pay_doesnotexist", "paid", "").await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (404, Some("payment_not_found"))
    );
    let (status, v) = sandbox_call(&app, &other, &p.id, "paid", "").await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (404, Some("payment_not_found"))
    );
    let (status, v) = sandbox_call(&app, &m, &p.id, "refund", "").await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (404, Some("unknown_action"))
    );
    let (status, v) = sandbox_call(&app, &m, &p.id, "paid", "?paid_at=soon").await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (400, Some("invalid_paid_at"))
    );
    // Impossible from awaiting_payment; and expiring a number that is not yet due is allowed
    // only through the sandbox (below), never by the expiry job.
    let (status, v) = sandbox_call(&app, &m, &p.id, "confirm", "").await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (409, Some("forbidden_transition"))
    );
    // Live merchants have no sandbox: their requests find no payment.
    let live = app.merchant_with(|n| n.mode = Mode::Live).await;
    let (status, v) = sandbox_call(&app, &live, &p.id, "paid", "").await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (404, Some("payment_not_found"))
    );
    // Nothing changed.
    let p2 = payments::get(&app.db, &p.id).await.unwrap().unwrap();
    assert_eq!(p2.status.code(), "awaiting_payment");
    assert_eq!(payments::events(&app.db, &p.id).await.unwrap().len(), 2);
    // The sandbox expire works before the deadline, as if it had passed.
    let (status, v) = sandbox_call(&app, &m, &p.id, "expire", "").await;
    assert_eq!(
        (status, v["payment"]["status"].as_str()),
        (200, Some("expired"))
    );
}
both!(sandbox_endpoint_refusals);

async fn expiry_job_expires_overdue_numbers_and_a_later_payment_is_late(app: TestApp) {
    let rx = Receiver::start().await;
    let m = app
        .merchant_with(|n| n.callback_url = Some(rx.url.clone()))
        .await;
    let f = app.fields(&m, "k-ex", 1000, &[]);
    let (path, _) = konbini_number(&app, &m, &f, UA_PC, "seven").await;
    let f2 = app.fields(&m, "k-ex2", 1000, &[]);
    konbini_number(&app, &m, &f2, UA_PC, "seven").await;
    let p = payment_of(&app, &m, "k-ex").await;
    let fresh = payment_of(&app, &m, "k-ex2").await;
    let now = kakehashi::util::now_ms();
    // Not due yet: nothing happens.
    assert_eq!(flow::expire_due(&app.db, now).await.unwrap(), 0);
    let past = now - 60_000;
    let mut tx = app.db.begin().await.unwrap();
    kakehashi::exec_tx!(&mut tx, c => sqlx::query("UPDATE payments SET deadline_at = $1 WHERE id = $2")
        .bind(past)
        .bind(&p.id)
        .execute(c)
        .await)
    .unwrap();
    tx.commit().await.unwrap();

    assert_eq!(flow::expire_due(&app.db, now).await.unwrap(), 1);
    assert_eq!(
        flow::expire_due(&app.db, now).await.unwrap(),
        0,
        "idempotent"
    );
    let expired = payments::get(&app.db, &p.id).await.unwrap().unwrap();
    assert_eq!(expired.status.code(), "expired");
    let untouched = payments::get(&app.db, &fresh.id).await.unwrap().unwrap();
    assert_eq!(untouched.status.code(), "awaiting_payment");
    let hits = rx
        .wait_for("expiry notice", |h| {
            types(h).iter().any(|t| t == "payment.expired")
        })
        .await;
    let exp = hits
        .iter()
        .find(|h| h.json()["type"] == "payment.expired")
        .unwrap()
        .json();
    assert_eq!(exp["data"]["payment_id"], p.id.as_str());
    let (_, shown) = page(&app, &path, UA_PC).await;
    assert!(shown.contains("お支払期限を過ぎた"));
    assert!(
        !shown.contains("id=\"num-receipt_no\""),
        "number hidden once expired"
    );

    // The shopper paid anyway (paid-at after the deadline): late_paid, for the merchant to decide.
    let (status, v) = sandbox_call(&app, &m, &p.id, "paid", "").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["payment"]["status"], "late_paid");
    rx.wait_for("late notice", |h| {
        types(h).iter().any(|t| t == "konbini.late_paid")
    })
    .await;
    let (_, shown) = page(&app, &path, UA_PC).await;
    assert!(shown.contains("お支払期限後のお支払い"));
}
both!(expiry_job_expires_overdue_numbers_and_a_later_payment_is_late);

async fn on_time_paid_at_after_expiry_is_paid(app: TestApp) {
    let m = app.merchant().await;
    let f = app.fields(&m, "k-ot", 1000, &[]);
    konbini_number(&app, &m, &f, UA_PC, "lawson").await;
    let p = payment_of(&app, &m, "k-ot").await;
    let (status, _) = sandbox_call(&app, &m, &p.id, "expire", "").await;
    assert_eq!(status, 200);
    // Paid at the store before the deadline, notice after the expiry: paid, not late.
    let paid_at = p.created_at / 1000 + 10;
    let (status, v) = sandbox_call(&app, &m, &p.id, "paid", &format!("?paid_at={paid_at}")).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["payment"]["status"], "paid");
}
both!(on_time_paid_at_after_expiry_is_paid);

async fn payeasy_happy_path(app: TestApp) {
    let rx = Receiver::start().await;
    let m = app
        .merchant_with(|n| n.callback_url = Some(rx.url.clone()))
        .await;
    let f = app.fields(&m, "pe-1", 120_000, &[]);
    let path = choose_method(&app, &m, &f, UA_PC, "payeasy").await;
    let (status, start) = page(&app, &path, UA_PC).await;
    assert_eq!(status, 200);
    assert!(start.contains("お支払番号を発行する"));
    assert_eq!(app.count("payments").await, 0, "GET issues nothing");
    let csrf = hidden(&start, "csrf");
    let r = app.post_form(&path, UA_PC, &[("csrf", &csrf)]).await;
    assert_eq!(r.status().as_u16(), 303);
    let (_, body) = page(&app, &path, UA_PC).await;
    assert!(body.contains("収納機関番号"));
    assert_eq!(num(&body, "institution_no"), "99999");
    assert!(digits(&num(&body, "customer_no"), 20));
    assert!(digits(&num(&body, "confirm_no"), 6));
    assert!(body.contains(") 23:59<"), "deadline with the weekday");
    assert!(body.contains("10万円を超える"), "ATM cash limit explained");
    let p = payment_of(&app, &m, "pe-1").await;
    assert_eq!((p.method.code(), p.fee), ("payeasy", 0));
    // Re-posting shows the same numbers.
    let r = app.post_form(&path, UA_PC, &[("csrf", &csrf)]).await;
    assert_eq!(r.status().as_u16(), 303);
    assert_eq!(app.count("payments").await, 1);
    let (status, v) = sandbox_call(&app, &m, &p.id, "paid", "").await;
    assert_eq!(
        (status, v["payment"]["status"].as_str()),
        (200, Some("paid"))
    );
    let (status, _) = sandbox_call(&app, &m, &p.id, "confirm", "").await;
    assert_eq!(status, 200);
    let hits = wait_types(
        &rx,
        &["payeasy.issued", "payeasy.paid", "payeasy.confirmed"],
    )
    .await;
    assert_eq!(hits[0].json()["data"]["payeasy"]["institution_no"], "99999");
    assert_eq!(checkout_status(&app, &m, "pe-1").await, "paid");

    // On a feature phone too.
    let f = app.fields(&m, "pe-fp", 5000, &[]);
    let path = choose_method(&app, &m, &f, UA_SOFTBANK, "payeasy").await;
    let (_, start) = page(&app, &path, UA_SOFTBANK).await;
    let csrf = hidden(&start, "csrf");
    let r = app.post_form(&path, UA_SOFTBANK, &[("csrf", &csrf)]).await;
    assert_eq!(r.status().as_u16(), 303);
    let (_, body) = page(&app, &path, UA_SOFTBANK).await;
    assert_eq!(fp_num(&body, "収納機関番号"), "99999");
    assert!(digits(&fp_num(&body, "お客様番号"), 20));
}
both!(payeasy_happy_path);

/// Issue 16 items 11 and 5: the 20-digit お客様番号 is shown in groups of four that never wrap
/// inside (and copy as one number), the deadline has its weekday and does not wrap either.
async fn payeasy_number_is_grouped_and_the_deadline_has_its_weekday(app: TestApp) {
    let m = app.merchant().await;
    for (lang, ua) in [("ja", UA_PC), ("en", UA_IPHONE)] {
        let f = app.fields(&m, &format!("pe-g-{lang}"), 5000, &[("lang", lang)]);
        let path = choose_method(&app, &m, &f, ua, "payeasy").await;
        let (_, start) = page(&app, &path, ua).await;
        let csrf = hidden(&start, "csrf");
        app.post_form(&path, ua, &[("csrf", &csrf)]).await;
        let (_, body) = page(&app, &path, ua).await;
        let customer = num(&body, "customer_no");
        assert!(digits(&customer, 20), "{customer}");
        let grouped: String = customer
            .as_bytes()
            .chunks(4)
            .map(|c| {
                format!(
                    "<span class=\"grp\">{}</span>",
                    std::str::from_utf8(c).unwrap()
                )
            })
            .collect();
        assert!(
            body.contains(&format!(
                "<span class=\"num\" id=\"num-customer_no\">{grouped}</span>"
            )),
            "{body}"
        );
        let p = payment_of(&app, &m, &format!("pe-g-{lang}")).await;
        let want = kakehashi::pages::shopper_deadline(p.deadline_at.unwrap(), lang == "en");
        assert!(
            body.contains(&format!(
                "<span class=\"nowrap\" id=\"deadline\">{want}</span>"
            )),
            "{want}: {body}"
        );
        let weekday = if lang == "en" {
            "Mon|Tue|Wed|Thu|Fri|Sat|Sun"
        } else {
            "月|火|水|木|金|土|日"
        };
        assert!(
            weekday.split('|').any(|d| want.contains(&if lang == "en" {
                format!("{d} ")
            } else {
                format!("({d})")
            })),
            "{want}"
        );
    }
    let css = app
        .get(app.state.app_css.as_ref(), UA_PC)
        .await
        .text()
        .await
        .unwrap();
    assert!(
        css.contains(&kakehashi::assets::compact_css(
            ".num, .nowrap { white-space: nowrap; }"
        )),
        "no wrapping inside"
    );
}
both!(payeasy_number_is_grouped_and_the_deadline_has_its_weekday);

async fn payeasy_is_not_offered_above_its_limit(app: TestApp) {
    let m = app.merchant().await;
    let f = app.fields(&m, "pe-big", 1_000_000, &[]);
    let (status, body) = app.open(&m, &f, UA_PC).await;
    assert_eq!(status, 200);
    assert!(!body.contains("value=\"payeasy\""));
    let token_path = action(&body).trim_end_matches("/method").to_owned();
    let r = app.get(&format!("{token_path}/payeasy"), UA_PC).await;
    assert_eq!(r.status().as_u16(), 400);
}
both!(payeasy_is_not_offered_above_its_limit);

async fn bad_csrf_and_live_merchants_issue_nothing(app: TestApp) {
    let m = app.merchant().await;
    let f = app.fields(&m, "k-cs", 1000, &[]);
    let path = choose_method(&app, &m, &f, UA_PC, "konbini").await;
    let r = app
        .post_form(&path, UA_PC, &[("csrf", "forged"), ("chain", "seven")])
        .await;
    assert_eq!(r.status().as_u16(), 403);
    assert_eq!(error_code(&r.text().await.unwrap()), "bad_csrf");
    // A live merchant without a live connector: konbini is not even offered, so no (sandbox)
    // number can be handed out.
    let live = app.merchant_with(|n| n.mode = Mode::Live).await;
    let f = app.fields(&live, "k-live", 1000, &[]);
    let r = app.get(&app.link(&live, &f), UA_PC).await;
    assert_eq!(r.status().as_u16(), 400);
    assert_eq!(error_code(&r.text().await.unwrap()), "methods_unavailable");
    assert_eq!(app.count("payments").await, 0);
}
both!(bad_csrf_and_live_merchants_issue_nothing);

async fn cli_sandbox_controls(app: TestApp) {
    let m = app.merchant().await;
    let f = app.fields(&m, "k-cli", 1000, &[]);
    konbini_number(&app, &m, &f, UA_PC, "seven").await;
    let p = payment_of(&app, &m, "k-cli").await;
    use kakehashi::cli::{sandbox, SandboxCmd};
    sandbox(
        &app.db,
        SandboxCmd::Pay {
            payment_id: p.id.clone(),
            paid_at: None,
        },
    )
    .await
    .unwrap();
    sandbox(
        &app.db,
        SandboxCmd::Reverse {
            payment_id: p.id.clone(),
        },
    )
    .await
    .unwrap();
    let err = sandbox(
        &app.db,
        SandboxCmd::Confirm {
            payment_id: p.id.clone(),
        },
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("not allowed"), "{err}");
    let p = payments::get(&app.db, &p.id).await.unwrap().unwrap();
    assert_eq!(p.status.code(), "reversed");
}
both!(cli_sandbox_controls);

/// Sandbox auto-pay needs the background sweep, so these apps run it every 100 ms.
async fn autopay(app: TestApp) {
    let rx = Receiver::start().await;
    let m = app
        .merchant_with(|n| n.callback_url = Some(rx.url.clone()))
        .await;
    let off = app.merchant().await;
    flow::set_autopay_seconds(&app.db, &m.id, Some(0))
        .await
        .unwrap();
    let f = app.fields(&m, "k-ap", 1000, &[]);
    konbini_number(&app, &m, &f, UA_PC, "seven").await;
    let f2 = app.fields(&off, "k-ap-off", 1000, &[]);
    konbini_number(&app, &off, &f2, UA_PC, "seven").await;
    let p = payment_of(&app, &m, "k-ap").await;
    let status = eventually("auto-paid", || async {
        let s = payments::get(&app.db, &p.id).await.unwrap().unwrap().status;
        (s.code() != "awaiting_payment").then_some(s)
    })
    .await;
    assert_eq!(status.code(), "paid");
    wait_types(&rx, &["konbini.issued", "konbini.paid"]).await;
    let untouched = payment_of(&app, &off, "k-ap-off").await;
    assert_eq!(
        untouched.status.code(),
        "awaiting_payment",
        "auto-pay is per merchant"
    );
}

mod autopay_runs_in_the_sweep {
    async fn spawn(backend: crate::helpers::Backend) -> Option<crate::helpers::TestApp> {
        crate::helpers::spawn_app_with(backend, |c| c.sweep_interval_ms = 100).await
    }
    #[tokio::test]
    async fn sqlite() {
        super::autopay(spawn(crate::helpers::Backend::Sqlite).await.unwrap()).await;
    }
    #[tokio::test]
    async fn postgres() {
        if let Some(app) = spawn(crate::helpers::Backend::Postgres).await {
            super::autopay(app).await;
        }
    }
}

/// Runs docs/examples/sandbox.sh; `None` when bash, curl or openssl is missing here and the run
/// set `KAKEHASHI_SKIP_EXAMPLES=1`.
async fn run_sandbox_script(app: &TestApp, m: &TestMerchant, args: &[&str]) -> Option<Value> {
    for (program, arg) in [
        ("bash", "--version"),
        ("curl", "--version"),
        ("openssl", "version"),
    ] {
        let found = tokio::process::Command::new(program)
            .arg(arg)
            .output()
            .await
            .is_ok_and(|o| o.status.success());
        if !found {
            example_program_missing("sandbox.sh", program);
            return None;
        }
    }
    // Async: the script calls this test's server, which runs on the same runtime.
    let out = tokio::process::Command::new("bash")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/docs/examples/sandbox.sh"
        ))
        .args(args)
        .env("BASE_URL", &app.base)
        .env("MERCHANT_ID", &m.id)
        .env("KEY_ID", &m.key_id)
        .env("SECRET", &m.secret)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "sandbox.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(serde_json::from_slice(&out.stdout).unwrap())
}

async fn documented_shell_example_drives_the_sandbox(app: TestApp) {
    let m = app.merchant().await;
    let f = app.fields(&m, "k-sh", 1000, &[]);
    konbini_number(&app, &m, &f, UA_PC, "famima").await;
    let p = payment_of(&app, &m, "k-sh").await;
    let paid_at = (p.created_at / 1000 + 5).to_string();
    let Some(v) = run_sandbox_script(&app, &m, &["paid", &p.id, &paid_at]).await else {
        return;
    };
    assert_eq!(v["payment"]["status"], "paid", "{v}");
    assert_eq!(
        v["payment"]["paid_at"],
        kakehashi::util::rfc3339_jst((p.created_at / 1000 + 5) * 1000).as_str()
    );
    let v = run_sandbox_script(&app, &m, &["confirm", &p.id])
        .await
        .unwrap();
    assert_eq!(v["payment"]["status"], "confirmed", "{v}");
    let v = run_sandbox_script(&app, &m, &["reverse", &p.id])
        .await
        .unwrap();
    assert_eq!(v["error"]["code"], "forbidden_transition", "{v}");
}
both!(documented_shell_example_drives_the_sandbox);

/// The `id="payment-id"` on a PC / smartphone number page.
fn payment_id_on(body: &str) -> String {
    body.split("id=\"payment-id\">")
        .nth(1)
        .expect("payment id shown")
        .split('<')
        .next()
        .unwrap()
        .to_owned()
}

/// Issue 16 item 4: the chain choice has a confirm step with 戻る, and until it is paid the
/// number can be withdrawn (cancelled, `payment.cancelled`) to pay at another store or by
/// another method; a paid number cannot.
async fn a_chain_choice_can_be_undone_until_paid(app: TestApp) {
    let rx = Receiver::start().await;
    let m = app
        .merchant_with(|n| n.callback_url = Some(rx.url.clone()))
        .await;
    let f = app.fields(&m, "k-undo", 2500, &[]);
    let path = choose_method(&app, &m, &f, UA_PC, "konbini").await;
    let (_, chooser) = page(&app, &path, UA_PC).await;
    let csrf = hidden(&chooser, "csrf");
    // Choosing a chain issues nothing yet: the confirm step says what will happen, with 戻る.
    let r = app
        .post_form(&path, UA_PC, &[("csrf", &csrf), ("chain", "seven")])
        .await;
    assert_eq!(r.status().as_u16(), 200);
    let (_, confirm) = decode(r, UA_PC).await;
    assert!(confirm.contains("セブン-イレブンでお支払い: 番号を発行します"));
    assert!(confirm.contains(">発行する<") && confirm.contains(">戻る<"));
    assert!(confirm.contains(&format!("id=\"back-to-chains\" href=\"{path}\"")));
    assert_eq!(app.count("payments").await, 0);
    // 戻る: the chain list again, still nothing issued.
    let (status, back) = page(&app, &path, UA_PC).await;
    assert_eq!(status, 200);
    assert!(back.contains("value=\"lawson\""));

    // The session token of this second opening of the link, which the number page's CSRF
    // token belongs to: the first one differs when a second began in between (a flaky 403).
    let (path, number) = konbini_number(&app, &m, &f, UA_PC, "seven").await;
    let first = payment_id_on(&number);
    assert!(number.contains("id=\"change-number\""), "{number}");
    let change = format!("{}/number/change", path.trim_end_matches("/konbini"));
    let r = app
        .post_form(&change, UA_PC, &[("csrf", &hidden(&number, "csrf"))])
        .await;
    assert_eq!(r.status().as_u16(), 303);
    assert_eq!(location(&r), path.trim_end_matches("/konbini"));
    let old = payments::get(&app.db, &first).await.unwrap().unwrap();
    assert_eq!(old.status.code(), "cancelled");
    assert_eq!(checkout_status(&app, &m, "k-undo").await, "open");
    let events = payments::events(&app.db, &first).await.unwrap();
    let last = events.last().unwrap();
    assert_eq!(
        (
            last.kind.as_str(),
            last.from_status.as_deref(),
            last.actor.as_str()
        ),
        ("payment.cancelled", Some("awaiting_payment"), "shopper")
    );
    let hits = wait_types(&rx, &["konbini.issued", "payment.cancelled"]).await;
    assert_eq!(hits[1].json()["data"]["payment_id"], first.as_str());
    // The selector is back, with every method; another chain gets a new number.
    let (status, selector) = page(&app, path.trim_end_matches("/konbini"), UA_PC).await;
    assert_eq!(status, 200);
    assert!(selector.contains("value=\"card\"") && selector.contains("value=\"konbini\""));
    let r = post_chain(&app, &path, UA_PC, "lawson").await;
    assert_eq!(r.status().as_u16(), 303);
    let (_, lawson) = page(&app, &path, UA_PC).await;
    let second = payment_id_on(&lawson);
    assert_ne!(second, first);
    assert!(lawson.contains("ローソンでのお支払い"));
    // The old number is a sandbox control target no more.
    let (status, _) = sandbox_call(&app, &m, &first, "paid", "").await;
    assert_eq!(status, 409);

    // Once paid, the number cannot be changed: no form, and a stale post is refused.
    let (status, _) = sandbox_call(&app, &m, &second, "paid", "").await;
    assert_eq!(status, 200);
    let (_, paid) = page(&app, &path, UA_PC).await;
    assert!(!paid.contains("id=\"change-number\""));
    let r = app
        .post_form(&change, UA_PC, &[("csrf", &hidden(&number, "csrf"))])
        .await;
    assert_eq!(r.status().as_u16(), 200);
    let (_, refused) = decode(r, UA_PC).await;
    assert!(
        refused.contains("このお支払番号は変更できません"),
        "{refused}"
    );
    let kept = payments::get(&app.db, &second).await.unwrap().unwrap();
    assert_eq!(kept.status.code(), "paid");
    assert_eq!(checkout_status(&app, &m, "k-undo").await, "paid");
}
both!(a_chain_choice_can_be_undone_until_paid);

/// The number page offers copy and print buttons from our own script (hidden without it), and
/// a feature phone can change the chain too (accesskey 9).
async fn number_page_copy_print_and_feature_phone_change(app: TestApp) {
    let m = app.merchant().await;
    let f = app.fields(&m, "k-copy", 1200, &[]);
    let (_, body) = konbini_number(&app, &m, &f, UA_PC, "lawson").await;
    let customer = num(&body, "customer_no");
    assert!(body.contains(&format!("data-copy=\"{customer}\"")));
    assert!(body.contains("id=\"print\""));
    let script = body
        .split("<script src=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("our script")
        .to_owned();
    assert!(script.starts_with("/assets/") && script.ends_with("/number.js"));
    let r = app.get(&script, UA_PC).await;
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.text().await.unwrap().contains("navigator.clipboard"));
    // Without the script the buttons stay hidden: the page is complete without it.
    assert!(body.contains("hidden>コピー<span class=\"sr-only\">（お客様番号）</span></button>"));
    // The chain's badge is our inline SVG.
    assert!(body.contains("<svg class=\"badge\""));
    // Page weight: HTML, stylesheets and script under 15 KB.
    let mut weight = body.len();
    for part in body.split("<link rel=\"stylesheet\" href=\"").skip(1) {
        let href = part.split('"').next().unwrap();
        weight += app.get(href, UA_PC).await.bytes().await.unwrap().len();
    }
    weight += app.get(&script, UA_PC).await.bytes().await.unwrap().len();
    assert!(weight < 15 * 1024, "number page weighs {weight} bytes");

    let f = app.fields(&m, "k-fpchg", 1200, &[]);
    let path = choose_method(&app, &m, &f, UA_DOCOMO, "konbini").await;
    let r = post_chain(&app, &path, UA_DOCOMO, "famima").await;
    assert_eq!(r.status().as_u16(), 303);
    let (_, fp) = page(&app, &path, UA_DOCOMO).await;
    assert!(fp.contains("accesskey=\"9\""), "{fp}");
    let r = app
        .post_form(
            &format!("{}/number/change", path.trim_end_matches("/konbini")),
            UA_DOCOMO,
            &[("csrf", &hidden(&fp, "csrf"))],
        )
        .await;
    assert_eq!(r.status().as_u16(), 303);
    assert_eq!(checkout_status(&app, &m, "k-fpchg").await, "open");
}
both!(number_page_copy_print_and_feature_phone_change);
