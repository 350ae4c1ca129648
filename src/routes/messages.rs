//! Shopper message pages: the number page's "send these instructions to my e-mail" form and
//! the long-lived links that messages carry back to the number page (docs/messages.md).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};

use crate::error::{AppError, AppResult, Reason};
use crate::flows::konbini as number_flow;
use crate::flows::messages::{self as flow, FormError};
use crate::routes::shopper::ShopperForm;
use crate::state::AppState;

/// `POST /pay/{token}/email-instructions`: queue the instructions to the typed address, then
/// show the number page again with the outcome.
pub async fn email_instructions(
    State(state): State<AppState>,
    f: ShopperForm,
) -> AppResult<Response> {
    let (o, device, token) = (&f.page.o, f.page.device, &f.page.token);
    let Some(p) = number_flow::issued_for_checkout(&state.db, &o.checkout.id).await? else {
        return Err(AppError::shopper(Reason::NotFound));
    };
    let en = o.checkout.lang == "en";
    let said = |ja: &str, en_s: &str| Some(if en { en_s } else { ja }.to_owned());
    let (code, notice) =
        match flow::request_instructions(&state, &p, f.get("email"), &o.checkout.lang).await {
            Ok(()) => (
                StatusCode::OK,
                said(
                    "メールを送信しました。届かない場合は迷惑メールフォルダもご確認ください。",
                    "We are sending the e-mail. If it does not arrive, check your spam folder.",
                ),
            ),
            Err(FormError::Invalid) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                said(
                    "メールアドレスの形式が正しくありません。",
                    "That e-mail address does not look right.",
                ),
            ),
            Err(FormError::TooMany) => (
                StatusCode::TOO_MANY_REQUESTS,
                said(
                    "このお支払いではこれ以上メールを送信できません。番号をお控えください。",
                    "No more e-mails can be sent for this payment. Please note the numbers.",
                ),
            ),
            Err(FormError::NotPayable) => (
                StatusCode::CONFLICT,
                said(
                    "このお支払番号はもうお支払いに使えません。",
                    "This number can no longer be used for payment.",
                ),
            ),
            Err(FormError::Db(e)) => return Err(e.into()),
        };
    crate::routes::konbini::number_page_with(&state, device, o, token, &p, code, None, notice)
}

/// `GET /m/{payment_id}/{mac}`: a message's link to the number page; opens it under a fresh
/// session (session tokens expire, e-mail stays in the inbox).
pub async fn open_link(
    State(state): State<AppState>,
    Path((payment_id, mac)): Path<(String, String)>,
) -> AppResult<Response> {
    match flow::open_number_link(&state, &payment_id, &mac).await? {
        Some(path) => Ok(Redirect::to(&path).into_response()),
        None => Err(AppError::shopper(Reason::NotFound)),
    }
}
