//! Console administration through real HTTP: invitations and enrolment (password and TOTP set
//! together on a one-time link), roles, disable, TOTP reset, merchants (operators), API keys,
//! signing keys, test notifications; permissions per role, CSRF, audit, other merchants' ids.

use kakehashi::console::users;
use kakehashi::console::Role;

use kakehashi::console::users::Created;

use crate::console::{user, Console};
use crate::helpers::*;

/// The text of the element with `id` (up to the next `<`).
fn by_id(page: &str, id: &str) -> String {
    let needle = format!("id=\"{id}\">");
    let start = page
        .find(&needle)
        .unwrap_or_else(|| panic!("no #{id} in {page}"))
        + needle.len();
    page[start..].split('<').next().unwrap().to_owned()
}

/// Posts a form with the session's CSRF token.
async fn post(c: &Console, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
    let csrf = c.csrf().await;
    let mut f = vec![("csrf", csrf.as_str())];
    f.extend_from_slice(form);
    c.post(path, &f).await
}

/// Issues an invitation from `c`; returns the link's path.
async fn invite(c: &Console, email: &str, role: &str, merchant: &str) -> String {
    let r = post(
        c,
        "/console/users/invite",
        &[("email", email), ("role", role), ("merchant", merchant)],
    )
    .await;
    let status = r.status();
    let page = r.text().await.unwrap();
    assert_eq!(status, 200, "{page}");
    let url = by_id(&page, "invite-url");
    assert!(url.contains("/console/enrol/"), "{url}");
    url[url.find("/console/enrol/").unwrap()..].to_owned()
}

/// Opens an enrolment link and posts the password and the code for the shown secret.
async fn enrol(
    app: &TestApp,
    path: &str,
    email: &str,
    password: &str,
    code: Option<&str>,
) -> (reqwest::Response, String) {
    let c = Console::new(app);
    let (s, page) = c.get(path).await;
    assert_eq!(s, 200, "{page}");
    let secret = by_id(&page, "totp-secret");
    let good = users::totp(&secret, email)
        .unwrap()
        .generate(app.state.now_s() as u64);
    let csrf = hidden(&page, "csrf");
    let r = c
        .post(
            path,
            &[
                ("csrf", &csrf),
                ("password", password),
                ("password2", password),
                ("code", code.unwrap_or(&good)),
            ],
        )
        .await;
    (r, secret)
}

/// Signs in with a password and a TOTP secret at the app's clock, moved on one TOTP step first
/// so the code is never one already used (codes are accepted once).
async fn sign_in(app: &TestApp, email: &str, password: &str, secret: &str) -> Console {
    app.clock.advance(std::time::Duration::from_secs(31));
    let c = Console::new(app);
    assert_eq!(c.password(email, password).await.status(), 303);
    let (_, page) = c.get("/console/login/totp").await;
    assert!(!page.contains(secret), "the code page shows the secret");
    let code = users::totp(secret, email)
        .unwrap()
        .generate(app.state.now_s() as u64);
    let r = c.code(&code).await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    c
}

/// Signs in a user made by `console::user`.
async fn login(app: &TestApp, u: &Created) -> Console {
    sign_in(app, &u.email, &u.password, &u.totp_secret).await
}

async fn audit_rows(app: &TestApp, action: &str) -> Vec<(String, String, String, String)> {
    kakehashi::on_db!(&app.db, c => sqlx::query_as(
        "SELECT email, target, detail, ip FROM console_audit WHERE action = $1 ORDER BY id")
        .bind(action).fetch_all(c).await)
    .unwrap()
}

