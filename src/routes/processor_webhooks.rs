//! Inbound processor webhooks: one URL per processor account, so each delivery is verified with
//! that account's own webhook secret. The flow does the rest
//! ([`crate::flows::processor_webhooks`]).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::domain::processor::Processor;
use crate::flows::processor_webhooks as flow;
use crate::state::AppState;

/// `POST /webhooks/komoju/{account_id}`: KOMOJU's webhook deliveries for one account.
pub async fn komoju(
    State(state): State<AppState>,
    Path(account_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let r = flow::receive(&state, Processor::Komoju, &account_id, &headers, &body).await;
    if let Err(e) = &r {
        tracing::info!(code = e.code(), error = %e, "processor webhook refused");
    }
    let (status, json) = flow::answer(&r);
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        Json(json),
    )
        .into_response()
}
