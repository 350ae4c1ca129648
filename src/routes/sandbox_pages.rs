//! The sandbox bank, carrier and wallet pages (test mode): what a real bank's, wallet's or
//! carrier's page would do, served by us at the URLs the sandbox connectors redirect to (bank and
//! wallet: one generic page over `flows::redirect`). Neutral grey, bannered as
//! test pages, and without the merchant's theme so nobody mistakes them for the real thing.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use encoding_rs::UTF_8;

use crate::connectors::carrier::SandboxDecision;
use crate::connectors::redirect::{SandboxChoice, SandboxInstitution};
use crate::device::page_encoding;
use crate::device::{Device, Ua};
use crate::domain::redirect::Institution;
use crate::error::{AppError, AppResult, Reason};
use crate::flows::carrier;
use crate::flows::redirect::{self, RedirectMethod, SandboxSession};
use crate::form;
use crate::pages::{Choice, SandboxCarrierPage, SandboxCopy, WebSandboxInstitution};
use crate::render;
use crate::session::Session;
use crate::state::AppState;
use crate::util::format_yen;

/// CSRF token of a sandbox page: bound to its connector session (no cookie needed, so feature
/// phones work too).
fn csrf(state: &AppState, session: &str) -> String {
    Session::csrf(&format!("sandbox|{session}"), &state.secret)
}

fn csrf_ok(state: &AppState, session: &str, given: &str) -> bool {
    Session::csrf_ok(&format!("sandbox|{session}"), &state.secret, given)
}

fn redirect_view<M: RedirectMethod>(
    state: &AppState,
    s: &SandboxSession<M::Institution>,
    session: &str,
    left: bool,
) -> WebSandboxInstitution
where
    M::Institution: SandboxCopy,
{
    WebSandboxInstitution {
        app_css: state.app_css.to_string(),
        title_name: s.institution.sandbox_title(),
        banner_ja: <M::Institution as SandboxCopy>::BANNER_JA,
        banner_en: <M::Institution as SandboxCopy>::BANNER_EN,
        heading: s.institution.sandbox_heading(),
        item_name: s.checkout.item_name.clone(),
        amount: format_yen(s.payment.amount),
        action: format!(
            "/sandbox/{}/{}/{session}",
            <M::Institution as SandboxInstitution>::PAGE,
            s.institution.code()
        ),
        csrf: csrf(state, session),
        choices: SandboxChoice::ALL
            .into_iter()
            .enumerate()
            .map(|(i, c)| Choice {
                value: c.code(),
                label: c.label_ja().to_owned(),
                accesskey: i + 1,
            })
            .collect(),
        left,
    }
}

/// `GET /sandbox/{bank,wallet}/{code}/{session}`: approve, decline or walk away.
pub async fn page<M: RedirectMethod>(
    State(state): State<AppState>,
    Path((code, session)): Path<(String, String)>,
) -> AppResult<Response>
where
    M::Institution: SandboxCopy,
{
    let s = redirect::sandbox_session::<M>(&state, &code, &session).await?;
    render::page(Device::Pc, &redirect_view::<M>(&state, &s, &session, false))
}

/// `POST /sandbox/{bank,wallet}/{code}/{session}`: the button pressed.
pub async fn post<M: RedirectMethod>(
    State(state): State<AppState>,
    Path((code, session)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> AppResult<Response>
where
    M::Institution: SandboxCopy,
{
    let fields = form::parse_body(&headers, &body, UTF_8);
    if !csrf_ok(&state, &session, form::get(&fields, "csrf")) {
        return Err(AppError::shopper(Reason::BadCsrf));
    }
    let choice = SandboxChoice::parse(form::get(&fields, "choice"))
        .ok_or(AppError::field(Reason::InvalidField, "choice"))?;
    let s = redirect::sandbox_session::<M>(&state, &code, &session).await?;
    match redirect::sandbox_decide::<M>(&state, &s, choice) {
        Some(url) => Ok(Redirect::to(&url).into_response()),
        None => render::page(Device::Pc, &redirect_view::<M>(&state, &s, &session, true)),
    }
}

fn render_carrier(
    state: &AppState,
    device: Device,
    s: &carrier::SandboxSession,
    session: &str,
    confirm: bool,
    error: Option<&'static str>,
    phone: &str,
) -> AppResult<Response> {
    let carrier_name = s.carrier.name_ja();
    let item_name = s.checkout.item_name.clone();
    let amount = format_yen(s.payment.amount);
    let billing_label = s.billing.label_ja();
    let action = format!("/sandbox/carrier/{}/{session}", s.carrier.code());
    let csrf = csrf(state, session);
    let phone = phone.to_owned();
    SandboxCarrierPage {
        app_css: if device == Device::FeaturePhone {
            String::new()
        } else {
            state.app_css.to_string()
        },
        carrier_name,
        item_name,
        amount,
        billing_label,
        action,
        csrf,
        confirm,
        error,
        phone,
    }
    .render(device, axum::http::StatusCode::OK)
}

/// `GET /sandbox/carrier/{carrier}/{session}`: the login form (or the 承認 step after login).
pub async fn carrier_page(
    State(state): State<AppState>,
    ua: Ua,
    Path((carrier_code, session)): Path<(String, String)>,
) -> AppResult<Response> {
    let s = carrier::sandbox_session(&state, &carrier_code, &session).await?;
    render_carrier(&state, ua.device, &s, &session, s.logged_in, None, "")
}

pub async fn carrier_post(
    State(state): State<AppState>,
    ua: Ua,
    Path((carrier_code, session)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> AppResult<Response> {
    let fields = form::parse_body(&headers, &body, page_encoding(ua.device));
    if !csrf_ok(&state, &session, form::get(&fields, "csrf")) {
        return Err(AppError::shopper(Reason::BadCsrf));
    }
    let s = carrier::sandbox_session(&state, &carrier_code, &session).await?;
    match (form::get(&fields, "step"), form::get(&fields, "decision")) {
        ("login", _) => {
            let phone = form::get(&fields, "phone");
            match carrier::sandbox_login(&state, &s, phone, form::get(&fields, "password")).await? {
                carrier::LoginStep::Again(msg) => {
                    render_carrier(&state, ua.device, &s, &session, false, Some(msg), phone)
                }
                carrier::LoginStep::Confirm => {
                    render_carrier(&state, ua.device, &s, &session, true, None, "")
                }
                carrier::LoginStep::Redirect(url) => Ok(Redirect::to(&url).into_response()),
            }
        }
        ("decide", "approve") if s.logged_in => {
            let url = carrier::sandbox_return(&state, &s, SandboxDecision::Approve);
            Ok(Redirect::to(&url).into_response())
        }
        // Approving needs a login first (the form may have been replayed).
        ("decide", "approve") => render_carrier(
            &state,
            ua.device,
            &s,
            &session,
            false,
            Some("先にログインしてください。"),
            "",
        ),
        ("decide", "cancel") => {
            let url = carrier::sandbox_return(&state, &s, SandboxDecision::Cancel);
            Ok(Redirect::to(&url).into_response())
        }
        _ => Err(AppError::shopper(Reason::BadRequest)),
    }
}
