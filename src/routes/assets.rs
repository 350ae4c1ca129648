//! Content-hashed static assets, cached for a year.

use axum::extract::{OriginalUri, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};

use crate::error::{AppError, Reason};
use crate::state::AppState;

/// Answers with the asset at `url` and the given caching, or the not-found page.
fn asset(state: &AppState, url: &str, cache: &'static str) -> Response {
    match state.assets.get(url) {
        Some(a) => {
            let mut r = a.bytes.clone().into_response();
            let h = r.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(a.content_type),
            );
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
            r
        }
        None => AppError::shopper(Reason::NotFound).into_response(),
    }
}

/// `/assets/{hash}/{name}`: the URL changes with the content, so it may be cached forever.
pub async fn serve(State(state): State<AppState>, OriginalUri(uri): OriginalUri) -> Response {
    asset(&state, uri.path(), "public, max-age=31536000, immutable")
}

/// `/favicon.ico`: browsers ask for it on every site; answering avoids a 404 per page.
pub async fn favicon(State(state): State<AppState>) -> Response {
    asset(&state, &state.favicon, "public, max-age=86400")
}

pub async fn not_found() -> AppError {
    AppError::shopper(Reason::NotFound)
}
