//! Console user administration (admins: their merchant's users; operators: everyone) and the
//! enrolment page of a one-time link. Every change: role check, CSRF token, audit record with
//! the state before and after and the client address.

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};

use crate::console::auth::{self, Staff};
use crate::console::error::{ConsoleError, ConsoleResult};
use crate::console::views::Chrome;
use crate::console::views_admin::{self as v, InviteLine, UserLine};
use crate::console::{audit, invites, user_admin, users, Role};
use crate::db::console_invites;
use crate::domain::scope::Scope;
use crate::form;
use crate::routes::console::{fields, html};
use crate::routes::console_admin::admin_form;
use crate::state::AppState;
use crate::util::format_jst;

fn merchant_q(merchant: &str) -> String {
    if merchant.is_empty() {
        String::new()
    } else {
        format!(
            "?merchant={}",
            form_urlencoded::byte_serialize(merchant.as_bytes()).collect::<String>()
        )
    }
}

/// `GET /console/users`: users and open enrolment links (operators filter with `?merchant=`).
pub async fn list(
    State(state): State<AppState>,
    staff: Staff,
    RawQuery(q): RawQuery,
) -> ConsoleResult<Response> {
    user_admin::require_user_admin(&staff)?;
    let q = form::decode(q.unwrap_or_default().as_bytes(), encoding_rs::UTF_8);
    let merchant = match staff.scope().merchant() {
        Some(m) => m.to_owned(),
        None => form::get(&q, "merchant").trim().to_owned(),
    };
    let filter = Some(merchant.as_str()).filter(|m| !m.is_empty());
    let rows = crate::db::console_users::list(&state.db, filter).await?;
    let users = rows
        .iter()
        .map(|u| UserLine {
            id: u.id.clone(),
            email: u.email.clone(),
            merchant: u.merchant_id.clone().unwrap_or_else(|| "-".into()),
            role: u.role.label_ja(),
            role_code: u.role.code(),
            state: if u.disabled_at.is_some() {
                "無効"
            } else if u.password_hash.is_empty() {
                "再設定待ち"
            } else {
                "有効"
            },
            disabled: u.disabled_at.is_some(),
            last_sign_in: u
                .last_sign_in_at
                .map(format_jst)
                .unwrap_or_else(|| "-".into()),
            created: format_jst(u.created_at),
            manageable: user_admin::may_manage(&staff, u),
            role_editable: u.role != Role::Operator,
        })
        .collect();
    let invites = console_invites::list_open(&state.db, filter, staff.now)
        .await?
        .into_iter()
        .map(|i| InviteLine {
            id: i.id,
            email: i.email,
            merchant: i.merchant_id.unwrap_or_else(|| "-".into()),
            role: i.role.label_ja(),
            kind: if i.user_id.is_some() {
                "二段階認証の再設定"
            } else {
                "新規ユーザー"
            },
            created_by: i.created_by,
            expires: format_jst(i.expires_at),
        })
        .collect();
    let notice = match form::get(&q, "done") {
        "role" => Some("権限を変更しました。"),
        "disable" => Some("ユーザーを無効にしました。"),
        "enable" => Some("ユーザーを有効にしました。"),
        "revoke" => Some("招待リンクを取り消しました。"),
        _ => None,
    }
    .map(str::to_owned);
    let page = v::Users {
        c: Chrome::staff(&state, &staff),
        merchant,
        users,
        invites,
        roles: user_admin::invitable_roles(&staff)
            .into_iter()
            .map(|r| (r.code(), r.label_ja()))
            .collect(),
        notice,
    };
    html(StatusCode::OK, &page)
}

/// `POST /console/users/invite`: issues a one-time enrolment link, shown once.
pub async fn invite(
    State(state): State<AppState>,
    staff: Staff,
    headers: HeaderMap,
    body: Bytes,
) -> ConsoleResult<Response> {
    let f = admin_form(&state, &staff, &headers, &body)?;
    user_admin::require_user_admin(&staff)?;
    let role = Role::parse(form::get(&f, "role"))
        .filter(|r| user_admin::invitable_roles(&staff).contains(r))
        .ok_or_else(|| ConsoleError::Bad("権限が正しくありません。".into()))?;
    let merchant = match staff.scope().merchant() {
        Some(m) => Some(m.to_owned()),
        None => Some(form::get(&f, "merchant").trim().to_owned()).filter(|m| !m.is_empty()),
    };
    let email = form::get(&f, "email");
    let r = invites::invite(
        &state.db,
        &state.keys,
        &state.public_url,
        merchant.as_deref(),
        email,
        role,
        &staff.user.email,
        staff.now,
    )
    .await;
    let (target, detail) = match &r {
        Ok(i) => (
            i.id.clone(),
            format!("ok email={} role={}", i.email, role.code()),
        ),
        Err(e) => (String::new(), format!("refused email={email}: {e}")),
    };
    audit::staff(
        &state.db,
        &staff,
        merchant.as_deref(),
        "user.invite",
        &target,
        &detail,
    )
    .await?;
    let i = r?;
    let page = v::InviteLink {
        c: Chrome::staff(&state, &staff),
        title: "招待リンクを発行しました".into(),
        email: i.email,
        url: i.url,
        expires: format_jst(i.expires_at),
        back: format!(
            "/console/users{}",
            merchant_q(merchant.as_deref().unwrap_or(""))
        ),
    };
    html(StatusCode::OK, &page)
}

