//! The sandbox bank, carrier and wallet pages (test mode): what a real bank's or carrier's page would
//! do, served by us at the URLs the sandbox connectors redirect to. Neutral grey, bannered as
//! test pages, and without the merchant's theme so nobody mistakes them for the real thing.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use encoding_rs::UTF_8;

use crate::connectors::bank::SandboxBankChoice;
use crate::connectors::carrier::SandboxDecision;
use crate::connectors::wallet::SandboxWalletChoice;
use crate::device::page_encoding;
use crate::device::{Device, Ua};
use crate::error::{AppError, AppResult, Reason};
use crate::flows::{bank, carrier, wallet};
use crate::form;
use crate::pages::{Choice, SandboxCarrierPage, WebSandboxBank, WebSandboxWallet};
use crate::render::page;
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

fn bank_view(
    state: &AppState,
    s: &bank::SandboxSession,
    session: &str,
    left: bool,
) -> WebSandboxBank {
    WebSandboxBank {
        app_css: state.app_css.to_string(),
        bank_name: s.bank.name_ja(),
        bank_code: s.bank.code(),
        item_name: s.checkout.item_name.clone(),
        amount: format_yen(s.payment.amount),
        action: format!("/sandbox/bank/{}/{session}", s.bank.code()),
        csrf: csrf(state, session),
        choices: SandboxBankChoice::all()
            .iter()
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

/// `GET /sandbox/bank/{bank_code}/{session}`: approve, decline or walk away.
pub async fn bank_page(
    State(state): State<AppState>,
    Path((bank_code, session)): Path<(String, String)>,
) -> AppResult<Response> {
    let s = bank::sandbox_session(&state, &bank_code, &session).await?;
    page(Device::Pc, &bank_view(&state, &s, &session, false))
}

pub async fn bank_post(
    State(state): State<AppState>,
    Path((bank_code, session)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> AppResult<Response> {
    let fields = form::parse_body(&headers, &body, UTF_8);
    if !csrf_ok(&state, &session, form::get(&fields, "csrf")) {
        return Err(AppError::shopper(Reason::BadCsrf));
    }
    let choice = SandboxBankChoice::parse(form::get(&fields, "choice"))
        .ok_or(AppError::field(Reason::InvalidField, "choice"))?;
    let s = bank::sandbox_session(&state, &bank_code, &session).await?;
    match bank::sandbox_decide(&state, &s, choice).await? {
        Some(url) => Ok(Redirect::to(&url).into_response()),
        None => page(Device::Pc, &bank_view(&state, &s, &session, true)),
    }
}

fn wallet_view(
    state: &AppState,
    s: &wallet::SandboxSession,
    session: &str,
    left: bool,
) -> WebSandboxWallet {
    WebSandboxWallet {
        app_css: state.app_css.to_string(),
        wallet_name: s.wallet.name_ja(),
        item_name: s.checkout.item_name.clone(),
        amount: format_yen(s.payment.amount),
        action: format!("/sandbox/wallet/{}/{session}", s.wallet.code()),
        csrf: csrf(state, session),
        choices: SandboxWalletChoice::ALL
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

/// `GET /sandbox/wallet/{wallet}/{session}`: approve, decline or walk away.
pub async fn wallet_page(
    State(state): State<AppState>,
    Path((wallet_code, session)): Path<(String, String)>,
) -> AppResult<Response> {
    let s = wallet::sandbox_session(&state, &wallet_code, &session).await?;
    page(Device::Pc, &wallet_view(&state, &s, &session, false))
}

pub async fn wallet_post(
    State(state): State<AppState>,
    Path((wallet_code, session)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> AppResult<Response> {
    let fields = form::parse_body(&headers, &body, UTF_8);
    if !csrf_ok(&state, &session, form::get(&fields, "csrf")) {
        return Err(AppError::shopper(Reason::BadCsrf));
    }
    let choice = SandboxWalletChoice::parse(form::get(&fields, "choice"))
        .ok_or(AppError::field(Reason::InvalidField, "choice"))?;
    let s = wallet::sandbox_session(&state, &wallet_code, &session).await?;
    match wallet::sandbox_decide(&state, &s, choice) {
        Some(url) => Ok(Redirect::to(&url).into_response()),
        None => page(Device::Pc, &wallet_view(&state, &s, &session, true)),
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
