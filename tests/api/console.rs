//! Merchant console through real HTTP: sign-in (password + TOTP), lockout, idle timeout, CSRF,
//! roles, search filters, keyset pagination, card actions, CSV in both encodings, settings.

use kakehashi::console::users::{self, Created};
use kakehashi::console::Role;
use kakehashi::db::payments::{self, NewPayment};

use crate::helpers::*;

/// A browser-like client (cookies kept, redirects not followed) for one console user.
pub(crate) struct Console {
    pub(crate) base: String,
    pub(crate) client: reqwest::Client,
}

impl Console {
    pub(crate) fn new(app: &TestApp) -> Console {
        let client = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Console {
            base: app.base.clone(),
            client,
        }
    }

    pub(crate) async fn get(&self, path: &str) -> (u16, String) {
        let r = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    /// A GET whose response is read by the caller (binary downloads).
    pub(crate) async fn get_raw(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
    }

    pub(crate) async fn post(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        self.client
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap()
    }

    /// Posts `body` as-is with `content_type` (multipart uploads).
    pub(crate) async fn post_raw(
        &self,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> reqwest::Response {
        self.client
            .post(format!("{}{path}", self.base))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap()
    }

    /// The password step; returns the response.
    pub(crate) async fn password(&self, email: &str, password: &str) -> reqwest::Response {
        let (s, page) = self.get("/console/login").await;
        assert_eq!(s, 200);
        let csrf = hidden(&page, "csrf");
        self.post(
            "/console/login",
            &[("csrf", &csrf), ("email", email), ("password", password)],
        )
        .await
    }

    /// The code step with `code`; returns the response.
    pub(crate) async fn code(&self, code: &str) -> reqwest::Response {
        let (s, page) = self.get("/console/login/totp").await;
        assert_eq!(s, 200, "{page}");
        let csrf = hidden(&page, "csrf");
        self.post("/console/login/totp", &[("csrf", &csrf), ("code", code)])
            .await
    }

    pub(crate) async fn login(app: &TestApp, u: &Created) -> Console {
        let c = Console::new(app);
        let r = c.password(&u.email, &u.password).await;
        assert_eq!(r.status(), 303);
        let r = c.code(&current_code(u)).await;
        assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
        assert_eq!(r.headers()["location"], "/console/payments");
        c
    }

    pub(crate) async fn csrf(&self) -> String {
        let (s, page) = self.get("/console/payments").await;
        assert_eq!(s, 200);
        hidden(&page, "csrf")
    }
}

pub(crate) fn current_code(u: &Created) -> String {
    users::totp(&u.totp_secret, &u.email)
        .unwrap()
        .generate_current()
        .unwrap()
}

pub(crate) async fn user(app: &TestApp, merchant: Option<&str>, role: Role) -> Created {
    let email = format!("{}@shop.example", kakehashi::util::random_id("u", 8));
    users::create(
        &app.db,
        &app.state.keys,
        merchant,
        &email,
        role,
        app.state.now_ms(),
    )
    .await
    .unwrap()
}

/// Creates a checkout and a payment of `method` in `status` directly in the store.
pub(crate) async fn payment(
    app: &TestApp,
    m: &TestMerchant,
    order: &str,
    method: &str,
    status: &str,
    amount: i64,
) -> payments::PaymentRow {
    let f = app.fields(m, order, amount, &[]);
    assert_eq!(app.open(m, &f, UA_PC).await.0, 200);
    let co = kakehashi::db::checkouts::find_by_order(&app.db, &m.id, order)
        .await
        .unwrap()
        .unwrap();
    let mut tx = app.db.begin().await.unwrap();
    let p = payments::create(
        &mut tx,
        &NewPayment {
            merchant_id: &m.id,
            checkout_id: &co.id,
            order_id: order,
            method: kakehashi::domain::Method::parse(method).unwrap(),
            institution: Some(if method == "card" { "VISA" } else { "seven" }),
            status: kakehashi::domain::payment::PaymentStatus::decode(
                kakehashi::domain::Method::parse(method).unwrap(),
                status,
            )
            .unwrap(),
            amount,
            fee: if method == "konbini" && amount >= 50_000 {
                200
            } else {
                0
            },
            deadline_at: None,
            details: serde_json::json!({"masked": "411111******1111"}),
            connector: &kakehashi::domain::processor::ConnectorId::Sandbox,
        },
        "test",
        app.state.now_ms(),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    if method == "card" {
        // The sandbox acquirer's token for an approved authorization of `amount`.
        let token = format!("sbxtok-frictionless-{amount}-t{}", &p.id[4..12]);
        let sql = "UPDATE payments SET connector_ref = $1 WHERE id = $2";
        let mut tx = app.db.begin().await.unwrap();
        kakehashi::exec_tx!(&mut tx, c => sqlx::query(sql).bind(&token).bind(&p.id).execute(c).await).unwrap();
        tx.commit().await.unwrap();
    }
    payments::get(&app.db, &p.id).await.unwrap().unwrap()
}

async fn totp_login_and_roles(app: TestApp) {
    let m = app.merchant().await;
    let admin = user(&app, Some(&m.id), Role::Admin).await;
    // Unauthenticated pages redirect to the login page.
    let anon = Console::new(&app);
    let (s, _) = anon.get("/console/payments").await;
    assert_eq!(s, 303);
    // Password alone is not a session; a wrong code is refused.
    let c = Console::new(&app);
    assert_eq!(
        c.password(&admin.email, &admin.password).await.status(),
        303
    );
    assert_eq!(c.get("/console/payments").await.0, 303);
    // The code page never shows the TOTP secret or a QR code: a password alone does not reveal
    // the second factor (issue 20). Enrolment happens on a one-time link (console_admin.rs).
    let (_, page) = c.get("/console/login/totp").await;
    assert!(
        !page.contains(&admin.totp_secret),
        "secret shown after the password"
    );
    assert!(!page.contains("qr.svg"));
    assert_eq!(
        c.client
            .get(format!("{}/console/login/qr.svg", app.base))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(c.code("000000").await.status(), 401);
    let r = c.code(&current_code(&admin)).await;
    assert_eq!(r.status(), 303);
    let set_cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    for attr in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/console"] {
        assert!(set_cookie.contains(attr), "{attr} in {set_cookie}");
    }
    let (s, page) = c.get("/console/payments").await;
    assert_eq!(s, 200);
    assert!(page.contains("決済照会"));

    // A general user may view but not act.
    let p = payment(&app, &m, "r-1", "card", "authorized", 1000).await;
    let general = user(&app, Some(&m.id), Role::General).await;
    let g = Console::login(&app, &general).await;
    assert_eq!(g.get(&format!("/console/payments/{}", p.id)).await.0, 200);
    let csrf = g.csrf().await;
    let r = g
        .post(
            &format!("/console/payments/{}/action", p.id),
            &[("csrf", &csrf), ("op", "capture"), ("confirm", "yes")],
        )
        .await;
    assert_eq!(r.status(), 403);
    assert_eq!(g.get("/console/settings").await.0, 403);
    assert_eq!(
        payments::get(&app.db, &p.id)
            .await
            .unwrap()
            .unwrap()
            .status
            .code(),
        "authorized"
    );
    // Another merchant's payment is invisible.
    let other = app.merchant().await;
    let q = payment(&app, &other, "o-1", "card", "authorized", 1000).await;
    assert_eq!(g.get(&format!("/console/payments/{}", q.id)).await.0, 404);
    // Sign-ins are audited with the client address.
    let n: i64 = kakehashi::on_db!(&app.db, c => sqlx::query_scalar(
        "SELECT COUNT(*) FROM console_audit WHERE action = 'login' AND ip = '127.0.0.1'").fetch_one(c).await).unwrap();
    assert_eq!(n, 2);
}
both!(totp_login_and_roles);

async fn lockout_after_ten_failures(app: TestApp) {
    let m = app.merchant().await;
    let u = user(&app, Some(&m.id), Role::Admin).await;
    let c = Console::new(&app);
    for i in 0..9 {
        assert_eq!(
            c.password(&u.email, "wrong").await.status(),
            401,
            "attempt {i}"
        );
    }
    // The tenth failure locks; then even the right password is refused.
    assert_eq!(c.password(&u.email, "wrong").await.status(), 429);
    let r = c.password(&u.email, &u.password).await;
    assert_eq!(r.status(), 429);
    assert!(r.text().await.unwrap().contains("ロック"));
    // Locked for this account from this address (see hardening::lock_is_per_account_and_address).
    let until: Option<i64> = kakehashi::on_db!(&app.db, c => sqlx::query_scalar(
        "SELECT locked_until FROM console_login_locks WHERE account = $1 AND ip = '127.0.0.1'")
        .bind(kakehashi::console::auth::account_key(&u.email)).fetch_one(c).await)
    .unwrap();
    let left = until.unwrap() - app.state.now_ms();
    assert!(left > 29 * 60 * 1000 && left <= 30 * 60 * 1000, "{left}");
}
both!(lockout_after_ten_failures);

/// A hash stored with older argon2 parameters (argon2's default, 19 MiB × 2) still signs in,
/// and the first correct password replaces it with one of the current parameters; a wrong
/// password changes nothing.
async fn older_password_hash_upgraded_at_sign_in(app: TestApp) {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let m = app.merchant().await;
    let u = user(&app, Some(&m.id), Role::Admin).await;
    let stored = |email: String| {
        let db = app.db.clone();
        async move {
            kakehashi::db::console_users::by_email(&db, &email)
                .await
                .unwrap()
                .unwrap()
                .password_hash
        }
    };
    let current = stored(u.email.clone()).await;
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    let old = argon2::Argon2::default()
        .hash_password(u.password.as_bytes(), &salt)
        .unwrap()
        .to_string();
    assert!(old.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{old}");
    let id = kakehashi::db::console_users::by_email(&app.db, &u.email)
        .await
        .unwrap()
        .unwrap()
        .id;
    assert!(
        kakehashi::db::console_users::replace_password_hash(&app.db, &id, &current, &old)
            .await
            .unwrap()
    );

    let c = Console::new(&app);
    assert_eq!(c.password(&u.email, "wrong").await.status(), 401);
    assert_eq!(stored(u.email.clone()).await, old);

    assert_eq!(c.password(&u.email, &u.password).await.status(), 303);
    let new = stored(u.email.clone()).await;
    let prefix = format!(
        "$argon2id$v=19$m={},t={},p=1$",
        users::MEMORY_KIB,
        users::PASSES
    );
    assert!(new.starts_with(&prefix), "{new}");
    assert!(users::verify_password(&new, &u.password));
    // The new hash signs in all the way, and is not replaced again.
    Console::login(&app, &u).await;
    assert_eq!(stored(u.email.clone()).await, new);
}
both!(older_password_hash_upgraded_at_sign_in);

async fn idle_timeout_and_csrf(app: TestApp) {
    let m = app.merchant().await;
    let u = user(&app, Some(&m.id), Role::Admin).await;
    let c = Console::login(&app, &u).await;
    let p = payment(&app, &m, "c-1", "card", "authorized", 1000).await;
    // A form without the session's CSRF token is refused and changes nothing.
    let r = c
        .post(
            &format!("/console/payments/{}/action", p.id),
            &[("csrf", "forged"), ("op", "capture"), ("confirm", "yes")],
        )
        .await;
    assert_eq!(r.status(), 403);
    assert_eq!(
        payments::get(&app.db, &p.id)
            .await
            .unwrap()
            .unwrap()
            .status
            .code(),
        "authorized"
    );
    // Login form without the nonce cookie's token is refused too.
    let fresh = Console::new(&app);
    let r = fresh
        .post(
            "/console/login",
            &[
                ("csrf", "x"),
                ("email", &u.email),
                ("password", &u.password),
            ],
        )
        .await;
    assert_eq!(r.status(), 403);
    assert_eq!(c.get("/console/payments").await.0, 200);
    // Idle for the limit (1 s here) and a bit: the clock moves, nobody sleeps.
    app.clock.advance(std::time::Duration::from_millis(900));
    assert_eq!(
        c.get("/console/payments").await.0,
        200,
        "not idle long enough"
    );
    app.clock.advance(std::time::Duration::from_millis(1100));
    let (s, _) = c.get("/console/payments").await;
    assert_eq!(s, 303, "idle session expired");
}

mod idle_timeout_and_csrf {
    #[tokio::test]
    async fn sqlite() {
        let app = crate::helpers::spawn_app_with(crate::helpers::Backend::Sqlite, |c| {
            c.console_idle_s = 1
        })
        .await
        .unwrap();
        super::idle_timeout_and_csrf(app).await;
    }
    #[tokio::test]
    async fn postgres() {
        if let Some(app) = crate::helpers::spawn_app_with(crate::helpers::Backend::Postgres, |c| {
            c.console_idle_s = 1
        })
        .await
        {
            super::idle_timeout_and_csrf(app).await;
        }
    }
}

async fn card_actions_confirmed_and_audited(app: TestApp) {
    let m = app.merchant().await;
    let u = user(&app, Some(&m.id), Role::Admin).await;
    let c = Console::login(&app, &u).await;
    let p = payment(&app, &m, "a-1", "card", "authorized", 5000).await;
    let path = format!("/console/payments/{}/action", p.id);
    let csrf = c.csrf().await;
    // First post shows the confirmation step only.
    let r = c.post(&path, &[("csrf", &csrf), ("op", "capture")]).await;
    assert_eq!(r.status(), 200);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("name=\"confirm\" value=\"yes\""));
    assert_eq!(
        payments::get(&app.db, &p.id)
            .await
            .unwrap()
            .unwrap()
            .status
            .code(),
        "authorized"
    );
    let r = c
        .post(
            &path,
            &[("csrf", &csrf), ("op", "capture"), ("confirm", "yes")],
        )
        .await;
    assert_eq!(r.status(), 303);
    let after = payments::get(&app.db, &p.id).await.unwrap().unwrap();
    assert_eq!(
        (after.status.code(), after.captured_amount),
        ("captured", 5000)
    );
    // Partial refund, then an over-refund is refused.
    let r = c
        .post(
            &path,
            &[
                ("csrf", &csrf),
                ("op", "refund"),
                ("amount", "1200"),
                ("confirm", "yes"),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);
    let r = c
        .post(
            &path,
            &[
                ("csrf", &csrf),
                ("op", "refund"),
                ("amount", "4000"),
                ("confirm", "yes"),
            ],
        )
        .await;
    assert_eq!(r.status(), 409);
    let after = payments::get(&app.db, &p.id).await.unwrap().unwrap();
    assert_eq!(
        (after.status.code(), after.refunded_amount),
        ("captured", 1200)
    );
    let events: Vec<String> = payments::events(&app.db, &p.id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        events,
        ["payment.created", "payment.captured", "payment.refunded"]
    );
    let (_, page) = c.get(&format!("/console/payments/{}", p.id)).await;
    assert!(page.contains("payment.refunded") && page.contains("411111******1111"));
    // Bulk cancel of two authorizations.
    let b1 = payment(&app, &m, "b-1", "card", "authorized", 1000).await;
    let b2 = payment(&app, &m, "b-2", "card", "authorized", 2000).await;
    let r = c
        .post(
            "/console/payments/bulk",
            &[
                ("csrf", &csrf),
                ("op", "cancel"),
                ("ids", &b1.id),
                ("ids", &b2.id),
                ("confirm", "yes"),
            ],
        )
        .await;
    assert_eq!(r.status(), 200);
    for b in [&b1, &b2] {
        assert_eq!(
            payments::get(&app.db, &b.id)
                .await
                .unwrap()
                .unwrap()
                .status
                .code(),
            "cancelled"
        );
    }
    let n: i64 = kakehashi::on_db!(&app.db, c => sqlx::query_scalar(
        "SELECT COUNT(*) FROM console_audit WHERE action LIKE 'payment.%' AND email = $1").bind(&u.email).fetch_one(c).await).unwrap();
    assert_eq!(n, 5);
    let (s, audit) = c.get("/console/audit").await;
    assert_eq!(s, 200);
    assert!(audit.contains("payment.bulk_cancel"));
}
both!(card_actions_confirmed_and_audited);

async fn search_filters_and_keyset_pages(app: TestApp) {
    let m = app.merchant().await;
    let u = user(&app, Some(&m.id), Role::General).await;
    for i in 0..70 {
        let (method, status) = if i % 3 == 0 {
            ("konbini", "awaiting_payment")
        } else {
            ("card", "authorized")
        };
        payment(&app, &m, &format!("k-{i:03}"), method, status, 1000 + i).await;
    }
    let c = Console::login(&app, &u).await;
    let ids = |page: &str| -> Vec<String> {
        page.split("class=\"pid\" href=\"/console/payments/")
            .skip(1)
            .map(|s| s.split('"').next().unwrap().to_owned())
            .collect()
    };
    // Walk every page sorted by amount ascending: 50 + 20, no duplicates, in order.
    let mut url = "/console/payments?sort=amount&dir=asc".to_owned();
    let mut seen = Vec::new();
    loop {
        let (s, page) = c.get(&url).await;
        assert_eq!(s, 200);
        seen.extend(ids(&page));
        match page.split("id=\"next-page\" href=\"").nth(1) {
            Some(rest) => {
                url = rest
                    .split('"')
                    .next()
                    .unwrap()
                    .replace("&#38;", "&")
                    .replace("&amp;", "&")
            }
            None => break,
        }
    }
    assert_eq!(seen.len(), 70);
    let mut amounts = Vec::new();
    for id in &seen {
        amounts.push(payments::get(&app.db, id).await.unwrap().unwrap().amount);
    }
    assert!(amounts.windows(2).all(|w| w[0] < w[1]), "ascending amounts");
    // Filters: method + status, amount range, order id.
    let (_, page) = c
        .get("/console/payments?method=konbini&status=awaiting_payment")
        .await;
    assert_eq!(ids(&page).len(), 24);
    let (_, page) = c.get("/console/payments?min=1010&max=1019").await;
    assert_eq!(ids(&page).len(), 10);
    let (_, page) = c.get("/console/payments?order_id=k-007").await;
    assert_eq!(ids(&page).len(), 1);
    assert!(page.contains("k-007"));
    let (_, page) = c
        .get("/console/payments?from=2000-01-01&to=2000-01-31")
        .await;
    assert_eq!(ids(&page).len(), 0);
    let (s, page) = c.get("/console/payments?min=abc").await;
    assert_eq!(s, 200);
    assert!(page.contains("id=\"search-error\""));
}
both!(search_filters_and_keyset_pages);

async fn csv_in_utf8_and_shift_jis(app: TestApp) {
    let m = app.merchant().await;
    let u = user(&app, Some(&m.id), Role::General).await;
    for i in 0..3 {
        payment(
            &app,
            &m,
            &format!("csv-{i}"),
            "konbini",
            "awaiting_payment",
            60_000,
        )
        .await;
    }
    // Order ids from links are plain, but CSV quoting must hold for any stored text.
    let q = payment(&app, &m, "csv-q", "card", "authorized", 1000).await;
    let mut tx = app.db.begin().await.unwrap();
    kakehashi::exec_tx!(&mut tx, c => sqlx::query("UPDATE payments SET order_id = $1 WHERE id = $2")
        .bind("csv,\"quoted\"").bind(&q.id).execute(c).await).unwrap();
    tx.commit().await.unwrap();
    let c = Console::login(&app, &u).await;
    let r = c
        .client
        .get(format!(
            "{}/console/payments.csv?enc=utf8&sort=order_id&dir=asc",
            app.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/csv; charset=utf-8");
    let bytes = r.bytes().await.unwrap();
    assert_eq!(&bytes[..3], b"\xEF\xBB\xBF", "BOM");
    let text = std::str::from_utf8(&bytes[3..]).unwrap();
    let lines: Vec<&str> = text.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(lines[0], kakehashi::console::csv_export::COLUMNS.join(","));
    assert_eq!(lines.len(), 5);
    assert!(
        lines[1].starts_with("\"csv,\"\"quoted\"\"\","),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].contains("コンビニ決済")
            && lines[2].contains("申込済")
            && lines[2].contains(",60000,0,0,200")
    );
    let r = c
        .client
        .get(format!(
            "{}/console/payments.csv?enc=sjis&method=konbini",
            app.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "text/csv; charset=Shift_JIS");
    let bytes = r.bytes().await.unwrap();
    let (decoded, _, errors) = encoding_rs::SHIFT_JIS.decode(&bytes);
    assert!(!errors);
    assert!(decoded.starts_with("取引ID,決済ID"));
    assert_eq!(decoded.matches("セブン-イレブン").count(), 3);
    assert_eq!(c.get("/console/payments.csv?enc=latin1").await.0, 400);
}
both!(csv_in_utf8_and_shift_jis);

async fn settings_summary_and_rotation(app: TestApp) {
    let m = app.merchant().await;
    let u = user(&app, Some(&m.id), Role::Admin).await;
    let c = Console::login(&app, &u).await;
    let (s, page) = c.get("/console/settings").await;
    assert_eq!(s, 200);
    let csrf = hidden(&page, "csrf");
    let base = [
        ("csrf", csrf.as_str()),
        ("return_origins", "https://shop.example https://b.example"),
        ("methods", "card"),
        ("methods", "konbini"),
        ("chains", "seven"),
        ("konbini_days", "10"),
        ("capture_mode", "manual"),
        ("theme", "demo"),
    ];
    // A private-network callback is refused and nothing changes.
    let mut bad = base.to_vec();
    bad.push(("callback_url", "http://10.0.0.1/hook"));
    let r = c.post("/console/settings", &bad).await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        kakehashi::db::merchants::get(&app.db, &m.id)
            .await
            .unwrap()
            .unwrap()
            .capture_mode
            .code(),
        "auto"
    );
    let mut good = base.to_vec();
    good.push(("callback_url", "https://shop.example/notify"));
    assert_eq!(c.post("/console/settings", &good).await.status(), 303);
    let mm = kakehashi::db::merchants::get(&app.db, &m.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            mm.capture_mode.code(),
            mm.konbini_days,
            kakehashi::domain::Method::join(&mm.methods())
        ),
        ("manual", 10, "card,konbini".to_owned())
    );
    // Webhook secret rotation keeps two, newest first, shown once.
    let old = app.webhook_secret(&m.id).await;
    for _ in 0..2 {
        let r = c
            .post("/console/settings/rotate-webhook", &[("csrf", &csrf)])
            .await;
        assert_eq!(r.status(), 200);
    }
    let mm = kakehashi::db::merchants::get(&app.db, &m.id)
        .await
        .unwrap()
        .unwrap();
    let secrets = mm.webhook_secrets(&app.state.keys).unwrap();
    assert_eq!(secrets.len(), 2);
    assert!(!secrets.contains(&old));
    let r = c
        .post("/console/settings/rotate-key", &[("csrf", &csrf)])
        .await;
    assert!(r.text().await.unwrap().contains("sk_test_"));
    assert_eq!(
        kakehashi::db::merchants::active_key_ids(&app.db, &m.id)
            .await
            .unwrap()
            .len(),
        2
    );
    let (s, preview) = c
        .get(&format!(
            "/console/settings/preview?theme=demo&device=sp&merchant={}",
            m.id
        ))
        .await;
    assert_eq!(s, 200);
    assert!(preview.contains("layout-sp"));
    // Summary: konbini fees include stamp duty.
    payment(&app, &m, "s-1", "konbini", "paid", 60_000).await;
    payment(&app, &m, "s-2", "konbini", "awaiting_payment", 60_000).await;
    let (s, page) = c.get("/console/summary").await;
    assert_eq!(s, 200);
    assert!(page.contains("<td>コンビニ決済</td><td class=\"num\">1</td><td class=\"num\">60,000円</td><td class=\"num\">200円</td><td class=\"num\">59,800円</td>"), "{page}");
}
both!(settings_summary_and_rotation);

/// The live-mode page: going live is refused without a live account; an account is added
/// (credentials never shown back), the switch succeeds and is audited; a general user cannot
/// see or use any of it.
async fn processors_page_and_mode_switch(app: TestApp) {
    let m = app.merchant().await;
    let u = user(&app, Some(&m.id), Role::Admin).await;
    let c = Console::login(&app, &u).await;
    let (s, page) = c.get("/console/processors").await;
    assert_eq!(s, 200, "{page}");
    assert!(page.contains("id=\"mode\">テスト"), "{page}");
    let csrf = hidden(&page, "csrf");
    let r = c
        .post(
            "/console/processors/mode",
            &[("csrf", &csrf), ("mode", "live"), ("confirm", "yes")],
        )
        .await;
    assert_eq!(r.status(), 409);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("本番モードで利用できる決済手段がない"));
    let mode = |app: &TestApp| {
        let db = app.db.clone();
        let id = m.id.clone();
        async move {
            kakehashi::db::merchants::get(&db, &id)
                .await
                .unwrap()
                .unwrap()
                .mode
                .code()
        }
    };
    assert_eq!(mode(&app).await, "test");
    // A method the processor does not offer is refused, nothing stored.
    let secret = "sk_live_console_secret_9876";
    let r = c
        .post(
            "/console/processors/add",
            &[
                ("csrf", &csrf),
                ("processor", "stripe"),
                ("mode", "live"),
                ("methods", "docomo"),
                ("secret_key", secret),
            ],
        )
        .await;
    assert_eq!(r.status(), 400);
    assert_eq!(app.count("processor_accounts").await, 0);
    let r = c
        .post(
            "/console/processors/add",
            &[
                ("csrf", &csrf),
                ("processor", "komoju"),
                ("mode", "live"),
                ("methods", "card"),
                ("methods", "konbini"),
                ("secret_key", secret),
                ("webhook_secret", "whsec_console"),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);
    let (_, page) = c.get("/console/processors").await;
    assert!(page.contains("…9876"), "{page}");
    // Listing cards on a KOMOJU account is the server-to-server setting: its PCI DSS note.
    assert!(page.contains("id=\"card-server-to-server\""), "{page}");
    assert!(!page.contains(secret) && !page.contains("whsec_console"));
    assert!(
        page.contains("id=\"live-methods\">クレジットカード、コンビニ決済"),
        "{page}"
    );
    let r = c
        .post(
            "/console/processors/mode",
            &[("csrf", &csrf), ("mode", "live")],
        )
        .await;
    assert_eq!(r.status(), 400, "confirmation required");
    let r = c
        .post(
            "/console/processors/mode",
            &[("csrf", &csrf), ("mode", "live"), ("confirm", "yes")],
        )
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(mode(&app).await, "live");
    // Back to test: an audited admin action.
    let r = c
        .post(
            "/console/processors/mode",
            &[("csrf", &csrf), ("mode", "test"), ("confirm", "yes")],
        )
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(mode(&app).await, "test");
    let actions: Vec<String> = kakehashi::on_db!(&app.db, c => sqlx::query_scalar(
        "SELECT action || ':' || detail FROM console_audit WHERE action IN ('processor.add', 'merchant.mode') ORDER BY id",
    )
    .fetch_all(c)
    .await)
    .unwrap();
    assert_eq!(actions.len(), 3, "{actions:?}");
    assert!(actions[0]
        .starts_with("processor.add:processor=komoju mode=live methods=card,konbini key=…9876"));
    assert!(actions[1].starts_with("merchant.mode:test -> live"));
    assert!(actions[2].starts_with("merchant.mode:live -> test"));
    assert!(!actions.iter().any(|a| a.contains(secret)));
    // General users see none of it.
    let g = user(&app, Some(&m.id), Role::General).await;
    let gc = Console::login(&app, &g).await;
    assert_eq!(gc.get("/console/processors").await.0, 403);
}

mod processors_page_and_mode_switch {
    #[tokio::test]
    async fn sqlite() {
        let (app, _) = crate::live::live_app(crate::helpers::Backend::Sqlite)
            .await
            .unwrap();
        super::processors_page_and_mode_switch(app).await;
    }
    #[tokio::test]
    async fn postgres() {
        if let Some((app, _)) = crate::live::live_app(crate::helpers::Backend::Postgres).await {
            super::processors_page_and_mode_switch(app).await;
        }
    }
}

/// Issue 16 item 15: institutions by name (a bank code, a carrier) in the list and on the
/// detail page, and the payment details under human labels, never raw keys.
async fn institutions_and_details_read_as_words(app: TestApp) {
    let m = app.merchant().await;
    let admin = user(&app, Some(&m.id), Role::Admin).await;
    let c = Console::login(&app, &admin).await;
    let mut ids = Vec::new();
    for (order, method, institution, details) in [
        (
            "lbl-bank",
            "banknet",
            "0009",
            serde_json::json!({"bank_code": "0009", "bank_name": "三井住友銀行"}),
        ),
        (
            "lbl-card",
            "card",
            "VISA",
            serde_json::json!({"brand": "visa", "brand_name": "Visa", "bin6": "411111",
                "last4": "1111", "three_ds": {"status": "Y", "eci": "05"}}),
        ),
        (
            "lbl-docomo",
            "docomo",
            "docomo",
            serde_json::json!({"carrier": "docomo", "billing": "one_off"}),
        ),
    ] {
        let f = app.fields(&m, order, 1000, &[]);
        assert_eq!(app.open(&m, &f, UA_PC).await.0, 200);
        let co = kakehashi::db::checkouts::find_by_order(&app.db, &m.id, order)
            .await
            .unwrap()
            .unwrap();
        let mut tx = app.db.begin().await.unwrap();
        let p = payments::create(
            &mut tx,
            &NewPayment {
                merchant_id: &m.id,
                checkout_id: &co.id,
                order_id: order,
                method: kakehashi::domain::Method::parse(method).unwrap(),
                institution: Some(institution),
                // The failed status of each method (a bank's is `declined`).
                status: kakehashi::domain::payment::PaymentStatus::decode(
                    kakehashi::domain::Method::parse(method).unwrap(),
                    if method == "banknet" {
                        "declined"
                    } else {
                        "failed"
                    },
                )
                .unwrap(),
                amount: 1000,
                fee: 0,
                deadline_at: None,
                details,
                connector: &kakehashi::domain::processor::ConnectorId::Sandbox,
            },
            "test",
            app.state.now_ms(),
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        ids.push(p.id);
    }
    let (_, list) = c.get("/console/payments").await;
    assert!(list.contains(">三井住友銀行<"), "bank by name");
    assert!(
        !list.contains(">0009<") && !list.contains(">docomo<"),
        "no raw codes"
    );
    let (_, bank) = c.get(&format!("/console/payments/{}", ids[0])).await;
    assert!(bank.contains("<dd>三井住友銀行</dd>"));
    let (_, card) = c.get(&format!("/console/payments/{}", ids[1])).await;
    for label in [
        "カード番号の先頭6桁（BIN）",
        "3Dセキュア認証結果",
        "ECI（3Dセキュアの結果区分）",
        "認証成功 (Y)",
    ] {
        assert!(card.contains(label), "{label}");
    }
    for raw in [">bin6<", ">three_ds.eci<", ">three_ds.status<", ">brand<"] {
        assert!(!card.contains(raw), "raw key {raw} shown");
    }
    let (_, docomo) = c.get(&format!("/console/payments/{}", ids[2])).await;
    assert!(docomo.contains("携帯電話会社") && docomo.contains("d払い (docomo)"));
    assert!(docomo.contains("都度 (one_off)"));
}
both!(institutions_and_details_read_as_words);

/// Sets a payment's stored method details (what the connector recorded when it completed).
async fn set_details(app: &TestApp, id: &str, details: serde_json::Value) {
    let sql = "UPDATE payments SET details = $1 WHERE id = $2";
    let mut tx = app.db.begin().await.unwrap();
    kakehashi::exec_tx!(&mut tx, c => sqlx::query(sql).bind(details.to_string()).bind(id).execute(c).await).unwrap();
    tx.commit().await.unwrap();
}

/// Gives a number payment the deadline every issued number has (the store helper leaves none).
async fn set_deadline(app: &TestApp, id: &str) {
    let sql = "UPDATE payments SET deadline_at = $1 WHERE id = $2";
    let deadline = app.state.now_ms() + 3 * 86_400_000;
    let mut tx = app.db.begin().await.unwrap();
    kakehashi::exec_tx!(&mut tx, c => sqlx::query(sql).bind(deadline).bind(id).execute(c).await)
        .unwrap();
    tx.commit().await.unwrap();
}

async fn status_of(app: &TestApp, id: &str) -> String {
    app.payment_status(id).await
}

/// The audit details of `action` on payment `id`, oldest first.
async fn audit_details(app: &TestApp, action: &str, id: &str) -> Vec<String> {
    kakehashi::on_db!(&app.db, c => sqlx::query_scalar(
        "SELECT detail FROM console_audit WHERE action = $1 AND target = $2 ORDER BY id")
        .bind(action).bind(id).fetch_all(c).await)
    .unwrap()
}

/// Carrier billing 取消 (whole refund through the sandbox connector) and cancel of an unpaid
/// konbini number from the detail page: offered only in a status that allows it, confirmed,
/// audited with the status before and after, refused in the wrong status or for another method
/// (a Japanese sentence), refused without CSRF, for a general user and for another merchant.
async fn carrier_and_number_cancel_from_the_console(app: TestApp) {
    let m = app.merchant().await;
    let other = app.merchant().await;
    let u = user(&app, Some(&m.id), Role::Admin).await;
    let c = Console::login(&app, &u).await;
    let csrf = c.csrf().await;

    // --- carrier 取消 ---
    let cp = payment(&app, &m, "cr-1", "docomo", "completed", 3000).await;
    set_details(
        &app,
        &cp.id,
        serde_json::json!({"carrier_txn_id": "sbx_console1"}),
    )
    .await;
    let (s, page) = c.get(&format!("/console/payments/{}", cp.id)).await;
    assert_eq!(s, 200);
    assert!(page.contains("value=\"carrier_cancel\"") && page.contains("取消（全額返金）"));
    assert!(!page.contains("value=\"number_cancel\"") && !page.contains("value=\"refund\""));
    let path = format!("/console/payments/{}/action", cp.id);
    // Without a valid CSRF token nothing happens.
    for bad in ["", "nope"] {
        let r = c
            .post(
                &path,
                &[("csrf", bad), ("op", "carrier_cancel"), ("confirm", "yes")],
            )
            .await;
        assert_eq!(r.status(), 403);
    }
    // Another merchant's admin cannot reach it (404, as for a payment that does not exist).
    let ou = user(&app, Some(&other.id), Role::Admin).await;
    let oc = Console::login(&app, &ou).await;
    let ocsrf = oc.csrf().await;
    let r = oc
        .post(
            &path,
            &[
                ("csrf", &ocsrf),
                ("op", "carrier_cancel"),
                ("confirm", "yes"),
            ],
        )
        .await;
    assert_eq!(r.status(), 404);
    // A general user of the same merchant sees no button and is refused.
    let g = user(&app, Some(&m.id), Role::General).await;
    let gc = Console::login(&app, &g).await;
    let (_, gpage) = gc.get(&format!("/console/payments/{}", cp.id)).await;
    assert!(!gpage.contains("carrier_cancel"));
    let gcsrf = gc.csrf().await;
    let r = gc
        .post(
            &path,
            &[
                ("csrf", &gcsrf),
                ("op", "carrier_cancel"),
                ("confirm", "yes"),
            ],
        )
        .await;
    assert_eq!(r.status(), 403);
    assert_eq!(status_of(&app, &cp.id).await, "completed");
    // The confirmation step, then the 取消.
    let r = c
        .post(&path, &[("csrf", &csrf), ("op", "carrier_cancel")])
        .await;
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    assert!(body.contains("キャリア決済の取消（全額返金）の確認") && body.contains("3,000円"));
    assert_eq!(status_of(&app, &cp.id).await, "completed");
    let r = c
        .post(
            &path,
            &[
                ("csrf", &csrf),
                ("op", "carrier_cancel"),
                ("confirm", "yes"),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(
        location(&r),
        format!("/console/payments/{}?done=carrier_cancel", cp.id)
    );
    let after = payments::get(&app.db, &cp.id).await.unwrap().unwrap();
    assert_eq!(
        (after.status.code(), after.refunded_amount),
        ("refunded", 3000)
    );
    let kinds: Vec<String> = payments::events(&app.db, &cp.id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds, ["payment.created", "payment.refunded"]);
    let (_, page) = c
        .get(&format!("/console/payments/{}?done=carrier_cancel", cp.id))
        .await;
    assert!(page.contains("キャリア決済を取消しました"));
    assert!(!page.contains("value=\"carrier_cancel\""));
    // Twice is refused in words, and the refusal is audited too.
    let r = c
        .post(
            &path,
            &[
                ("csrf", &csrf),
                ("op", "carrier_cancel"),
                ("confirm", "yes"),
            ],
        )
        .await;
    assert_eq!(r.status(), 409);
    let body = r.text().await.unwrap();
    assert!(
        body.contains("現在の決済ステータスではこの操作はできません。"),
        "{body}"
    );
    assert!(!body.contains("invalid_transition"));
    let lines = audit_details(&app, "payment.carrier_cancel", &cp.id).await;
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0], "ok completed -> refunded");
    assert!(
        lines[1].starts_with("refused refunded: 現在の決済ステータス"),
        "{lines:?}"
    );
    // A carrier payment not completed offers nothing and is refused.
    let pending = payment(&app, &m, "cr-2", "au", "awaiting_auth", 500).await;
    let (_, page) = c.get(&format!("/console/payments/{}", pending.id)).await;
    assert!(!page.contains("carrier_cancel"));
    let r = c
        .post(
            &format!("/console/payments/{}/action", pending.id),
            &[
                ("csrf", &csrf),
                ("op", "carrier_cancel"),
                ("confirm", "yes"),
            ],
        )
        .await;
    assert_eq!(r.status(), 409);
    assert_eq!(status_of(&app, &pending.id).await, "awaiting_auth");

    // --- konbini number cancel ---
    let kp = payment(&app, &m, "kb-1", "konbini", "awaiting_payment", 2000).await;
    set_deadline(&app, &kp.id).await;
    let (_, page) = c.get(&format!("/console/payments/{}", kp.id)).await;
    assert!(page.contains("value=\"number_cancel\"") && page.contains("支払番号を取消"));
    assert!(!page.contains("value=\"carrier_cancel\""));
    let kpath = format!("/console/payments/{}/action", kp.id);
    let r = c
        .post(&kpath, &[("op", "number_cancel"), ("confirm", "yes")])
        .await;
    assert_eq!(r.status(), 403);
    let r = oc
        .post(
            &kpath,
            &[
                ("csrf", &ocsrf),
                ("op", "number_cancel"),
                ("confirm", "yes"),
            ],
        )
        .await;
    assert_eq!(r.status(), 404);
    let r = gc
        .post(
            &kpath,
            &[
                ("csrf", &gcsrf),
                ("op", "number_cancel"),
                ("confirm", "yes"),
            ],
        )
        .await;
    assert_eq!(r.status(), 403);
    // The wrong action for the method is refused in words.
    let r = c
        .post(
            &kpath,
            &[
                ("csrf", &csrf),
                ("op", "carrier_cancel"),
                ("confirm", "yes"),
            ],
        )
        .await;
    assert_eq!(r.status(), 409);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("この決済ではこの操作はできません。"));
    assert_eq!(status_of(&app, &kp.id).await, "awaiting_payment");
    let r = c
        .post(
            &kpath,
            &[("csrf", &csrf), ("op", "number_cancel"), ("confirm", "yes")],
        )
        .await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    assert_eq!(status_of(&app, &kp.id).await, "expired");
    let r = c
        .post(
            &kpath,
            &[("csrf", &csrf), ("op", "number_cancel"), ("confirm", "yes")],
        )
        .await;
    assert_eq!(r.status(), 409);
    let lines = audit_details(&app, "payment.number_cancel", &kp.id).await;
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0], "ok awaiting_payment -> expired");
    // A paid number offers no cancel and refuses one.
    let paid = payment(&app, &m, "kb-2", "konbini", "paid", 2000).await;
    let (_, page) = c.get(&format!("/console/payments/{}", paid.id)).await;
    assert!(!page.contains("number_cancel"));
    let r = c
        .post(
            &format!("/console/payments/{}/action", paid.id),
            &[("csrf", &csrf), ("op", "number_cancel"), ("confirm", "yes")],
        )
        .await;
    assert_eq!(r.status(), 409);
    assert_eq!(status_of(&app, &paid.id).await, "paid");
    // A Pay-easy number is cancelled the same way.
    let pe = payment(&app, &m, "pe-1", "payeasy", "awaiting_payment", 4000).await;
    set_deadline(&app, &pe.id).await;
    let r = c
        .post(
            &format!("/console/payments/{}/action", pe.id),
            &[("csrf", &csrf), ("op", "number_cancel"), ("confirm", "yes")],
        )
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(status_of(&app, &pe.id).await, "expired");
}
both!(carrier_and_number_cancel_from_the_console);

/// Continuous-billing contracts: listed for their merchant only, cancelled from the detail page
/// (confirmation, CSRF, admin role), audited, refused twice in words and for another merchant.
async fn subscriptions_listed_and_cancelled(app: TestApp) {
    let m = app.merchant().await;
    let other = app.merchant().await;
    let first = payment(&app, &m, "sub-1", "softbank", "completed", 980).await;
    let mut tx = app.db.begin().await.unwrap();
    let sid = kakehashi::db::subscriptions::insert(
        &mut tx,
        &first,
        kakehashi::domain::carrier::Carrier::Softbank,
        "sbxsub_console",
        app.state.now_ms(),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let u = user(&app, Some(&m.id), Role::Admin).await;
    let c = Console::login(&app, &u).await;
    let csrf = c.csrf().await;
    let (s, list) = c.get("/console/subscriptions").await;
    assert_eq!(s, 200);
    assert!(list.contains(&sid) && list.contains("継続中") && list.contains("980円"));
    let (s, page) = c.get(&format!("/console/subscriptions/{sid}")).await;
    assert_eq!(s, 200);
    assert!(page.contains("解約する") && page.contains(&first.id));

    // Another merchant neither lists nor reaches it.
    let ou = user(&app, Some(&other.id), Role::Admin).await;
    let oc = Console::login(&app, &ou).await;
    let ocsrf = oc.csrf().await;
    let (_, olist) = oc.get("/console/subscriptions").await;
    assert!(!olist.contains(&sid));
    assert_eq!(
        oc.get(&format!("/console/subscriptions/{sid}")).await.0,
        404
    );
    let path = format!("/console/subscriptions/{sid}/cancel");
    let r = oc
        .post(&path, &[("csrf", &ocsrf), ("confirm", "yes")])
        .await;
    assert_eq!(r.status(), 404);
    // A general user sees no button and is refused; no CSRF token, nothing happens.
    let g = user(&app, Some(&m.id), Role::General).await;
    let gc = Console::login(&app, &g).await;
    let gcsrf = gc.csrf().await;
    let (_, gpage) = gc.get(&format!("/console/subscriptions/{sid}")).await;
    assert!(!gpage.contains("解約する"));
    let r = gc
        .post(&path, &[("csrf", &gcsrf), ("confirm", "yes")])
        .await;
    assert_eq!(r.status(), 403);
    let r = c.post(&path, &[("confirm", "yes")]).await;
    assert_eq!(r.status(), 403);
    let sub = |app: &TestApp| {
        let (db, sid) = (app.db.clone(), sid.clone());
        async move {
            kakehashi::db::subscriptions::get(&db, &sid)
                .await
                .unwrap()
                .unwrap()
                .status
        }
    };
    assert_eq!(sub(&app).await, "active");

    // Confirmation, then the cancel.
    let r = c.post(&path, &[("csrf", &csrf)]).await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("継続課金契約の解約の確認"));
    assert_eq!(sub(&app).await, "active");
    let r = c.post(&path, &[("csrf", &csrf), ("confirm", "yes")]).await;
    assert_eq!(r.status(), 303);
    assert_eq!(
        location(&r),
        format!("/console/subscriptions/{sid}?done=cancel")
    );
    assert_eq!(sub(&app).await, "cancelled");
    let events = payments::events(&app.db, &first.id).await.unwrap();
    let last = events.last().unwrap();
    assert_eq!(last.kind, "subscription.cancelled");
    assert_eq!(last.actor, format!("console:{}", u.email));
    let (_, page) = c
        .get(&format!("/console/subscriptions/{sid}?done=cancel"))
        .await;
    assert!(page.contains("解約しました") && page.contains("解約済"));
    assert!(!page.contains("解約する"));
    // Twice is refused in words.
    let r = c.post(&path, &[("csrf", &csrf), ("confirm", "yes")]).await;
    assert_eq!(r.status(), 409);
    let body = r.text().await.unwrap();
    assert!(
        body.contains("この継続課金契約はすでに解約されています。"),
        "{body}"
    );
    let lines = audit_details(&app, "subscription_contract.cancel", &sid).await;
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0], "ok active -> cancelled");
    assert!(lines[1].starts_with("refused cancelled: "), "{lines:?}");
}
both!(subscriptions_listed_and_cancelled);