async fn invite_enrol_and_sign_in(app: TestApp) {
    let m = app.merchant().await;
    let admin = user(&app, Some(&m.id), Role::Admin).await;
    let c = login(&app, &admin).await;
    let email = format!("{}@shop.example", kakehashi::util::random_id("n", 8));
    let link = invite(&c, &email, "general", "").await;
    // Only the token's hash is stored.
    let token = link.rsplit('/').next().unwrap();
    let stored: i64 = kakehashi::on_db!(&app.db, c => sqlx::query_scalar(
        "SELECT COUNT(*) FROM console_invites WHERE token_hash = $1")
        .bind(token).fetch_one(c).await)
    .unwrap();
    assert_eq!(stored, 0, "token stored in clear");
    // The open link is listed; no user exists until it is used.
    let (_, page) = c.get("/console/users").await;
    assert!(page.contains(&email));
    assert!(users::by_email(&app.db, &email).await.unwrap().is_none());
    // A wrong code, a short password or a forged form change nothing.
    let (r, _) = enrol(&app, &link, &email, "long enough password", Some("000000")).await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("確認コード"));
    let (r, _) = enrol(&app, &link, &email, "short", None).await;
    assert_eq!(r.status(), 400);
    let anon = Console::new(&app);
    let r = anon
        .post(
            &link,
            &[("csrf", "forged"), ("password", "x"), ("password2", "x")],
        )
        .await;
    assert_eq!(r.status(), 403);
    assert!(users::by_email(&app.db, &email).await.unwrap().is_none());
    // The right code and a good password create the enrolled user.
    let password = "correct horse battery staple";
    let (r, secret) = enrol(&app, &link, &email, password, None).await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "/console/login?enrolled=1");
    let (_, page) = Console::new(&app).get("/console/login?enrolled=1").await;
    assert!(page.contains("登録が完了しました"));
    let u = users::by_email(&app.db, &email).await.unwrap().unwrap();
    assert_eq!(u.role, Role::General);
    assert_eq!(u.merchant_id.as_deref(), Some(m.id.as_str()));
    assert!(u.totp_enrolled_at.is_some());
    // Single use: the link is gone, its QR code too.
    assert_eq!(Console::new(&app).get(&link).await.0, 400);
    assert_eq!(
        Console::new(&app).get(&format!("{link}/qr.svg")).await.0,
        404
    );
    // The user signs in with the password and the authenticator; the list shows the sign-in.
    let g = sign_in(&app, &email, password, &secret).await;
    assert_eq!(g.get("/console/payments").await.0, 200);
    let (_, page) = c.get("/console/users").await;
    let row = &page[page.find(&format!("id=\"user-{}\"", u.id)).unwrap()..];
    let row = &row[..row.find("</tr>").unwrap()];
    assert!(
        !row.contains("<td>-</td><td>"),
        "last sign-in missing: {row}"
    );
    // Audited: the invitation (who, from where) and the enrolment.
    let inv = audit_rows(&app, "user.invite").await;
    assert_eq!(inv.len(), 1);
    assert_eq!(inv[0].0, admin.email);
    assert_eq!(inv[0].3, "127.0.0.1");
    assert!(inv[0].2.contains(&email));
    let en = audit_rows(&app, "user.enrol").await;
    assert!(en.iter().any(|e| e.2.starts_with("ok")), "{en:?}");
    assert!(en.iter().any(|e| e.2.starts_with("refused")), "{en:?}");
}
both!(invite_enrol_and_sign_in);

