//! Console: resend a shopper message (docs/messages.md). Admin role, CSRF token, audit record.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};

use crate::console::audit;
use crate::console::auth::Staff;
use crate::console::error::{ConsoleError, ConsoleResult};
use crate::form;
use crate::routes::console::visible_payment;
use crate::routes::console_admin::admin_form;
use crate::state::AppState;

/// `POST /console/payments/{id}/messages/resend`: a new copy of the message, due now.
pub async fn resend(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ConsoleResult<Response> {
    let f = admin_form(&state, &staff, &headers, &body)?;
    let p = visible_payment(&state, &staff, &id).await?;
    let message_id = form::get(&f, "message_id");
    let copy = crate::flows::messages::resend(&state, &p.merchant_id, message_id)
        .await?
        .ok_or(ConsoleError::NotFound)?;
    audit::staff(
        &state.db,
        &staff,
        Some(&p.merchant_id),
        "message.resend",
        message_id,
        &format!("payment {id}, new message {copy}"),
    )
    .await?;
    Ok(Redirect::to(&format!("/console/payments/{id}?done=resend")).into_response())
}
