//! Merchant console handlers: sign-in (password, then TOTP), payment list, detail and CSV.
//! Actions, settings, summary and audit are in `console_admin.rs`.

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Path, RawQuery, Request, State};

use crate::routes::shopper::ClientAddr;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use encoding_rs::UTF_8;

use crate::console::auth::{self, Staff, LOGIN_COOKIE, SESSION_COOKIE};
use crate::console::error::{ConsoleError, ConsoleErrorInfo, ConsoleResult};
use crate::console::search::{Filter, SortCol};
use crate::console::users;
use crate::console::views::{self, Choice, Chrome, RowView, SortLink};
use crate::console::{audit, csv_export};
use crate::db::payments;
use crate::device::Device;
use crate::domain::payment::PaymentStatus;
use crate::domain::Method;
use crate::form;
use crate::state::AppState;

/// Renders a console page (UTF-8 HTML).
pub fn html<T: askama::Template>(status: StatusCode, t: &T) -> ConsoleResult<Response> {
    let body = t.render().map_err(|e| anyhow::anyhow!("template: {e}"))?;
    Ok(crate::render::html_response(Device::Pc, status, body))
}

/// Renders console errors as console pages (the handler's `IntoResponse` has no state).
pub async fn render_errors(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    let Some(info) = resp.extensions().get::<ConsoleErrorInfo>().cloned() else {
        return resp;
    };
    let page = views::ErrorPage {
        c: Chrome::anon(&state, String::new()),
        status: info.status.as_u16(),
        message: info.message,
    };
    let mut r = html(info.status, &page).unwrap_or_else(|_| (info.status, "error").into_response());
    // The rate limit's hint survives the re-render.
    if let Some(v) = resp.headers().get(header::RETRY_AFTER) {
        r.headers_mut().insert(header::RETRY_AFTER, v.clone());
    }
    r
}

pub fn fields(headers: &HeaderMap, body: &Bytes) -> Vec<(String, String)> {
    form::parse_body(headers, body, UTF_8)
}

fn query_fields(q: Option<String>) -> Vec<(String, String)> {
    form::decode(q.unwrap_or_default().as_bytes(), UTF_8)
}

fn with_cookie(mut r: Response, c: HeaderValue) -> Response {
    r.headers_mut().append(header::SET_COOKIE, c);
    r
}

fn ip(ci: &ClientAddr) -> String {
    ci.0.to_string()
}

/// Per-client-address limit of sign-in attempts (password and code posts), one per app.
pub type SignInLimiter = governor::DefaultKeyedRateLimiter<std::net::IpAddr>;

/// The sign-in limiter and the proxies whose forwarded client address it believes.
#[derive(Clone)]
pub struct SignInLimit {
    pub limiter: std::sync::Arc<SignInLimiter>,
    pub trusted_proxies: std::sync::Arc<[crate::client_addr::Cidr]>,
}

/// Addresses remembered by the limiter past which stale ones are forgotten.
const LIMITER_KEYS: usize = 10_000;

/// A limiter allowing `per_minute` attempts per address per minute (at most that many at once).
pub fn sign_in_limiter(per_minute: u32) -> std::sync::Arc<SignInLimiter> {
    let n = std::num::NonZeroU32::new(per_minute.max(1)).unwrap_or(std::num::NonZeroU32::MIN);
    std::sync::Arc::new(governor::RateLimiter::keyed(governor::Quota::per_minute(n)))
}

