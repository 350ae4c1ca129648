//! The shopper's page of a refund request (返金依頼): `/refund/{id}?t=<token>`, reached by the link
//! staff send or read out. The shopper gives the bank account the shop transfers the refund to
//! (Zengin fields, validated with a sentence per wrong field), on PC, smartphone or feature phone
//! (Shift_JIS), in the merchant's theme. The token is a MAC of the request id (checked before any
//! lookup); the form's CSRF token derives from it, as on the checkout pages.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use crate::db::merchants;
use crate::device::{page_encoding, Device, Ua};
use crate::domain::refund_request::{AccountType, BankAccount, RefundRequestStatus};
use crate::error::{AppError, Reason};
use crate::flows::refund_requests::{self, RefundRequest};
use crate::form;
use crate::pages::{AccountTypeChoice, Chrome, RefundAccountPage};
use crate::state::AppState;
use crate::util::format_yen;

fn csrf(state: &AppState, id: &str) -> String {
    refund_requests::token(&state.secret, &format!("csrf|{id}"))
}

/// The request named by a valid link, else the not-found page (nothing tells which part failed).
async fn load(
    state: &AppState,
    id: &str,
    q: Option<String>,
) -> Result<(RefundRequest, String), AppError> {
    let q = form::decode(q.unwrap_or_default().as_bytes(), encoding_rs::UTF_8);
    let t = form::get(&q, "t").to_owned();
    if !refund_requests::token_ok(&state.secret, id, &t) {
        return Err(AppError::shopper(Reason::NotFound));
    }
    match refund_requests::get(state, id).await {
        Ok(r) => Ok((r, t)),
        Err(crate::flows::error::FlowError::Refused { .. }) => {
            Err(AppError::shopper(Reason::NotFound))
        }
        Err(e) => Err(e.into()),
    }
}

/// Typed values and errors shown again after a refusal.
#[derive(Default)]
struct Typed {
    bank_code: String,
    branch_code: String,
    account_type: String,
    number: String,
    holder: String,
    errors: Vec<crate::domain::refund_request::FieldError>,
}

async fn page(
    state: &AppState,
    device: Device,
    r: &RefundRequest,
    t: &str,
    stage: &'static str,
    typed: Typed,
    status: StatusCode,
) -> Result<Response, AppError> {
    let m = merchants::get(&state.db, &r.row.merchant_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("refund request {} has no merchant", r.row.id))?;
    let order_id = crate::db::payments::get(&state.db, &r.row.payment_id)
        .await?
        .map(|p| p.order_id)
        .unwrap_or_default();
    let err = |f: &str| {
        typed
            .errors
            .iter()
            .find(|e| e.field == f)
            .map(|e| e.message.to_owned())
            .unwrap_or_default()
    };
    let view = RefundAccountPage {
        c: Chrome::new(state, device, &m.name, &m.theme, "ja")
            .test_mode(m.mode() == crate::domain::Mode::Test),
        order_id,
        amount: format_yen(r.row.amount),
        stage,
        action: format!("/refund/{}?t={t}", r.row.id),
        csrf: csrf(state, &r.row.id),
        types: AccountType::ALL
            .iter()
            .map(|x| AccountTypeChoice {
                code: x.code(),
                label: x.label_ja(),
                checked: typed.account_type == x.code(),
            })
            .collect(),
        e_bank_code: err("bank_code"),
        e_branch_code: err("branch_code"),
        e_account_type: err("account_type"),
        e_number: err("number"),
        e_holder: err("holder"),
        has_errors: !typed.errors.is_empty(),
        bank_code: typed.bank_code,
        branch_code: typed.branch_code,
        number: typed.number,
        holder: typed.holder,
    };
    view.render(device, status)
}

fn stage_of(s: RefundRequestStatus) -> &'static str {
    match s {
        RefundRequestStatus::Requested => "form",
        RefundRequestStatus::AccountReceived => "done",
        RefundRequestStatus::PaidOut | RefundRequestStatus::Cancelled => "closed",
    }
}

/// `GET /refund/{id}?t=…`: the form, or where the request stands.
pub async fn show(
    State(state): State<AppState>,
    ua: Ua,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, AppError> {
    let (r, t) = load(&state, &id, q).await?;
    let stage = stage_of(r.status);
    page(
        &state,
        ua.device,
        &r,
        &t,
        stage,
        Typed::default(),
        StatusCode::OK,
    )
    .await
}

/// `POST /refund/{id}?t=…`: the account; a wrong field shows the form again (422), unchanged.
pub async fn submit(
    State(state): State<AppState>,
    ua: Ua,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, AppError> {
    let (r, t) = load(&state, &id, q).await?;
    let f = form::parse_body(&headers, &body, page_encoding(ua.device));
    let given = form::get(&f, "csrf");
    let expected = csrf(&state, &id);
    if crate::signing::hmac_bytes(&state.secret, given.as_bytes())
        != crate::signing::hmac_bytes(&state.secret, expected.as_bytes())
    {
        return Err(AppError::shopper(Reason::BadCsrf));
    }
    if !r.status.accepts_account() {
        return page(
            &state,
            ua.device,
            &r,
            &t,
            "closed",
            Typed::default(),
            StatusCode::CONFLICT,
        )
        .await;
    }
    let field = |k: &str| form::get(&f, k).trim().to_owned();
    let mut typed = Typed {
        bank_code: field("bank_code"),
        branch_code: field("branch_code"),
        account_type: field("account_type"),
        number: field("number"),
        holder: field("holder"),
        errors: Vec::new(),
    };
    let account = match BankAccount::parse(
        &typed.bank_code,
        &typed.branch_code,
        &typed.account_type,
        &typed.number,
        &typed.holder,
    ) {
        Ok(a) => a,
        Err(errors) => {
            typed.errors = errors;
            return page(
                &state,
                ua.device,
                &r,
                &t,
                "form",
                typed,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
        }
    };
    match refund_requests::submit_account(&state, &id, &account).await {
        Ok(r) => {
            page(
                &state,
                ua.device,
                &r,
                &t,
                "done",
                Typed::default(),
                StatusCode::OK,
            )
            .await
        }
        // Paid out or withdrawn meanwhile.
        Err(crate::flows::error::FlowError::Refused { .. }) => {
            let r = refund_requests::get(&state, &id).await?;
            page(
                &state,
                ua.device,
                &r,
                &t,
                "closed",
                Typed::default(),
                StatusCode::CONFLICT,
            )
            .await
        }
        Err(e) => Err(e.into()),
    }
}
