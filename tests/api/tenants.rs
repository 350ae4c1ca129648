//! Owners and tenants (テナントオプション, issue 18 item 2): owner staff see and act on every
//! tenant of their owner and nothing of another owner's tenants (list, per-tenant filter,
//! detail, CSV, actions, settings, themes, settlements page, audit); tenant staff see only
//! their merchant; an owner API key acts for its tenants named in `Kakehashi-Merchant` and
//! answers `404 merchant_not_found` for any other merchant, exactly as for an unknown one.

use kakehashi::console::Role;

use crate::console::{payment, user, Console};
use crate::helpers::*;

/// Merchants A and B under owner 1, C under owner 2.
struct Mall {
    a: TestMerchant,
    b: TestMerchant,
    c: TestMerchant,
    own1: String,
}

async fn mall(app: &TestApp) -> Mall {
    let (a, b, c) = (
        app.merchant().await,
        app.merchant().await,
        app.merchant().await,
    );
    let now = app.state.now_ms();
    let own1 = kakehashi::flows::owners::create(&app.db, "Mall One", None, now)
        .await
        .unwrap();
    let own2 = kakehashi::flows::owners::create(&app.db, "Mall Two", Some("own_two"), now)
        .await
        .unwrap();
    for (m, o) in [(&a, &own1), (&b, &own1), (&c, &own2)] {
        assert_eq!(
            kakehashi::flows::owners::attach(&app.db, &m.id, Some(o))
                .await
                .unwrap(),
            None
        );
    }
    Mall { a, b, c, own1 }
}

async fn owner_staff(app: &TestApp, owner: &str, role: Role) -> kakehashi::console::users::Created {
    let email = format!("{}@mall.example", kakehashi::util::random_id("o", 8));
    kakehashi::console::users::create_owner_staff(
        &app.db,
        &app.state.keys,
        owner,
        &email,
        role,
        app.state.now_ms(),
    )
    .await
    .unwrap()
}