/// Middleware on the sign-in posts: past the address's rate, answers 429 (a console page, with
/// `Retry-After`) before any password hashing or database work.
pub async fn limit_sign_in(
    State(limit): State<SignInLimit>,
    ci: ConnectInfo<std::net::SocketAddr>,
    req: Request,
    next: Next,
) -> Response {
    if req.method() != axum::http::Method::POST {
        return next.run(req).await;
    }
    let limiter = &limit.limiter;
    let client = crate::client_addr::client_ip(ci.0.ip(), req.headers(), &limit.trusted_proxies);
    if limiter.len() > LIMITER_KEYS {
        limiter.retain_recent();
        limiter.shrink_to_fit();
    }
    match limiter.check_key(&client) {
        Ok(()) => next.run(req).await,
        Err(not_until) => {
            let wait = not_until
                .wait_time_from(governor::clock::Clock::now(
                    &governor::clock::DefaultClock::default(),
                ))
                .as_secs()
                .max(1);
            let status = StatusCode::TOO_MANY_REQUESTS;
            let message =
                "ログインの試行が多すぎます。しばらくしてからもう一度お試しください。".to_owned();
            tracing::warn!(ip = %client, "console sign-in rate limit");
            let mut r = (status, message.clone()).into_response();
            r.extensions_mut()
                .insert(ConsoleErrorInfo { status, message });
            if let Ok(v) = HeaderValue::from_str(&wait.to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            r
        }
    }
}

pub async fn home() -> Redirect {
    Redirect::to("/console/payments")
}

async fn login_page(
    state: &AppState,
    status: StatusCode,
    email: &str,
    error: Option<String>,
    enrolled: bool,
) -> ConsoleResult<Response> {
    let nonce = crate::util::random_secret("");
    let page = views::Login {
        c: Chrome::anon(state, auth::csrf(&state.secret, &format!("login:{nonce}"))),
        email: email.to_owned(),
        error,
        enrolled,
    };
    let r = html(status, &page)?;
    Ok(with_cookie(
        r,
        auth::cookie(LOGIN_COOKIE, &nonce, "/console/login", false),
    ))
}

pub async fn login_get(
    State(state): State<AppState>,
    RawQuery(q): RawQuery,
) -> ConsoleResult<Response> {
    let enrolled = form::get(&query_fields(q), "enrolled") == "1";
    login_page(&state, StatusCode::OK, "", None, enrolled).await
}

pub async fn login_post(
    State(state): State<AppState>,
    ci: ClientAddr,
    headers: HeaderMap,
    body: Bytes,
) -> ConsoleResult<Response> {
    let f = fields(&headers, &body);
    let nonce = auth::read_cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    if nonce.is_empty()
        || !auth::csrf_ok(
            &state.secret,
            &format!("login:{nonce}"),
            form::get(&f, "csrf"),
        )
    {
        return Err(ConsoleError::BadCsrf);
    }
    let email = form::get(&f, "email").trim().to_owned();
    let entry = |action: &'static str, u: Option<&users::UserRow>| {
        let ip = ip(&ci);
        let (uid, mid) = (
            u.map(|u| u.id.clone()),
            u.and_then(|u| u.merchant_id.clone()),
        );
        let (db, email, now) = (state.db.clone(), email.clone(), state.now_ms());
        async move {
            audit::write(
                &db,
                &audit::Entry {
                    user_id: uid.as_deref(),
                    email: &email,
                    merchant_id: mid.as_deref(),
                    action,
                    target: "",
                    detail: "",
                    ip: &ip,
                },
                now,
            )
            .await
        }
    };
    let password = form::get(&f, "password");
    match auth::check_password(&state.db, &email, password, &ip(&ci), state.now_ms()).await? {
        Ok(u) => {
            let sid =
                auth::create_session(&state.db, &u.id, "totp", &ip(&ci), state.now_ms()).await?;
            entry("login.password_ok", Some(&u)).await?;
            let r = Redirect::to("/console/login/totp").into_response();
            Ok(with_cookie(
                r,
                auth::cookie(SESSION_COOKIE, &sid, "/console", false),
            ))
        }
        Err((auth::LoginError::Locked, u)) => {
            entry("login.locked", u.as_ref()).await?;
            let msg = "ログインに続けて失敗したため、アカウントを30分間ロックしました。".to_owned();
            login_page(
                &state,
                StatusCode::TOO_MANY_REQUESTS,
                &email,
                Some(msg),
                false,
            )
            .await
        }
        Err((auth::LoginError::Invalid, u)) => {
            entry("login.failed", u.as_ref()).await?;
            let msg = "メールアドレスまたはパスワードが正しくありません。".to_owned();
            login_page(&state, StatusCode::UNAUTHORIZED, &email, Some(msg), false).await
        }
    }
}

/// The half-signed-in session (password passed, code pending).
async fn totp_session(
    state: &AppState,
    headers: &HeaderMap,
) -> ConsoleResult<(String, users::UserRow)> {
    let sid = auth::read_cookie(headers, SESSION_COOKIE).ok_or(ConsoleError::Login)?;
    let idle = state.config.console_idle_s.saturating_mul(1000);
    match auth::load_session(&state.db, &sid, idle, state.now_ms()).await? {
        Some((s, u)) if s.stage == "totp" => Ok((sid, u)),
        _ => Err(ConsoleError::Login),
    }
}

/// The code step. It never shows the TOTP secret: secrets are shown only on the enrolment page
/// of a one-time link (with the password set there), or printed once by `kakehashi user add`,
/// so a password alone never reveals the second factor (issue 20).
fn totp_page(
    state: &AppState,
    sid: &str,
    status: StatusCode,
    error: Option<String>,
) -> ConsoleResult<Response> {
    let page = views::Totp {
        c: Chrome::anon(state, auth::csrf(&state.secret, sid)),
        error,
    };
    html(status, &page)
}