async fn expired_and_revoked_links(app: TestApp) {
    let m = app.merchant().await;
    let admin = user(&app, Some(&m.id), Role::Admin).await;
    let c = login(&app, &admin).await;
    let email = format!("{}@shop.example", kakehashi::util::random_id("e", 8));
    let link = invite(&c, &email, "admin", "").await;
    // A second invitation for the same address is refused while the first is open.
    let r = post(
        &c,
        "/console/users/invite",
        &[("email", &email), ("role", "admin")],
    )
    .await;
    assert_eq!(r.status(), 400);
    // Admins cannot invite operators.
    let r = post(
        &c,
        "/console/users/invite",
        &[("email", "op@ops.example"), ("role", "operator")],
    )
    .await;
    assert_eq!(r.status(), 400);
    // 72 hours later the link no longer works.
    app.clock
        .advance(std::time::Duration::from_secs(72 * 3600 + 1));
    assert_eq!(Console::new(&app).get(&link).await.0, 400);
    // A revoked link does not work either.
    let c = login(&app, &admin).await;
    let email2 = format!("{}@shop.example", kakehashi::util::random_id("e", 8));
    let link2 = invite(&c, &email2, "admin", "").await;
    let id: String = kakehashi::on_db!(&app.db, c => sqlx::query_scalar(
        "SELECT id FROM console_invites WHERE email = $1")
        .bind(&email2).fetch_one(c).await)
    .unwrap();
    let r = post(&c, &format!("/console/invites/{id}/revoke"), &[]).await;
    assert_eq!(r.status(), 303);
    assert_eq!(Console::new(&app).get(&link2).await.0, 400);
    // Another merchant's admin cannot revoke (or see) it.
    let other = app.merchant().await;
    let oa = user(&app, Some(&other.id), Role::Admin).await;
    let o = login(&app, &oa).await;
    let r = post(&o, &format!("/console/invites/{id}/revoke"), &[]).await;
    assert_eq!(r.status(), 404);
    assert!(!o.get("/console/users").await.1.contains(&email2));
}
both!(expired_and_revoked_links);

async fn roles_disable_and_totp_reset(app: TestApp) {
    let m = app.merchant().await;
    let admin = user(&app, Some(&m.id), Role::Admin).await;
    let staff = user(&app, Some(&m.id), Role::General).await;
    let c = login(&app, &admin).await;
    let s = login(&app, &staff).await;
    let path = |op: &str| format!("/console/users/{}/{op}", staff.id);

    // A general user manages nobody.
    assert_eq!(s.get("/console/users").await.0, 403);
    let r = post(&s, &format!("/console/users/{}/disable", admin.id), &[]).await;
    assert_eq!(r.status(), 403);
    // Without the CSRF token nothing changes.
    let r = c
        .post(&path("role"), &[("csrf", "x"), ("role", "admin")])
        .await;
    assert_eq!(r.status(), 403);

    // Role: general -> admin, audited with before and after.
    let r = post(&c, &path("role"), &[("role", "admin")]).await;
    assert_eq!(r.status(), 303);
    let u = users::get(&app.db, &staff.id).await.unwrap().unwrap();
    assert_eq!(u.role, Role::Admin);
    let a = audit_rows(&app, "user.role").await;
    assert!(a[0].2.contains("general -> admin"), "{a:?}");
    // Nobody changes their own account.
    let r = post(
        &c,
        &format!("/console/users/{}/role", admin.id),
        &[("role", "general")],
    )
    .await;
    assert_eq!(r.status(), 400);

    // Disable: the signed-in user is out at once and cannot sign in.
    assert_eq!(s.get("/console/payments").await.0, 200);
    assert_eq!(post(&c, &path("disable"), &[]).await.status(), 303);
    assert_eq!(s.get("/console/payments").await.0, 303);
    let again = Console::new(&app);
    assert_eq!(
        again.password(&staff.email, &staff.password).await.status(),
        401
    );
    assert_eq!(post(&c, &path("enable"), &[]).await.status(), 303);
    let s = login(&app, &staff).await;
    assert!(audit_rows(&app, "user.disable").await[0]
        .2
        .contains("active -> disabled"));

    // TOTP reset: a confirmation first, then the user is out and the old password and code no
    // longer work; the new link sets both.
    let (st, page) = {
        let r = post(&c, &path("reset-totp"), &[]).await;
        (r.status(), r.text().await.unwrap())
    };
    assert_eq!(st, 200);
    assert!(page.contains("確認"), "{page}");
    assert!(users::get(&app.db, &staff.id)
        .await
        .unwrap()
        .unwrap()
        .totp_enrolled_at
        .is_some());
    let r = post(&c, &path("reset-totp"), &[("confirm", "yes")]).await;
    assert_eq!(r.status(), 200);
    let page = r.text().await.unwrap();
    let url = by_id(&page, "invite-url");
    let link = url[url.find("/console/enrol/").unwrap()..].to_owned();
    assert_eq!(s.get("/console/payments").await.0, 303);
    assert_eq!(
        Console::new(&app)
            .password(&staff.email, &staff.password)
            .await
            .status(),
        401
    );
    let password = "a brand new long password";
    let (r, secret) = enrol(&app, &link, &staff.email, password, None).await;
    assert_eq!(r.status(), 303);
    assert_ne!(secret, staff.totp_secret);
    let s = sign_in(&app, &staff.email, password, &secret).await;
    assert_eq!(s.get("/console/payments").await.0, 200);
    // Same user id, same role: only the credentials changed.
    let u = users::get(&app.db, &staff.id).await.unwrap().unwrap();
    assert_eq!(u.role, Role::Admin);
    assert!(audit_rows(&app, "user.reset_totp").await[0]
        .2
        .starts_with("ok"));

    // Another merchant's admin sees none of this merchant's users (404, not 403).
    let other = app.merchant().await;
    let oa = user(&app, Some(&other.id), Role::Admin).await;
    let o = login(&app, &oa).await;
    assert!(!o.get("/console/users").await.1.contains(&staff.email));
    for op in ["role", "disable", "enable", "reset-totp"] {
        let r = post(&o, &path(op), &[("role", "general"), ("confirm", "yes")]).await;
        assert_eq!(r.status(), 404, "{op}");
    }
    let u = users::get(&app.db, &staff.id).await.unwrap().unwrap();
    assert!(u.disabled_at.is_none());
    assert_eq!(u.role, Role::Admin);
    // An operator manages any merchant's users and invites operators.
    let op = user(&app, None, Role::Operator).await;
    let oc = login(&app, &op).await;
    let (_, page) = oc.get(&format!("/console/users?merchant={}", m.id)).await;
    assert!(page.contains(&staff.email));
    assert_eq!(post(&oc, &path("disable"), &[]).await.status(), 303);
    let email = format!("{}@ops.example", kakehashi::util::random_id("o", 8));
    let link = invite(&oc, &email, "operator", "").await;
    let (r, _) = enrol(&app, &link, &email, "operator password 1", None).await;
    assert_eq!(r.status(), 303);
    let u = users::by_email(&app.db, &email).await.unwrap().unwrap();
    assert_eq!((u.role, u.merchant_id), (Role::Operator, None));
}
both!(roles_disable_and_totp_reset);