async fn post(c: &Console, path: &str, f: Vec<(String, String)>) -> reqwest::Response {
    let f: Vec<(&str, &str)> = f.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    c.post(path, &f).await
}

/// SMS payment requests from the console: sent (through the sandbox SMS for a test merchant),
/// listed with their delivery, resent, cancelled after a confirmation; refused without CSRF, for
/// a general user, for another merchant's request, with a bad phone number (in words) and once
/// no longer open; every attempt audited.
async fn sms_payment_requests_from_the_console(app: TestApp) {
    let m = app.merchant().await;
    let other = app.merchant().await;
    let u = user(&app, Some(&m.id), Role::Admin).await;
    let c = Console::login(&app, &u).await;
    let csrf = c.csrf().await;
    let (s, page) = c.get("/console/payment-requests").await;
    assert_eq!(s, 200);
    assert!(page.contains("決済依頼はありません。") && page.contains("送信する"));
    let form = |csrf: &str, phone: &str| -> Vec<(String, String)> {
        vec![
            ("csrf".into(), csrf.into()),
            ("phone".into(), phone.into()),
            ("order_id".into(), "sms-1".into()),
            ("amount".into(), "3,300".into()),
            ("item_name".into(), "修理代金".into()),
        ]
    };
    // No CSRF token, a general user, a bad phone number: nothing is sent.
    let r = post(&c, "/console/payment-requests", form("", "090-1111-2222")).await;
    assert_eq!(r.status(), 403);
    let g = user(&app, Some(&m.id), Role::General).await;
    let gc = Console::login(&app, &g).await;
    let gcsrf = gc.csrf().await;
    let r = post(
        &gc,
        "/console/payment-requests",
        form(&gcsrf, "090-1111-2222"),
    )
    .await;
    assert_eq!(r.status(), 403);
    let r = post(&c, "/console/payment-requests", form(&csrf, "03-1234-5678")).await;
    assert_eq!(r.status(), 409);
    let body = r.text().await.unwrap();
    assert!(body.contains("電話番号は携帯電話の番号"), "{body}");
    assert!(!body.contains("invalid_phone"));
    assert_eq!(app.count("payment_requests").await, 0);

    let r = post(
        &c,
        "/console/payment-requests",
        form(&csrf, "090-1111-2222"),
    )
    .await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "/console/payment-requests?done=send");
    let reqs = kakehashi::db::payment_requests::list(&app.db, &m.id, 10)
        .await
        .unwrap();
    assert_eq!(reqs.len(), 1);
    let id = reqs[0].id.clone();
    assert_eq!(reqs[0].amount, 3300);
    let sms = kakehashi::sms::messages_of_request(&app.db, &id)
        .await
        .unwrap();
    assert_eq!(sms.len(), 1);
    assert_eq!(sms[0].status.code(), "sent");
    let (_, page) = c.get("/console/payment-requests?done=send").await;
    assert!(page.contains("送信しました") && page.contains(&id));
    assert!(page.contains("受付中") && page.contains("送信済") && page.contains("計1通"));

    // Another merchant's admin reaches nothing, even naming our merchant.
    let ou = user(&app, Some(&other.id), Role::Admin).await;
    let oc = Console::login(&app, &ou).await;
    let ocsrf = oc.csrf().await;
    let (_, opage) = oc
        .get(&format!("/console/payment-requests?merchant={}", m.id))
        .await;
    assert!(!opage.contains(&id));
    for op in ["resend", "cancel"] {
        let r = oc
            .post(
                &format!("/console/payment-requests/{id}/{op}"),
                &[("csrf", &ocsrf), ("merchant", &m.id), ("confirm", "yes")],
            )
            .await;
        assert_eq!(r.status(), 404, "{op}");
    }

    // Resend: a second SMS with the same link.
    let r = c
        .post(
            &format!("/console/payment-requests/{id}/resend"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(r.status(), 303);
    let sms = kakehashi::sms::messages_of_request(&app.db, &id)
        .await
        .unwrap();
    assert_eq!(sms.len(), 2);
    assert_eq!(sms[0].body, sms[1].body);
    let (_, page) = c.get("/console/payment-requests").await;
    assert!(page.contains("計2通"));

    // Cancel: confirmation, then the link stops working; resend and cancel are refused after.
    let cpath = format!("/console/payment-requests/{id}/cancel");
    let r = c.post(&cpath, &[("csrf", &csrf)]).await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("決済依頼の取消の確認"));
    let r = c.post(&cpath, &[("csrf", &csrf), ("confirm", "yes")]).await;
    assert_eq!(r.status(), 303);
    let (_, page) = c.get("/console/payment-requests").await;
    assert!(page.contains("取消済") && !page.contains(&format!("{id}/resend")));
    let short = app.get(&format!("/s/{}", reqs[0].code), UA_PC).await;
    assert!(short.status().is_client_error(), "{}", short.status());
    for op in ["resend", "cancel"] {
        let r = c
            .post(
                &format!("/console/payment-requests/{id}/{op}"),
                &[("csrf", &csrf), ("confirm", "yes")],
            )
            .await;
        assert_eq!(r.status(), 409, "{op}");
        assert!(r.text().await.unwrap().contains("受付中ではないため"));
    }
    assert_eq!(
        kakehashi::sms::messages_of_request(&app.db, &id)
            .await
            .unwrap()
            .len(),
        2
    );
    let sent = audit_details(&app, "payment_request.send", &id).await;
    assert_eq!(sent, ["ok -> open order=sms-1 amount=3300"]);
    let refused_send: i64 = kakehashi::on_db!(&app.db, c => sqlx::query_scalar(
        "SELECT COUNT(*) FROM console_audit WHERE action = 'payment_request.send' AND detail LIKE 'refused%'")
        .fetch_one(c).await).unwrap();
    assert_eq!(refused_send, 1);
    let resent = audit_details(&app, "payment_request.resend", &id).await;
    assert_eq!(resent.len(), 2, "{resent:?}");
    assert_eq!(resent[0], "ok open -> open");
    let cancelled = audit_details(&app, "payment_request.cancel", &id).await;
    assert_eq!(cancelled.len(), 2, "{cancelled:?}");
    assert_eq!(cancelled[0], "ok open -> cancelled");
}
both!(sms_payment_requests_from_the_console);