pub async fn totp_get(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> ConsoleResult<Response> {
    let (sid, _) = totp_session(&state, &headers).await?;
    totp_page(&state, &sid, StatusCode::OK, None)
}

pub async fn totp_post(
    State(state): State<AppState>,
    ci: ClientAddr,
    headers: HeaderMap,
    body: Bytes,
) -> ConsoleResult<Response> {
    let (sid, u) = totp_session(&state, &headers).await?;
    let f = fields(&headers, &body);
    if !auth::csrf_ok(&state.secret, &sid, form::get(&f, "csrf")) {
        return Err(ConsoleError::BadCsrf);
    }
    let entry = |action: &'static str| audit::Entry {
        user_id: Some(&u.id),
        email: &u.email,
        merchant_id: u.merchant_id.as_deref(),
        action,
        target: "",
        detail: "",
        ip: "",
    };
    let ipaddr = ip(&ci);
    let outcome = auth::check_totp(
        &state.db,
        &state.keys,
        &u,
        form::get(&f, "code"),
        &ipaddr,
        state.now_ms(),
    )
    .await?;
    if outcome != auth::TotpOutcome::Accepted {
        audit::write(
            &state.db,
            &audit::Entry {
                ip: &ipaddr,
                ..entry("login.code_failed")
            },
            state.now_ms(),
        )
        .await?;
        if outcome == auth::TotpOutcome::Locked {
            auth::delete_session(&state.db, &sid).await?;
            let msg = "ログインに続けて失敗したため、アカウントを30分間ロックしました。".to_owned();
            return login_page(
                &state,
                StatusCode::TOO_MANY_REQUESTS,
                &u.email,
                Some(msg),
                false,
            )
            .await;
        }
        return totp_page(
            &state,
            &sid,
            StatusCode::UNAUTHORIZED,
            Some("確認コードが正しくありません。".into()),
        );
    }
    // A new session id at privilege change, so a planted pre-login id is worth nothing.
    auth::delete_session(&state.db, &sid).await?;
    let full = auth::create_session(&state.db, &u.id, "full", &ipaddr, state.now_ms()).await?;
    audit::write(
        &state.db,
        &audit::Entry {
            ip: &ipaddr,
            ..entry("login")
        },
        state.now_ms(),
    )
    .await?;
    let r = Redirect::to("/console/payments").into_response();
    Ok(with_cookie(
        r,
        auth::cookie(SESSION_COOKIE, &full, "/console", false),
    ))
}

pub async fn logout(
    State(state): State<AppState>,
    staff: Staff,
    headers: HeaderMap,
    body: Bytes,
) -> ConsoleResult<Response> {
    staff.check_csrf(&state.secret, form::get(&fields(&headers, &body), "csrf"))?;
    auth::delete_session(&state.db, &staff.sid).await?;
    audit::staff(&state.db, &staff, None, "logout", "", "").await?;
    let r = Redirect::to("/console/login").into_response();
    Ok(with_cookie(
        r,
        auth::cookie(SESSION_COOKIE, "", "/console", true),
    ))
}

/// The filter of a list/CSV request, limited to the user's scope; operators and owner staff
/// may name one merchant (a merchant outside the scope matches nothing: the scope is in SQL).
pub(crate) fn filter_of(staff: &Staff, q: &[(String, String)]) -> Result<Filter, String> {
    let merchant = match staff.scope().merchant() {
        Some(m) => Some(m.to_owned()),
        None => Some(form::get(q, "merchant").trim().to_owned()).filter(|m| !m.is_empty()),
    };
    Filter::parse(q, staff.scope().clone(), merchant)
}