async fn owner_sees_its_tenants_only(app: TestApp) {
    let mall = mall(&app).await;
    let pa = payment(&app, &mall.a, "ord-a", "card", "authorized", 1100).await;
    let pb = payment(&app, &mall.b, "ord-b", "card", "authorized", 2200).await;
    let pc = payment(&app, &mall.c, "ord-c", "card", "authorized", 3300).await;
    let u = owner_staff(&app, &mall.own1, Role::Admin).await;
    let c = Console::login(&app, &u).await;

    // Search across tenants, with a tenant column; nothing of owner 2's tenant.
    let (s, page) = c.get("/console/payments").await;
    assert_eq!(s, 200);
    assert!(page.contains(&pa.id) && page.contains(&pb.id), "{page}");
    assert!(!page.contains(&pc.id));
    assert!(page.contains("<th scope=\"col\">加盟店ID</th>"));
    assert!(page.contains("オーナー管理者"));
    // The per-tenant filter is a picker of the owner's tenants only.
    assert!(page.contains(&format!("<option value=\"{}\"", mall.b.id)));
    assert!(!page.contains(&format!("<option value=\"{}\"", mall.c.id)));
    let (_, only_b) = c
        .get(&format!("/console/payments?merchant={}", mall.b.id))
        .await;
    assert!(only_b.contains(&pb.id) && !only_b.contains(&pa.id));
    // Naming another owner's tenant finds nothing (the scope is part of the query).
    let (s, other) = c
        .get(&format!("/console/payments?merchant={}", mall.c.id))
        .await;
    assert_eq!(s, 200);
    assert!(!other.contains(&pc.id));
    let (_, by_id) = c
        .get(&format!("/console/payments?payment_id={}", pc.id))
        .await;
    assert!(!by_id.contains(&format!("/console/payments/{}", pc.id)));

    // Detail.
    assert_eq!(c.get(&format!("/console/payments/{}", pb.id)).await.0, 200);
    assert_eq!(c.get(&format!("/console/payments/{}", pc.id)).await.0, 404);

    // CSV with the tenant column.
    let r = c.get_raw("/console/payments.csv?enc=utf8").await;
    assert_eq!(r.status(), 200);
    let csv = r.text().await.unwrap();
    assert!(csv.lines().next().unwrap().contains("加盟店ID"));
    assert!(csv.contains(&format!("{},{}", pa.id, mall.a.id)));
    assert!(csv.contains(&format!("{},{}", pb.id, mall.b.id)));
    assert!(!csv.contains(&pc.id));

    // Actions: a tenant's payment is captured; another owner's tenant's is "not found" and
    // unchanged.
    let csrf = c.csrf().await;
    let act = |id: &str| format!("/console/payments/{id}/action");
    let form = [
        ("csrf", csrf.as_str()),
        ("op", "capture"),
        ("confirm", "yes"),
    ];
    assert_eq!(c.post(&act(&pa.id), &form).await.status(), 303);
    assert_eq!(app.payment_status(&pa.id).await, "captured");
    assert_eq!(c.post(&act(&pc.id), &form).await.status(), 404);
    assert_eq!(app.payment_status(&pc.id).await, "authorized");
    // Bulk on ticked ids: only the visible one counts.
    let r = c
        .post(
            "/console/payments/bulk",
            &[
                ("csrf", csrf.as_str()),
                ("op", "cancel"),
                ("ids", pb.id.as_str()),
                ("ids", pc.id.as_str()),
            ],
        )
        .await;
    assert_eq!(r.status(), 200);
    let confirm = r.text().await.unwrap();
    assert!(confirm.contains("1件"), "{confirm}");

    // Settings and themes: the owner's tenants yes, another owner's no, none named: choose.
    assert_eq!(
        c.get(&format!("/console/settings?merchant={}", mall.b.id))
            .await
            .0,
        200
    );
    assert_eq!(
        c.get(&format!("/console/settings?merchant={}", mall.c.id))
            .await
            .0,
        404
    );
    assert_eq!(c.get("/console/settings?merchant=m_nope").await.0, 404);
    assert_eq!(c.get("/console/settings").await.0, 400);
    let preview = |m: &str| format!("/console/settings/preview?merchant={m}&theme=default");
    assert_eq!(c.get(&preview(&mall.a.id)).await.0, 200);
    assert_eq!(c.get(&preview(&mall.c.id)).await.0, 404);
    let key = |m: &str| format!("/console/settings/api-keys?merchant={m}");
    assert_eq!(
        c.post(&key(&mall.b.id), &[("csrf", &csrf)]).await.status(),
        200
    );
    assert_eq!(
        c.post(&key(&mall.c.id), &[("csrf", &csrf)]).await.status(),
        404
    );
    let keys_of = |m: String| {
        let db = app.db.clone();
        async move { kakehashi::db::api_keys::list(&db, &m).await.unwrap().len() }
    };
    assert_eq!(keys_of(mall.b.id.clone()).await, 1);
    assert_eq!(keys_of(mall.c.id.clone()).await, 0);

    // The tenants page lists A and B only; the users page is not for owner staff.
    let (s, t) = c.get("/console/tenants").await;
    assert_eq!(s, 200);
    assert!(t.contains(&mall.a.id) && t.contains(&mall.b.id) && !t.contains(&mall.c.id));
    assert_eq!(c.get("/console/users").await.0, 403);
    assert_eq!(c.get("/console/owners").await.0, 403);
    // The audit log shows the tenants' records, not owner 2's.
    let (_, log) = c.get("/console/audit").await;
    assert!(log.contains(&mall.b.id));
    assert!(!log.contains(&mall.c.id));

    // Tenant staff of A: only A.
    let ta = user(&app, Some(&mall.a.id), Role::Admin).await;
    let t = Console::login(&app, &ta).await;
    let (_, list) = t.get("/console/payments").await;
    assert!(list.contains(&pa.id) && !list.contains(&pb.id) && !list.contains(&pc.id));
    let (_, named) = t
        .get(&format!("/console/payments?merchant={}", mall.b.id))
        .await;
    assert!(!named.contains(&pb.id));
    assert_eq!(t.get(&format!("/console/payments/{}", pb.id)).await.0, 404);
    assert_eq!(
        t.get(&format!("/console/settings?merchant={}", mall.b.id))
            .await
            .0,
        200,
        "merchant staff always get their own settings"
    );
    assert_eq!(t.get("/console/tenants").await.0, 403);

    // A general owner user views but does not act.
    let g = owner_staff(&app, &mall.own1, Role::General).await;
    let gc = Console::login(&app, &g).await;
    let (_, list) = gc.get("/console/payments").await;
    assert!(list.contains(&pb.id));
    let gcsrf = gc.csrf().await;
    let form = [
        ("csrf", gcsrf.as_str()),
        ("op", "cancel"),
        ("confirm", "yes"),
    ];
    assert_eq!(gc.post(&act(&pb.id), &form).await.status(), 403);
}
both!(owner_sees_its_tenants_only);