async fn operators_create_and_edit_merchants(app: TestApp) {
    let m = app.merchant().await;
    let admin = user(&app, Some(&m.id), Role::Admin).await;
    let a = login(&app, &admin).await;
    // Merchant administration is for operators only.
    assert_eq!(a.get("/console/merchants").await.0, 403);
    assert_eq!(
        post(&a, "/console/merchants", &[("name", "X")])
            .await
            .status(),
        403
    );
    assert_eq!(a.get(&format!("/console/merchants/{}", m.id)).await.0, 403);

    let op = user(&app, None, Role::Operator).await;
    let c = login(&app, &op).await;
    let id = format!("m_{}", kakehashi::util::random_id("c", 8));
    let r = post(
        &c,
        "/console/merchants",
        &[("name", "青空書店"), ("id", &id)],
    )
    .await;
    assert_eq!(r.status(), 200);
    let page = r.text().await.unwrap();
    assert_eq!(by_id(&page, "new-merchant-id"), id);
    let secret = by_id(&page, "new-key-secret");
    assert!(secret.starts_with("sk_test_"), "{secret}");
    assert!(!by_id(&page, "new-webhook-secret").is_empty());
    let created = kakehashi::db::merchants::get(&app.db, &id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(created.name, "青空書店");
    assert_eq!(created.mode(), kakehashi::domain::Mode::Test);
    // The same id again is refused with a sentence.
    let r = post(&c, "/console/merchants", &[("name", "again"), ("id", &id)]).await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("already exists"));
    assert_eq!(audit_rows(&app, "merchant.create").await.len(), 2);

    // Basics: the form shows the stored values; a bad card option changes nothing.
    let (s, page) = c.get(&format!("/console/merchants/{id}")).await;
    assert_eq!(s, 200);
    assert!(page.contains("value=\"lump\""));
    let form = |name: &'static str, card: &'static str| {
        vec![
            ("name", name),
            ("status", "active"),
            ("notify_format", "compat"),
            ("card_options", card),
            ("carrier_continuous", "yes"),
            ("sandbox_autopay", "30"),
            ("sms_template", ""),
        ]
    };
    let r = post(
        &c,
        &format!("/console/merchants/{id}"),
        &form("青空書店", "bogus"),
    )
    .await;
    assert_eq!(r.status(), 400);
    let after = kakehashi::db::merchants::get(&app.db, &id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.notify_format.code(), "standard");
    let r = post(
        &c,
        &format!("/console/merchants/{id}"),
        &form("青空書店 本店", "lump,inst3,holder"),
    )
    .await;
    assert_eq!(r.status(), 303);
    let after = kakehashi::db::merchants::get(&app.db, &id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.name, "青空書店 本店");
    assert_eq!(after.notify_format.code(), "compat");
    assert_eq!(after.card_options, "lump,inst3,holder");
    assert!(kakehashi::db::merchants::continuous_enabled(&app.db, &id)
        .await
        .unwrap());
    assert_eq!(
        kakehashi::db::merchants::autopay_seconds(&app.db, &id)
            .await
            .unwrap(),
        Some(30)
    );
    let upd = audit_rows(&app, "merchant.update").await;
    assert!(
        upd.last()
            .unwrap()
            .2
            .contains("name: 青空書店 -> 青空書店 本店"),
        "{upd:?}"
    );
    assert!(upd[0].2.starts_with("refused"), "{upd:?}");
}
both!(operators_create_and_edit_merchants);

