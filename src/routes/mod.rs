//! Every route of the server, in one place, with the layers that wrap them.

mod assets;
mod card;
pub mod checkout;
mod demo;
mod short;

use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::{middleware, Router};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::state::AppState;

pub fn router(state: AppState) -> Router {
    Router::new()
        // Shopper checkout
        .route(
            "/checkout",
            get(checkout::open_get).post(checkout::open_post),
        )
        .route("/pay/{token}", get(checkout::show))
        .route("/pay/{token}/method", post(checkout::choose_method))
        .route("/pay/{token}/view", get(checkout::switch_view))
        .route("/pay/{token}/card", get(card::form_page).post(card::submit))
        .route(
            "/pay/{token}/card/challenge",
            get(card::challenge_page).post(card::challenge_submit),
        )
        .route("/pay/{token}/card/result", get(card::result_page))
        // SMS payment links: the short URL redirects to a freshly signed checkout link
        .route("/s/{code}", get(short::open))
        // Server-to-server API (its own auth, idempotency and JSON error layers)
        .merge(crate::api::router(state.clone()))
        // The demo shop's return page (the printed demo link returns here)
        .route("/demo/return", get(demo::return_page))
        // Assets and health
        .route("/assets/{*path}", get(assets::serve))
        .route("/healthz", get(|| async { "ok" }))
        .fallback(assets::not_found)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::security::render_errors,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::security::headers,
        ))
        .layer(DefaultBodyLimit::max(64 * 1024))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(30),
        ))
        .layer(TraceLayer::new_for_http().make_span_with(crate::startup::request_span))
        .with_state(state)
}