/// Settlements and repeat numbers are scoped the same way (list and detail).
async fn owner_settlements_scoped(app: TestApp) {
    let mall = mall(&app).await;
    let u = owner_staff(&app, &mall.own1, Role::General).await;
    let c = Console::login(&app, &u).await;
    let (s, page) = c.get("/console/settlements").await;
    assert_eq!(s, 200);
    // No settlement yet; the page still has the tenant filter and column.
    assert!(page.contains("加盟店ID"));
    let (s, _) = c.get("/console/summary").await;
    assert_eq!(s, 200);
    assert_eq!(
        c.get(&format!("/console/summary?merchant={}", mall.c.id))
            .await
            .0,
        404
    );
    assert_eq!(
        c.get(&format!("/console/summary?merchant={}", mall.a.id))
            .await
            .0,
        200
    );
}
both!(owner_settlements_scoped);

/// Operators create owners and attach merchants in the console; every change is audited.
async fn operators_manage_owners(app: TestApp) {
    let m = app.merchant().await;
    let op = user(&app, None, Role::Operator).await;
    let c = Console::login(&app, &op).await;
    let (s, page) = c.get("/console/owners").await;
    assert_eq!(s, 200);
    let csrf = hidden(&page, "csrf");
    let r = c
        .post(
            "/console/owners",
            &[("csrf", &csrf), ("name", "Campus"), ("id", "own_campus")],
        )
        .await;
    assert_eq!(r.status(), 303);
    // A bad id changes nothing.
    let r = c
        .post(
            "/console/owners",
            &[("csrf", &csrf), ("name", "Bad"), ("id", "no spaces")],
        )
        .await;
    assert_eq!(r.status(), 400);
    assert_eq!(app.count("owners").await, 1);
    // Without the CSRF token, nothing.
    let r = c
        .post(
            "/console/owners/attach",
            &[("merchant", &m.id), ("owner", "own_campus")],
        )
        .await;
    assert_eq!(r.status(), 403);
    let r = c
        .post(
            "/console/owners/attach",
            &[
                ("csrf", &csrf),
                ("merchant", &m.id),
                ("owner", "own_campus"),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);
    let got = kakehashi::db::merchants::get(&app.db, &m.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.owner_id.as_deref(), Some("own_campus"));
    let (_, page) = c.get("/console/owners").await;
    assert!(page.contains(&format!("<code>{}</code>", m.id)));
    let log = kakehashi::db::audit::list(&app.db, &kakehashi::domain::scope::Scope::All, None, 50)
        .await
        .unwrap();
    assert!(log
        .iter()
        .any(|e| e.action == "merchant.owner" && e.detail == "ok - -> own_campus"));
    assert!(log
        .iter()
        .any(|e| e.action == "owner.create" && e.detail.starts_with("refused")));
    // Detach.
    let r = c
        .post(
            "/console/owners/attach",
            &[("csrf", &csrf), ("merchant", &m.id), ("owner", "")],
        )
        .await;
    assert_eq!(r.status(), 303);
    let got = kakehashi::db::merchants::get(&app.db, &m.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.owner_id, None);
    // Merchant admins may not.
    let a = user(&app, Some(&m.id), Role::Admin).await;
    let ac = Console::login(&app, &a).await;
    assert_eq!(ac.get("/console/owners").await.0, 403);
}
both!(operators_manage_owners);

async fn api_as(
    app: &TestApp,
    method: &str,
    path: &str,
    key: &str,
    merchant: Option<&str>,
    body: Option<serde_json::Value>,
) -> ApiResp {
    let mut rb = app.client.request(
        reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
        format!("{}{path}", app.base),
    );
    rb = rb.header("authorization", format!("Bearer {key}"));
    if let Some(m) = merchant {
        rb = rb.header("kakehashi-merchant", m);
    }
    if let Some(b) = body {
        rb = rb
            .header("content-type", "application/json")
            .header("idempotency-key", kakehashi::util::random_id("i", 10))
            .body(b.to_string());
    }
    let r = rb.send().await.unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap();
    ApiResp {
        status,
        headers,
        json: serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
    }
}

async fn owner_api_key(app: TestApp) {
    let mall = mall(&app).await;
    let pa = payment(&app, &mall.a, "ord-a", "card", "authorized", 1100).await;
    let pb = payment(&app, &mall.b, "ord-b", "card", "authorized", 2200).await;
    let pc = payment(&app, &mall.c, "ord-c", "card", "authorized", 3300).await;
    let (key_id, key) =
        kakehashi::api::keys::create_owner_key(&app.db, &mall.own1, app.state.now_ms())
            .await
            .unwrap();
    assert!(key.starts_with("ok_"));

    // Lists and reads for each named tenant.
    let list = api_as(
        &app,
        "GET",
        "/api/v1/payments",
        &key,
        Some(&mall.a.id),
        None,
    )
    .await;
    assert_eq!(list.status, 200, "{}", list.json);
    let ids: Vec<&str> = list.json["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![pa.id.as_str()]);
    let got = api_as(
        &app,
        "GET",
        &format!("/api/v1/payments/{}", pb.id),
        &key,
        Some(&mall.b.id),
        None,
    )
    .await;
    assert_eq!(got.status, 200);
    // A payment of tenant B asked for as tenant A is not found (the merchant scopes the call).
    let cross = api_as(
        &app,
        "GET",
        &format!("/api/v1/payments/{}", pb.id),
        &key,
        Some(&mall.a.id),
        None,
    )
    .await;
    assert_eq!((cross.status, cross.code()), (404, "payment_not_found"));
    // Acts: capture for tenant B.
    let cap = api_as(
        &app,
        "POST",
        &format!("/api/v1/payments/{}/capture", pb.id),
        &key,
        Some(&mall.b.id),
        Some(serde_json::json!({})),
    )
    .await;
    assert_eq!(cap.status, 200, "{}", cap.json);
    assert_eq!(app.payment_status(&pb.id).await, "captured");

    // Another owner's tenant and an unknown merchant answer alike.
    let other = api_as(
        &app,
        "GET",
        &format!("/api/v1/payments/{}", pc.id),
        &key,
        Some(&mall.c.id),
        None,
    )
    .await;
    let unknown = api_as(
        &app,
        "GET",
        "/api/v1/payments",
        &key,
        Some("m_unknown"),
        None,
    )
    .await;
    assert_eq!((other.status, other.code()), (404, "merchant_not_found"));
    assert_eq!(other.json, unknown.json);
    assert_eq!(unknown.status, 404);
    let post_c = api_as(
        &app,
        "POST",
        &format!("/api/v1/payments/{}/cancel", pc.id),
        &key,
        Some(&mall.c.id),
        Some(serde_json::json!({})),
    )
    .await;
    assert_eq!(post_c.code(), "merchant_not_found");
    assert_eq!(app.payment_status(&pc.id).await, "authorized");
    // No tenant named.
    let none = api_as(&app, "GET", "/api/v1/payments", &key, None, None).await;
    assert_eq!((none.status, none.code()), (400, "merchant_required"));

    // A merchant key may not name another merchant.
    let ka = app.api_key(&mall.a).await;
    let own = api_as(&app, "GET", "/api/v1/payments", &ka, Some(&mall.a.id), None).await;
    assert_eq!(own.status, 200);
    let theirs = api_as(&app, "GET", "/api/v1/payments", &ka, Some(&mall.b.id), None).await;
    assert_eq!((theirs.status, theirs.code()), (404, "merchant_not_found"));

    // A detached tenant is out of reach at once; a retired key is refused.
    kakehashi::flows::owners::attach(&app.db, &mall.a.id, None)
        .await
        .unwrap();
    let gone = api_as(
        &app,
        "GET",
        "/api/v1/payments",
        &key,
        Some(&mall.a.id),
        None,
    )
    .await;
    assert_eq!(gone.code(), "merchant_not_found");
    kakehashi::api::keys::retire_owner_key(&app.db, &mall.own1, &key_id)
        .await
        .unwrap();
    let retired = api_as(
        &app,
        "GET",
        "/api/v1/payments",
        &key,
        Some(&mall.b.id),
        None,
    )
    .await;
    assert_eq!(retired.status, 401);
}
both!(owner_api_key);