async fn api_keys_signing_keys_and_test_notification(app: TestApp) {
    let rx = Receiver::start().await;
    let m = app
        .merchant_with(|n| n.callback_url = Some(rx.url.clone()))
        .await;
    let admin = user(&app, Some(&m.id), Role::Admin).await;
    let c = login(&app, &admin).await;

    // API key: shown once, works, then retired answers 401.
    let r = post(&c, "/console/settings/api-keys", &[]).await;
    assert_eq!(r.status(), 200);
    let key = by_id(&r.text().await.unwrap(), "new-secret");
    assert!(key.starts_with("ak_test_"), "{key}");
    assert_eq!(app.api_get("/api/v1/payments", &key).await.status, 200);
    let key_id: String = kakehashi::on_db!(&app.db, c => sqlx::query_scalar(
        "SELECT id FROM api_keys WHERE merchant_id = $1")
        .bind(&m.id).fetch_one(c).await)
    .unwrap();
    let (_, page) = c.get("/console/settings").await;
    assert!(page.contains(&key_id));
    assert!(!page.contains(&key));
    let r = post(
        &c,
        &format!("/console/settings/api-keys/{key_id}/retire"),
        &[],
    )
    .await;
    assert_eq!(r.status(), 303);
    assert_eq!(app.api_get("/api/v1/payments", &key).await.status, 401);

    // Signing key: the only active one cannot be retired; after a rotation the old one can.
    let r = post(
        &c,
        &format!("/console/settings/keys/{}/retire", m.key_id),
        &[],
    )
    .await;
    assert_eq!(r.status(), 409);
    assert_eq!(
        post(&c, "/console/settings/rotate-key", &[]).await.status(),
        200
    );
    let r = post(
        &c,
        &format!("/console/settings/keys/{}/retire", m.key_id),
        &[],
    )
    .await;
    assert_eq!(r.status(), 303);
    let active = kakehashi::db::merchants::active_key_ids(&app.db, &m.id)
        .await
        .unwrap();
    assert!(!active.contains(&m.key_id));
    assert_eq!(active.len(), 1);

    // Test notification: a signed ping reaches the receiver and the page shows the result.
    let r = post(&c, "/console/settings/test-notification", &[]).await;
    assert_eq!(r.status(), 303);
    let page_url = location(&r);
    let hits = rx.wait_for("ping", |h| !h.is_empty()).await;
    assert!(String::from_utf8_lossy(&hits[0].body).contains("\"ping\""));
    assert!(!hits[0].header("webhook-signature").is_empty());
    let page = eventually("delivered", || async {
        let (_, page) = c.get(&page_url).await;
        page.contains("配信済").then_some(page)
    })
    .await;
    assert!(page.contains("<td>200</td>"), "{page}");
    assert_eq!(audit_rows(&app, "notification.test").await.len(), 1);

    // A general user may do none of this; another merchant's admin cannot reach these keys or
    // this ping.
    let g = login(&app, &user(&app, Some(&m.id), Role::General).await).await;
    for p in [
        "/console/settings/api-keys".to_owned(),
        "/console/settings/test-notification".to_owned(),
        format!("/console/settings/keys/{}/retire", active[0]),
    ] {
        assert_eq!(post(&g, &p, &[]).await.status(), 403, "{p}");
    }
    let other = app.merchant().await;
    let o = login(&app, &user(&app, Some(&other.id), Role::Admin).await).await;
    let r = post(
        &o,
        &format!("/console/settings/keys/{}/retire", active[0]),
        &[],
    )
    .await;
    assert_eq!(r.status(), 404);
    let event = page_url
        .split('/')
        .next_back()
        .unwrap()
        .split('?')
        .next()
        .unwrap();
    assert_eq!(
        o.get(&format!("/console/settings/test-notification/{event}"))
            .await
            .0,
        404
    );
    assert_eq!(
        o.get(&format!(
            "/console/settings/test-notification/{event}?merchant={}",
            m.id
        ))
        .await
        .0,
        404,
        "an admin's merchant parameter is ignored"
    );
}
both!(api_keys_signing_keys_and_test_notification);

