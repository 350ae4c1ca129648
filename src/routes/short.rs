//! `GET /s/{code}`: the short URL of an SMS payment request. It redirects (303) to a checkout
//! link signed now, so the link in the SMS works until the request expires; expired, cancelled
//! or unknown codes get the device-appropriate error page.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};

use crate::error::AppResult;
use crate::state::AppState;

pub async fn open(State(state): State<AppState>, Path(code): Path<String>) -> AppResult<Response> {
    let to = crate::flows::payment_requests::resolve(&state, &code).await?;
    Ok(Redirect::to(&to).into_response())
}