/// `POST /console/users/{id}/role`: admin ↔ general.
pub async fn role(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ConsoleResult<Response> {
    let f = admin_form(&state, &staff, &headers, &body)?;
    let u = user_admin::manageable(&state.db, &staff, &id).await?;
    let to = Role::parse(form::get(&f, "role"))
        .ok_or_else(|| ConsoleError::Bad("権限が正しくありません。".into()))?;
    let r = user_admin::set_role(&state.db, &u, to).await;
    done(&state, &staff, &u, "user.role", r, "role").await
}

/// Audits a change (done or refused) and returns to the list with a notice.
async fn done(
    state: &AppState,
    staff: &Staff,
    u: &users::UserRow,
    action: &str,
    r: ConsoleResult<String>,
    notice: &str,
) -> ConsoleResult<Response> {
    let detail = match &r {
        Ok(d) => format!("ok {}: {d}", u.email),
        Err(e) => format!("refused {}: {e}", u.email),
    };
    audit::staff(
        &state.db,
        staff,
        u.merchant_id.as_deref(),
        action,
        &u.id,
        &detail,
    )
    .await?;
    r?;
    let m = staff
        .scope()
        .merchant()
        .map_or_else(|| u.merchant_id.clone().unwrap_or_default(), str::to_owned);
    let sep = if m.is_empty() { "?" } else { "&" };
    Ok(Redirect::to(&format!(
        "/console/users{}{sep}done={notice}",
        merchant_q(&m)
    ))
    .into_response())
}

/// `POST /console/users/{id}/disable`: the user is signed out and cannot sign in.
pub async fn disable(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ConsoleResult<Response> {
    admin_form(&state, &staff, &headers, &body)?;
    let u = user_admin::manageable(&state.db, &staff, &id).await?;
    let r = user_admin::set_disabled(&state.db, &u, true, staff.now).await;
    done(&state, &staff, &u, "user.disable", r, "disable").await
}

/// `POST /console/users/{id}/enable`.
pub async fn enable(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ConsoleResult<Response> {
    admin_form(&state, &staff, &headers, &body)?;
    let u = user_admin::manageable(&state.db, &staff, &id).await?;
    let r = user_admin::set_disabled(&state.db, &u, false, staff.now).await;
    done(&state, &staff, &u, "user.enable", r, "enable").await
}

/// `POST /console/users/{id}/reset-totp`: after a confirmation page, the user is signed out,
/// cannot sign in, and gets a new enrolment link (new password and new TOTP), shown once.
pub async fn reset_totp(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ConsoleResult<Response> {
    let f = admin_form(&state, &staff, &headers, &body)?;
    let u = user_admin::manageable(&state.db, &staff, &id).await?;
    if form::get(&f, "confirm") != "yes" {
        let page = crate::console::views::Confirm {
            c: Chrome::staff(&state, &staff),
            title: "二段階認証の再設定の確認".into(),
            lines: vec![
                format!("ユーザー: {}", u.email),
                "このユーザーはすぐにログアウトされ、新しい登録リンクで パスワードと二段階認証を設定するまでログインできません。".into(),
            ],
            action: format!("/console/users/{id}/reset-totp"),
            fields: vec![],
            back: "/console/users".into(),
        };
        return html(StatusCode::OK, &page);
    }
    let r = invites::reset_totp(
        &state.db,
        &state.keys,
        &state.public_url,
        &u,
        &staff.user.email,
        staff.now,
    )
    .await;
    let detail = match &r {
        Ok(i) => format!("ok {}: enrolled -> reset (link {})", u.email, i.id),
        Err(e) => format!("refused {}: {e}", u.email),
    };
    audit::staff(
        &state.db,
        &staff,
        u.merchant_id.as_deref(),
        "user.reset_totp",
        &u.id,
        &detail,
    )
    .await?;
    let i = r?;
    let page = v::InviteLink {
        c: Chrome::staff(&state, &staff),
        title: "二段階認証の再設定リンクを発行しました".into(),
        email: i.email,
        url: i.url,
        expires: format_jst(i.expires_at),
        back: "/console/users".into(),
    };
    html(StatusCode::OK, &page)
}

/// `POST /console/invites/{id}/revoke`.
pub async fn revoke(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ConsoleResult<Response> {
    admin_form(&state, &staff, &headers, &body)?;
    let i = console_invites::get(&state.db, &id)
        .await?
        .filter(|i| match staff.scope() {
            Scope::All => true,
            Scope::Merchant(m) => i.merchant_id.as_deref() == Some(m.as_str()),
            // Owner staff manage no users (see `user_admin`).
            Scope::Owner(_) => false,
        })
        .ok_or(ConsoleError::NotFound)?;
    let ok = console_invites::revoke(&state.db, &i.id, staff.now).await?;
    audit::staff(
        &state.db,
        &staff,
        i.merchant_id.as_deref(),
        "user.invite_revoke",
        &i.id,
        &format!(
            "{} {}: open -> revoked",
            if ok { "ok" } else { "refused" },
            i.email
        ),
    )
    .await?;
    if !ok {
        return Err(ConsoleError::Conflict(
            "この招待リンクは既に使われたか、取り消されています。".into(),
        ));
    }
    let m = staff
        .scope()
        .merchant()
        .map_or_else(|| i.merchant_id.clone().unwrap_or_default(), str::to_owned);
    let sep = if m.is_empty() { "?" } else { "&" };
    Ok(Redirect::to(&format!("/console/users{}{sep}done=revoke", merchant_q(&m))).into_response())
}

/// The CSRF token of an enrolment form: bound to the link (whoever can post it holds the link).
fn enrol_csrf(state: &AppState, token: &str) -> String {
    auth::csrf(
        &state.secret,
        &format!("enrol:{}", invites::token_hash(token)),
    )
}

fn gone() -> ConsoleError {
    ConsoleError::Bad(
        "この登録リンクは無効か、有効期限が切れています。管理者に新しいリンクを依頼してください。"
            .into(),
    )
}

fn enrol_page(
    state: &AppState,
    token: &str,
    i: &console_invites::InviteRow,
    status: StatusCode,
    error: Option<String>,
) -> ConsoleResult<Response> {
    let page = v::Enrol {
        c: Chrome::anon(state, enrol_csrf(state, token)),
        token: token.to_owned(),
        email: i.email.clone(),
        secret: invites::secret(&state.keys, i)?,
        reset: i.user_id.is_some(),
        error,
    };
    let mut r = html(status, &page)?;
    // The page holds a secret: never cached.
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    Ok(r)
}

/// `GET /console/enrol/{token}`: the enrolment page of an open link.
pub async fn enrol_get(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> ConsoleResult<Response> {
    let i = invites::open(&state.db, &token, state.now_ms())
        .await?
        .ok_or_else(gone)?;
    enrol_page(&state, &token, &i, StatusCode::OK, None)
}

/// `GET /console/enrol/{token}/qr.svg`: the link's otpauth URL as a QR code.
pub async fn enrol_qr(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> ConsoleResult<Response> {
    let i = invites::open(&state.db, &token, state.now_ms())
        .await?
        .ok_or(ConsoleError::NotFound)?;
    let url = invites::otpauth_url(&state.keys, &i)?;
    let svg = qrcode::QrCode::new(url.as_bytes())
        .map_err(|e| anyhow::anyhow!("qr: {e}"))?
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(200, 200)
        .build();
    Ok((
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        svg,
    )
        .into_response())
}

/// `POST /console/enrol/{token}`: sets the password and confirms the authenticator in one step.
pub async fn enrol_post(
    State(state): State<AppState>,
    ci: ConnectInfo<std::net::SocketAddr>,
    Path(token): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ConsoleResult<Response> {
    let now = state.now_ms();
    let i = invites::open(&state.db, &token, now)
        .await?
        .ok_or_else(gone)?;
    let f = fields(&headers, &body);
    if !auth::csrf_ok(
        &state.secret,
        &format!("enrol:{}", invites::token_hash(&token)),
        form::get(&f, "csrf"),
    ) {
        return Err(ConsoleError::BadCsrf);
    }
    let r = invites::enrol(
        &state.db,
        &state.keys,
        &i,
        form::get(&f, "password"),
        form::get(&f, "password2"),
        form::get(&f, "code"),
        now,
    )
    .await;
    let ip = ci.0.ip().to_string();
    let user_id = match &r {
        Ok(id) => Some(id.as_str()),
        Err(_) => i.user_id.as_deref(),
    };
    audit::write(
        &state.db,
        &audit::Entry {
            user_id,
            email: &i.email,
            merchant_id: i.merchant_id.as_deref(),
            action: "user.enrol",
            target: &i.id,
            detail: &match &r {
                Ok(_) => format!("ok role={}", i.role.code()),
                Err(e) => format!("refused: {e}"),
            },
            ip: &ip,
        },
        now,
    )
    .await?;
    match r {
        Ok(_) => Ok(Redirect::to("/console/login?enrolled=1").into_response()),
        Err(ConsoleError::Bad(m)) => {
            enrol_page(&state, &token, &i, StatusCode::BAD_REQUEST, Some(m))
        }
        Err(ConsoleError::NotFound) => Err(gone()),
        Err(e) => Err(e),
    }
}
