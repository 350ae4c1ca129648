//! Notification events over the API: redeliver one event, queue a `ping`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::{err, ApiMerchant};
use crate::db::outbox;
use crate::error::AppResult;
use crate::state::AppState;

/// An event queued for delivery.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventQueued {
    /// Event id (`evt_…`), the `webhook-id` receivers deduplicate by.
    pub id: String,
    /// Always `pending`: the notification worker delivers it shortly.
    pub status: String,
}

/// Redeliver one notification event (it keeps its id).
#[utoipa::path(
    post,
    path = "/api/v1/events/{id}/redeliver",
    operation_id = "redeliverEvent",
    tag = "events",
    params(("id" = String, Path, description = "Event id (evt_…)"), super::openapi::IdempotencyKey),
    responses(
        (status = 202, body = EventQueued),
        (status = 401, body = super::openapi::ApiError),
        (status = 404, description = "event_not_found", body = super::openapi::ApiError),
    ),
    security(("api_key" = []))
)]
pub async fn redeliver(
    State(state): State<AppState>,
    ApiMerchant(m): ApiMerchant,
    Path(id): Path<String>,
) -> AppResult<(StatusCode, Json<EventQueued>)> {
    // Scoped to the merchant in SQL: another merchant's event id matches nothing (404).
    let n = outbox::redeliver(&state.db, &m.id, Some(&id), state.now_ms()).await?;
    if n == 0 {
        return Err(err(
            StatusCode::NOT_FOUND,
            "event_not_found",
            format!("no event {id}"),
        ));
    }
    state.wake_notifier();
    Ok((
        StatusCode::ACCEPTED,
        Json(EventQueued {
            id,
            status: "pending".into(),
        }),
    ))
}

/// Queue a `ping` event to the merchant's notification URL.
#[utoipa::path(
    post,
    path = "/api/v1/events/ping",
    operation_id = "pingEvents",
    tag = "events",
    params(super::openapi::IdempotencyKey),
    responses(
        (status = 202, body = EventQueued),
        (status = 401, body = super::openapi::ApiError),
    ),
    security(("api_key" = []))
)]
pub async fn ping(
    State(state): State<AppState>,
    ApiMerchant(m): ApiMerchant,
) -> AppResult<(StatusCode, Json<EventQueued>)> {
    let id = outbox::ping(&state.db, &m.id, state.now_ms()).await?;
    state.wake_notifier();
    Ok((
        StatusCode::ACCEPTED,
        Json(EventQueued {
            id,
            status: "pending".into(),
        }),
    ))
}
