//! Every route of the server, in one place, with the layers that wrap them.

mod assets;
mod checkout;
pub mod console;
mod console_admin;

use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::{middleware, Router};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::state::AppState;

/// The merchant console under /console, with its own error pages.
fn console_router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/console", get(console::home))
        .route(
            "/console/login",
            get(console::login_get).post(console::login_post),
        )
        .route(
            "/console/login/totp",
            get(console::totp_get).post(console::totp_post),
        )
        .route("/console/login/qr.svg", get(console::totp_qr))
        .route("/console/logout", post(console::logout))
        .route("/console/payments", get(console::list))
        .route("/console/payments.csv", get(console::csv))
        .route("/console/payments/bulk", post(console_admin::bulk))
        .route("/console/payments/{id}", get(console::detail))
        .route("/console/payments/{id}/action", post(console_admin::action))
        .route(
            "/console/payments/{id}/redeliver",
            post(console_admin::redeliver),
        )
        .route(
            "/console/settings",
            get(console_admin::settings_get).post(console_admin::settings_post),
        )
        .route(
            "/console/settings/rotate-key",
            post(console_admin::rotate_key),
        )
        .route(
            "/console/settings/rotate-webhook",
            post(console_admin::rotate_webhook),
        )
        .route("/console/settings/preview", get(console_admin::preview))
        .route("/console/summary", get(console_admin::summary_page))
        .route("/console/audit", get(console_admin::audit_page))
        .layer(middleware::from_fn_with_state(
            state,
            console::render_errors,
        ))
}

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
        // Merchant console
        .merge(console_router(state.clone()))
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
