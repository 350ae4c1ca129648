//! `GET /bench/limit?<signed link>`: the benchmark's ceiling for a checkout page (the selector of
//! `GET /checkout`, verified and rendered with no database access). Exists only when
//! `KAKEHASHI_BENCH_LIMIT=1`; otherwise the path is a plain 404. See bench/README.md.

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use axum::{Extension, Router};
use encoding_rs::UTF_8;

use crate::device::{Ua, ViewOverride};
use crate::error::AppResult;
use crate::flows::bench_limit::{self, SignerCache};
use crate::form;
use crate::state::AppState;

/// The route when the setting is on, else nothing.
pub fn routes(enabled: bool) -> Router<AppState> {
    if !enabled {
        return Router::new();
    }
    Router::new()
        .route("/bench/limit", get(limit))
        .layer(Extension(Arc::new(SignerCache::default())))
}

async fn limit(
    State(state): State<AppState>,
    Extension(cache): Extension<Arc<SignerCache>>,
    ua: Ua,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> AppResult<Response> {
    let fields = form::decode(query.unwrap_or_default().as_bytes(), UTF_8);
    let link_lang = !form::get(&fields, "lang").is_empty();
    let mut opened = bench_limit::open(&state, &cache, fields, ua.device).await?;
    if !link_lang {
        // As `GET /checkout` does, but kept in memory: the browser's language for this visit.
        let accept = headers
            .get(axum::http::header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        opened.checkout.lang = super::checkout::accept_language(accept).to_owned();
    }
    let token =
        crate::flows::checkout::new_session(&state, &opened.checkout.id, ViewOverride::Auto);
    super::checkout::render_checkout(&state, ua.device, &opened, &token)
}
