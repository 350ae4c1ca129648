//! Content-hashed static assets, cached for a year.

use axum::extract::{OriginalUri, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};

use crate::error::{AppError, Reason};
use crate::state::AppState;

pub async fn serve(State(state): State<AppState>, OriginalUri(uri): OriginalUri) -> Response {
    match state.assets.get(uri.path()) {
        Some(a) => {
            let mut r = a.bytes.clone().into_response();
            let h = r.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(a.content_type),
            );
            h.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=31536000, immutable"),
            );
            r
        }
        None => AppError::shopper(Reason::NotFound).into_response(),
    }
}

pub async fn not_found() -> AppError {
    AppError::shopper(Reason::NotFound)
}

/// `/favicon.ico`: browsers ask for it on every site; answering avoids a 404 per page.
pub async fn favicon(State(state): State<AppState>) -> Response {
    match state.assets.get(&state.favicon) {
        Some(a) => {
            let mut r = a.bytes.clone().into_response();
            let h = r.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(a.content_type),
            );
            h.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=86400"),
            );
            r
        }
        None => AppError::shopper(Reason::NotFound).into_response(),
    }
}
