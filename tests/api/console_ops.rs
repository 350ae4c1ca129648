//! Payments operations in the console (issue 19): multi-method search, bulk actions on every
//! payment a search matches (with count and total confirmed), saved searches, and payment links
//! (決済新規登録) — roles, CSRF, merchant scoping and the audit log.

use kakehashi::console::Role;
use kakehashi::db::payments;

use crate::console::{payment, user, Console};
use crate::helpers::*;

fn ids(page: &str) -> Vec<String> {
    page.split("class=\"pid\" href=\"/console/payments/")
        .skip(1)
        .map(|s| s.split('"').next().unwrap().to_owned())
        .collect()
}

async fn status(app: &TestApp, id: &str) -> String {
    payments::get(&app.db, id)
        .await
        .unwrap()
        .unwrap()
        .status
        .code()
        .to_owned()
}

async fn audit_count(app: &TestApp, action: &str) -> i64 {
    kakehashi::on_db!(&app.db, c => sqlx::query_scalar(
        "SELECT COUNT(*) FROM console_audit WHERE action = $1").bind(action).fetch_one(c).await)
    .unwrap()
}

async fn methods_filter_and_bulk_on_the_search(app: TestApp) {
    let m = app.merchant().await;
    let other = app.merchant().await;
    let mut cards = Vec::new();
    for (i, amount) in [1000, 2000, 3000].into_iter().enumerate() {
        cards.push(payment(&app, &m, &format!("c-{i}"), "card", "authorized", amount).await);
    }
    for i in 0..2 {
        payment(
            &app,
            &m,
            &format!("k-{i}"),
            "konbini",
            "awaiting_payment",
            500,
        )
        .await;
    }
    let foreign = payment(&app, &other, "c-x", "card", "authorized", 7000).await;
    let admin = user(&app, Some(&m.id), Role::Admin).await;
    let c = Console::login(&app, &admin).await;

    // Several methods at once; one method; a bad one is a sentence, not a 500.
    let (s, page) = c.get("/console/payments?method=card&method=konbini").await;
    assert_eq!(s, 200);
    assert_eq!(ids(&page).len(), 5);
    assert!(page.contains("value=\"card\" checked") && page.contains("value=\"konbini\" checked"));
    let (_, page) = c.get("/console/payments?method=konbini").await;
    assert_eq!(ids(&page).len(), 2);
    let (s, page) = c.get("/console/payments?method=card&method=nope").await;
    assert_eq!(s, 200);
    assert!(page.contains("id=\"search-error\""));
    // The list's bulk form carries the search, so "all matching" means this search.
    let (_, page) = c.get("/console/payments?method=card").await;
    assert!(page.contains("name=\"all\" value=\"search\""));
    assert!(page.contains("<input type=\"hidden\" name=\"method\" value=\"card\">"));

    // Capture everything matching method=card: the confirmation counts and totals, changes nothing.
    let csrf = c.csrf().await;
    let bulk = |extra: Vec<(&'static str, String)>| {
        let mut f = vec![
            ("csrf", csrf.clone()),
            ("op", "capture".to_owned()),
            ("all", "search".to_owned()),
            ("method", "card".to_owned()),
        ];
        f.extend(extra);
        f
    };
    let post = |f: Vec<(&'static str, String)>| {
        let c = &c;
        async move {
            let pairs: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let r = c.post("/console/payments/bulk", &pairs).await;
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let (s, page) = post(bulk(vec![])).await;
    assert_eq!(s, 200, "{page}");
    assert!(page.contains("3件") && page.contains("6,000円"), "{page}");
    assert_eq!(hidden(&page, "expect"), "3:6000");
    for p in &cards {
        assert_eq!(status(&app, &p.id).await, "authorized");
    }
    // A payment added since the confirmation: asked again, with the new numbers, nothing done.
    let late = payment(&app, &m, "c-late", "card", "authorized", 4000).await;
    let (s, page) = post(bulk(vec![
        ("confirm", "yes".into()),
        ("expect", "3:6000".into()),
    ]))
    .await;
    assert_eq!(s, 200);
    assert!(
        page.contains("確認画面を表示した後") && page.contains("4件") && page.contains("10,000円")
    );
    assert_eq!(status(&app, &late.id).await, "authorized");
    let expect = hidden(&page, "expect");
    let (s, page) = post(bulk(vec![("confirm", "yes".into()), ("expect", expect)])).await;
    assert_eq!(s, 200);
    assert!(page.contains("完了: 4件"), "{page}");
    for p in cards.iter().chain([&late]) {
        assert_eq!(status(&app, &p.id).await, "captured");
    }
    // Other merchants' payments are outside the admin's search, whatever it says.
    assert_eq!(status(&app, &foreign.id).await, "authorized");
    assert_eq!(audit_count(&app, "payment.bulk_capture").await, 4);
    assert_eq!(audit_count(&app, "bulk.search").await, 1);
    // Nothing matches any more: a sentence, nothing done.
    let (s, _) = post(vec![
        ("csrf", csrf.clone()),
        ("op", "capture".into()),
        ("all", "search".into()),
        ("status", "authorized".into()),
        ("method", "card".into()),
    ])
    .await;
    assert_eq!(s, 400);
    // Ticked payments: the confirmation also counts and totals them (only the visible ones).
    let t1 = payment(&app, &m, "t-1", "card", "authorized", 1200).await;
    let (s, page) = post(vec![
        ("csrf", csrf.clone()),
        ("op", "cancel".into()),
        ("ids", t1.id.clone()),
        ("ids", foreign.id.clone()),
    ])
    .await;
    assert_eq!(s, 200);
    assert!(
        page.contains("選択した決済 1件") && page.contains("1,200円"),
        "{page}"
    );
    // A general user may not; a post without the token changes nothing.
    let general = user(&app, Some(&m.id), Role::General).await;
    let g = Console::login(&app, &general).await;
    let gcsrf = g.csrf().await;
    let r = g
        .post(
            "/console/payments/bulk",
            &[
                ("csrf", &gcsrf),
                ("op", "cancel"),
                ("all", "search"),
                ("confirm", "yes"),
            ],
        )
        .await;
    assert_eq!(r.status(), 403);
    let r = c
        .post(
            "/console/payments/bulk",
            &[("op", "cancel"), ("all", "search"), ("confirm", "yes")],
        )
        .await;
    assert_eq!(r.status(), 403);
    assert_eq!(status(&app, &t1.id).await, "authorized");
}
both!(methods_filter_and_bulk_on_the_search);

async fn saved_searches_per_user(app: TestApp) {
    let m = app.merchant().await;
    payment(&app, &m, "s-1", "card", "authorized", 1000).await;
    payment(&app, &m, "s-2", "konbini", "awaiting_payment", 2000).await;
    let general = user(&app, Some(&m.id), Role::General).await;
    let g = Console::login(&app, &general).await;
    let csrf = g.csrf().await;
    // Saving the search (any role): back on the list with the search applied.
    let r = g
        .post(
            "/console/searches",
            &[
                ("csrf", &csrf),
                ("name", "カードの仮売上"),
                ("method", "card"),
                ("status", "authorized"),
                ("sort", "amount"),
                ("dir", "asc"),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);
    let to = location(&r);
    assert!(to.contains("method=card") && to.contains("saved=1"), "{to}");
    let (_, page) = g.get("/console/payments").await;
    assert!(page.contains("カードの仮売上"));
    let href = page
        .split("<ul class=\"saved-searches\"><li><a href=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .replace("&amp;", "&")
        .replace("&#38;", "&");
    let (_, found) = g.get(&href).await;
    assert_eq!(ids(&found).len(), 1);
    let id = kakehashi::db::saved_searches::list(&app.db, &general.id)
        .await
        .unwrap()
        .remove(0)
        .id;
    // The same name again replaces it; an empty name or a missing token saves nothing.
    let r = g
        .post(
            "/console/searches",
            &[
                ("csrf", &csrf),
                ("name", "カードの仮売上"),
                ("method", "konbini"),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);
    let mine = kakehashi::db::saved_searches::list(&app.db, &general.id)
        .await
        .unwrap();
    assert_eq!(mine.len(), 1);
    assert!(mine[0].query.contains("method=konbini"));
    let r = g
        .post("/console/searches", &[("csrf", &csrf), ("name", " ")])
        .await;
    assert_eq!(r.status(), 400);
    let r = g
        .post("/console/searches", &[("name", "x"), ("method", "card")])
        .await;
    assert_eq!(r.status(), 403);
    // Another user (even an admin of the same merchant) neither sees nor deletes it.
    let admin = user(&app, Some(&m.id), Role::Admin).await;
    let a = Console::login(&app, &admin).await;
    let (_, page) = a.get("/console/payments").await;
    assert!(!page.contains("カードの仮売上"));
    let acsrf = a.csrf().await;
    let r = a
        .post(
            &format!("/console/searches/{id}/delete"),
            &[("csrf", &acsrf)],
        )
        .await;
    assert_eq!(r.status(), 404);
    assert_eq!(
        kakehashi::db::saved_searches::list(&app.db, &general.id)
            .await
            .unwrap()
            .len(),
        1
    );
    let r = g
        .post(
            &format!("/console/searches/{id}/delete"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(r.status(), 303);
    assert!(kakehashi::db::saved_searches::list(&app.db, &general.id)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(audit_count(&app, "search.save").await, 3);
    assert_eq!(audit_count(&app, "search.delete").await, 2);
}
both!(saved_searches_per_user);

fn created_url(page: &str) -> String {
    page.split("id=\"checkout-url\" class=\"mono\" readonly value=\"")
        .nth(1)
        .unwrap_or_else(|| panic!("no link in {page}"))
        .split('"')
        .next()
        .unwrap()
        .replace("&amp;", "&")
        .replace("&#38;", "&")
}

async fn payment_link_from_the_console(app: TestApp) {
    let m = app.merchant().await;
    let admin = user(&app, Some(&m.id), Role::Admin).await;
    let c = Console::login(&app, &admin).await;
    let (s, page) = c.get("/console/checkouts/new").await;
    assert_eq!(s, 200);
    let csrf = hidden(&page, "csrf");
    assert!(page.contains("name=\"methods\" value=\"card\""));
    let r = c
        .post(
            "/console/checkouts",
            &[
                ("csrf", &csrf),
                ("order_id", "link-1"),
                ("amount", "1,500"),
                ("item_name", "抹茶ラテ"),
                ("methods", "card"),
                ("days", "3"),
            ],
        )
        .await;
    assert_eq!(r.status(), 200);
    let page = r.text().await.unwrap();
    let url = created_url(&page);
    assert!(url.starts_with(&format!("{}/checkout?", app.base)), "{url}");
    // The link is a real, signed checkout link for the order, offering the chosen method.
    let co = kakehashi::db::checkouts::find_by_order(&app.db, &m.id, "link-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(co.amount, 1500);
    let shopper = app.get(&url, UA_PC).await;
    assert_eq!(shopper.status(), 200);
    let body = shopper.text().await.unwrap();
    assert!(body.contains("抹茶ラテ"), "{body}");
    // The same order id with other content is refused with a sentence; the form keeps the input.
    let r = c
        .post(
            "/console/checkouts",
            &[
                ("csrf", &csrf),
                ("order_id", "link-1"),
                ("amount", "9999"),
                ("item_name", "抹茶ラテ"),
            ],
        )
        .await;
    assert_eq!(r.status(), 422);
    let page = r.text().await.unwrap();
    assert!(
        page.contains("id=\"form-error\"") && page.contains("value=\"9999\""),
        "{page}"
    );
    for (amount, days) in [("abc", ""), ("100", "31")] {
        let r = c
            .post(
                "/console/checkouts",
                &[
                    ("csrf", &csrf),
                    ("order_id", "link-2"),
                    ("amount", amount),
                    ("item_name", "x"),
                    ("days", days),
                ],
            )
            .await;
        assert_eq!(r.status(), 422);
    }
    assert!(
        kakehashi::db::checkouts::find_by_order(&app.db, &m.id, "link-2")
            .await
            .unwrap()
            .is_none()
    );
    // Without the token, or as a general user: refused, nothing created.
    let r = c
        .post(
            "/console/checkouts",
            &[
                ("order_id", "link-3"),
                ("amount", "100"),
                ("item_name", "x"),
            ],
        )
        .await;
    assert_eq!(r.status(), 403);
    let general = user(&app, Some(&m.id), Role::General).await;
    let g = Console::login(&app, &general).await;
    assert_eq!(g.get("/console/checkouts/new").await.0, 403);
    let gcsrf = g.csrf().await;
    let r = g
        .post(
            "/console/checkouts",
            &[
                ("csrf", &gcsrf),
                ("order_id", "link-3"),
                ("amount", "100"),
                ("item_name", "x"),
            ],
        )
        .await;
    assert_eq!(r.status(), 403);
    assert!(
        kakehashi::db::checkouts::find_by_order(&app.db, &m.id, "link-3")
            .await
            .unwrap()
            .is_none()
    );
    // An operator names the merchant; the link is that merchant's.
    let op = user(&app, None, Role::Operator).await;
    let o = Console::login(&app, &op).await;
    let (s, page) = o
        .get(&format!("/console/checkouts/new?merchant={}", m.id))
        .await;
    assert_eq!(s, 200);
    let ocsrf = hidden(&page, "csrf");
    let r = o
        .post(
            "/console/checkouts",
            &[
                ("csrf", &ocsrf),
                ("merchant", &m.id),
                ("order_id", "link-op"),
                ("amount", "800"),
                ("item_name", "x"),
            ],
        )
        .await;
    assert_eq!(r.status(), 200);
    assert!(
        kakehashi::db::checkouts::find_by_order(&app.db, &m.id, "link-op")
            .await
            .unwrap()
            .is_some()
    );
    // Done and refused attempts are audited.
    assert_eq!(audit_count(&app, "checkout.create").await, 3);
}
both!(payment_link_from_the_console);

fn refund_link(page: &str) -> String {
    page.split("class=\"mono refund-link\" readonly value=\"")
        .nth(1)
        .unwrap_or_else(|| panic!("no refund link in {page}"))
        .split('"')
        .next()
        .unwrap()
        .replace("&amp;", "&")
        .replace("&#38;", "&")
}

async fn event_kinds(app: &TestApp, payment_id: &str) -> Vec<String> {
    payments::events(&app.db, payment_id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect()
}

async fn request_status(app: &TestApp, payment_id: &str) -> Vec<String> {
    kakehashi::db::refund_requests::of_payment(&app.db, payment_id)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.status)
        .collect()
}

async fn refund_request_end_to_end(app: TestApp) {
    let m = app.merchant().await;
    let other = app.merchant().await;
    let p = payment(&app, &m, "r-1", "konbini", "paid", 5000).await;
    let card = payment(&app, &m, "r-card", "card", "authorized", 5000).await;
    let admin = user(&app, Some(&m.id), Role::Admin).await;
    let c = Console::login(&app, &admin).await;
    let csrf = c.csrf().await;
    let path = format!("/console/payments/{}/refund-requests", p.id);
    let (_, page) = c.get(&format!("/console/payments/{}", p.id)).await;
    assert!(
        page.contains("返金依頼を作成") && page.contains("最大 5000円"),
        "{page}"
    );
    // The confirmation first; more than was paid is refused; a card payment is not refunded so.
    let r = c.post(&path, &[("csrf", &csrf), ("amount", "3000")]).await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("3,000円"));
    assert!(request_status(&app, &p.id).await.is_empty());
    let r = c
        .post(
            &path,
            &[("csrf", &csrf), ("amount", "6000"), ("confirm", "yes")],
        )
        .await;
    assert_eq!(r.status(), 409);
    let r = c
        .post(
            &format!("/console/payments/{}/refund-requests", card.id),
            &[("csrf", &csrf), ("amount", "100"), ("confirm", "yes")],
        )
        .await;
    assert_eq!(r.status(), 409);
    let r = c
        .post(
            &path,
            &[("csrf", &csrf), ("amount", "3000"), ("confirm", "yes")],
        )
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(request_status(&app, &p.id).await, ["requested"]);
    assert!(event_kinds(&app, &p.id)
        .await
        .contains(&"payment.refund_requested".to_owned()));
    assert_eq!(
        status(&app, &p.id).await,
        "paid",
        "the payment's status does not change"
    );
    let (_, page) = c.get(&format!("/console/payments/{}", p.id)).await;
    let link = refund_link(&page);
    assert!(link.starts_with(&format!("{}/refund/", app.base)), "{link}");
    assert!(page.contains("最大 2000円"));

    // Another merchant's admin and a general user cannot act on it.
    let rid = kakehashi::db::refund_requests::of_payment(&app.db, &p.id)
        .await
        .unwrap()
        .remove(0)
        .id;
    let outsider = user(&app, Some(&other.id), Role::Admin).await;
    let o = Console::login(&app, &outsider).await;
    let ocsrf = o.csrf().await;
    let r = o
        .post(
            &format!("/console/refund-requests/{rid}/cancel"),
            &[("csrf", &ocsrf), ("confirm", "yes")],
        )
        .await;
    assert_eq!(r.status(), 404);
    let r = o
        .post(
            &path,
            &[("csrf", &ocsrf), ("amount", "100"), ("confirm", "yes")],
        )
        .await;
    assert_eq!(r.status(), 404);
    let general = user(&app, Some(&m.id), Role::General).await;
    let g = Console::login(&app, &general).await;
    let gcsrf = g.csrf().await;
    let r = g
        .post(
            &format!("/console/refund-requests/{rid}/cancel"),
            &[("csrf", &gcsrf), ("confirm", "yes")],
        )
        .await;
    assert_eq!(r.status(), 403);
    // Not paid out before an account is known.
    let r = c
        .post(
            &format!("/console/refund-requests/{rid}/paid"),
            &[("csrf", &csrf), ("confirm", "yes")],
        )
        .await;
    assert_eq!(r.status(), 409);
    assert_eq!(request_status(&app, &p.id).await, ["requested"]);

    // The shopper's page: a wrong token is not found; PC and feature phone variants.
    let bad = format!("{link}A");
    assert_eq!(app.get(&bad, UA_PC).await.status(), 404);
    let r = app.get(&link, UA_PC).await;
    assert_eq!(r.status(), 200);
    let form = r.text().await.unwrap();
    assert!(
        form.contains("返金先口座のご登録") && form.contains("3,000円") && form.contains("r-1")
    );
    let r = app.get(&link, UA_DOCOMO).await;
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .contains("Shift_JIS"));
    let fp = r.bytes().await.unwrap();
    assert!(
        fp.len() < 10 * 1024,
        "feature phone page is {} bytes",
        fp.len()
    );
    let fp_text = encoding_rs::SHIFT_JIS.decode(&fp).0.into_owned();
    assert!(!fp_text.contains("<script") && !fp_text.contains("<style"));
    let shopper_csrf = hidden(&form, "csrf");
    let action = format!("{}{}", app.base, action(&form));
    // Wrong fields: each named, nothing stored; without the token nothing either.
    let r = app
        .post_form(
            &action,
            UA_PC,
            &[
                ("csrf", &shopper_csrf),
                ("bank_code", "12"),
                ("branch_code", "123"),
                ("account_type", "ordinary"),
                ("number", "1234567"),
                ("holder", "山田太郎"),
            ],
        )
        .await;
    assert_eq!(r.status(), 422);
    let body = r.text().await.unwrap();
    assert!(body.contains("金融機関コードは4桁") && body.contains("口座名義はカタカナ"));
    assert!(!body.contains("支店コードは3桁"));
    let good = [
        ("bank_code", "0009"),
        ("branch_code", "123"),
        ("account_type", "ordinary"),
        ("number", "1234567"),
        ("holder", "ヤマダ タロウ"),
    ];
    let r = app.post_form(&action, UA_PC, &good).await;
    assert_eq!(r.status(), 403);
    assert_eq!(request_status(&app, &p.id).await, ["requested"]);
    let mut with_csrf = vec![("csrf", shopper_csrf.as_str())];
    with_csrf.extend(good);
    let r = app.post_form(&action, UA_PC, &with_csrf).await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("id=\"refund-done\""));
    assert_eq!(request_status(&app, &p.id).await, ["account_received"]);

    // Staff see the account and mark the transfer done.
    let (_, page) = c.get(&format!("/console/payments/{}", p.id)).await;
    assert!(
        page.contains("1234567") && page.contains("ヤマダ タロウ") && page.contains("振込済にする")
    );
    let r = c
        .post(
            &format!("/console/refund-requests/{rid}/paid"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(r.status(), 200, "confirmation first");
    let r = c
        .post(
            &format!("/console/refund-requests/{rid}/paid"),
            &[("csrf", &csrf), ("confirm", "yes")],
        )
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(request_status(&app, &p.id).await, ["paid_out"]);
    // The shopper's link now says the refund is done, and takes no account any more.
    let r = app.get(&link, UA_PC).await;
    assert!(r.text().await.unwrap().contains("id=\"refund-closed\""));
    let r = app.post_form(&action, UA_PC, &with_csrf).await;
    assert_eq!(r.status(), 409);
    // A second request is withdrawn; a paid-out one cannot be.
    let r = c
        .post(
            &path,
            &[("csrf", &csrf), ("amount", "2000"), ("confirm", "yes")],
        )
        .await;
    assert_eq!(r.status(), 303);
    let second = kakehashi::db::refund_requests::of_payment(&app.db, &p.id)
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.id != rid)
        .unwrap()
        .id;
    let r = c
        .post(
            &format!("/console/refund-requests/{second}/cancel"),
            &[("csrf", &csrf), ("confirm", "yes")],
        )
        .await;
    assert_eq!(r.status(), 303);
    let r = c
        .post(
            &format!("/console/refund-requests/{rid}/cancel"),
            &[("csrf", &csrf), ("confirm", "yes")],
        )
        .await;
    assert_eq!(r.status(), 409);
    let kinds = event_kinds(&app, &p.id).await;
    for k in [
        "payment.refund_requested",
        "payment.refund_account_received",
        "payment.refund_paid",
        "payment.refund_request_cancelled",
    ] {
        assert!(kinds.contains(&k.to_owned()), "{k} in {kinds:?}");
    }
    // Each event is a notification to the merchant.
    let queued: i64 = kakehashi::on_db!(&app.db, c => sqlx::query_scalar(
        "SELECT COUNT(*) FROM outbox WHERE payment_id = $1 AND type LIKE 'payment.refund_%'")
        .bind(&p.id).fetch_one(c).await)
    .unwrap();
    assert_eq!(queued, 5);
    assert_eq!(audit_count(&app, "refund_request.create").await, 4);
    assert_eq!(audit_count(&app, "refund_request.paid").await, 2);
    assert_eq!(audit_count(&app, "refund_request.cancel").await, 2);
}
both!(refund_request_end_to_end);