pub async fn list(
    State(state): State<AppState>,
    staff: Staff,
    RawQuery(q): RawQuery,
) -> ConsoleResult<Response> {
    let q = query_fields(q);
    let (f, error) = match filter_of(&staff, &q) {
        Ok(f) => (f, None),
        Err(e) => (filter_of(&staff, &[]).map_err(ConsoleError::Bad)?, Some(e)),
    };
    let after = f
        .cursor(form::get(&q, "after"))
        .map_err(ConsoleError::Bad)?;
    let (rows, next) = crate::console::search::page(&state.db, &f, after.as_ref(), 50).await?;
    let merchant = if staff.scope().is_multi() {
        f.merchant_id.clone().unwrap_or_default()
    } else {
        String::new()
    };
    let tenants = tenant_choices(&state, &staff, &merchant).await?;
    let mq = if merchant.is_empty() {
        String::new()
    } else {
        format!(
            "merchant={}&",
            form_urlencoded::byte_serialize(merchant.as_bytes()).collect::<String>()
        )
    };
    let base = f.query();
    let sorts = SortCol::ALL
        .into_iter()
        .map(|col| {
            let mut g = f.clone();
            g.desc = if g.sort == col { !f.desc } else { true };
            g.sort = col;
            SortLink {
                label: col.label_ja(),
                href: format!("/console/payments?{mq}{}", g.query()),
                aria: match (f.sort == col, f.desc) {
                    (false, _) => "none",
                    (true, true) => "descending",
                    (true, false) => "ascending",
                },
            }
        })
        .collect();
    let methods = Method::ALL
        .iter()
        .map(|m| Choice {
            code: m.code().into(),
            label: m.name_ja().into(),
            selected: f.has_method(m.code()),
        })
        .collect();
    let statuses = PaymentStatus::all_codes()
        .into_iter()
        .map(|s| Choice {
            code: s.into(),
            label: PaymentStatus::label_for_code(s).unwrap_or(s).into(),
            selected: f.status == s,
        })
        .collect();
    let saved = crate::console::saved_searches::list(&state.db, &staff)
        .await?
        .into_iter()
        .map(|s| views::SavedView {
            href: format!("/console/payments?{}", s.query),
            id: s.id,
            name: s.name,
        })
        .collect();
    let mut filter_fields: Vec<(String, String)> = form_urlencoded::parse(base.as_bytes())
        .into_owned()
        .collect();
    if !merchant.is_empty() {
        filter_fields.push(("merchant".into(), merchant.clone()));
    }
    let notice = match form::get(&q, "saved") {
        "1" => Some("検索条件を保存しました。".to_owned()),
        _ => None,
    };
    let page = views::Payments {
        c: Chrome::staff(&state, &staff),
        filter_fields,
        saved,
        notice,
        merchant,
        tenants,
        methods,
        statuses,
        sorts,
        rows: rows.iter().map(RowView::new).collect(),
        next: next.map(|c| format!("/console/payments?{mq}{base}&after={}", f.encode_cursor(&c))),
        first: after.map(|_| format!("/console/payments?{mq}{base}")),
        csv_query: format!("{mq}{base}"),
        f,
        error,
    };
    html(StatusCode::OK, &page)
}

pub async fn csv(
    State(state): State<AppState>,
    staff: Staff,
    RawQuery(q): RawQuery,
) -> ConsoleResult<Response> {
    let q = query_fields(q);
    let f = filter_of(&staff, &q).map_err(ConsoleError::Bad)?;
    let enc = csv_export::Encoding::parse(form::get(&q, "enc"))
        .ok_or_else(|| ConsoleError::Bad("文字コードが正しくありません。".into()))?;
    audit::staff(
        &state.db,
        &staff,
        f.merchant_id.as_deref(),
        "csv.download",
        "",
        &f.query(),
    )
    .await?;
    let body = Body::from_stream(csv_export::stream(state.db.clone(), f, enc));
    let name = format!(
        "payments-{}.csv",
        crate::util::format_jst(staff.now).replace(['/', ' ', ':'], "")
    );
    Ok((
        [
            (header::CONTENT_TYPE, enc.content_type().to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        body,
    )
        .into_response())
}

/// Loads a payment the user may see (the scope is part of the query).
pub async fn visible_payment(
    state: &AppState,
    staff: &Staff,
    id: &str,
) -> ConsoleResult<payments::PaymentRow> {
    payments::get_in(&state.db, staff.scope(), id)
        .await?
        .ok_or(ConsoleError::NotFound)
}

/// The merchant picker of owner staff (their tenants, `selected` marked); empty for operators
/// (who type an id: there may be thousands of merchants) and merchant staff.
pub(crate) async fn tenant_choices(
    state: &AppState,
    staff: &Staff,
    selected: &str,
) -> ConsoleResult<Vec<Choice>> {
    if !matches!(staff.scope(), crate::domain::scope::Scope::Owner(_)) {
        return Ok(Vec::new());
    }
    Ok(
        crate::db::owners::merchants_in_scope(&state.db, staff.scope())
            .await?
            .into_iter()
            .map(|m| Choice {
                selected: m.id == selected,
                label: format!("{}（{}）", m.name, m.id),
                code: m.id,
            })
            .collect(),
    )
}

pub async fn detail(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> ConsoleResult<Response> {
    let p = visible_payment(&state, &staff, &id).await?;
    let page = crate::console::detail::build(&state, &staff, &p, query_fields(q)).await?;
    html(StatusCode::OK, &page)
}