/// `kakehashi user invite` issues the same links as the console, audited as the CLI.
async fn cli_invite(app: TestApp) {
    let m = app.merchant().await;
    let email = format!("{}@shop.example", kakehashi::util::random_id("cli", 8));
    kakehashi::cli::user(
        &app.db,
        &app.state.keys,
        &app.state.public_url,
        kakehashi::cli::UserCmd::Invite {
            merchant: Some(m.id.clone()),
            email: email.clone(),
            role: "admin".into(),
        },
    )
    .await
    .unwrap();
    let (created_by, role): (String, String) = kakehashi::on_db!(&app.db, c => sqlx::query_as(
        "SELECT created_by, role FROM console_invites WHERE email = $1")
        .bind(&email).fetch_one(c).await)
    .unwrap();
    assert_eq!((created_by.as_str(), role.as_str()), ("cli", "admin"));
    let a = audit_rows(&app, "user.invite").await;
    assert_eq!(a[0].0, "cli");
    // A bad role or an operator with a merchant is refused and stores nothing.
    for (merchant, role) in [
        (Some(m.id.clone()), "root"),
        (Some(m.id.clone()), "operator"),
    ] {
        let r = kakehashi::cli::user(
            &app.db,
            &app.state.keys,
            &app.state.public_url,
            kakehashi::cli::UserCmd::Invite {
                merchant,
                email: "x@shop.example".into(),
                role: role.into(),
            },
        )
        .await;
        assert!(r.is_err(), "{role}");
    }
    assert_eq!(app.count("console_invites").await, 1);
}
both!(cli_invite);
