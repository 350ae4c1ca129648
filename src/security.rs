//! Security headers on every response, and the middleware that renders error pages.

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::device::Device;
use crate::error::ErrorInfo;
use crate::state::AppState;

/// No inline script or style anywhere, no framing, no referrer leaks of session URLs.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'";

pub async fn headers(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    // A page that embeds a processor's script (the Stripe card page) sets its own, wider CSP.
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
    }
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if state.config.hsts {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=63072000; includeSubDomains"),
        );
    }
    resp
}

/// Renders [`ErrorInfo`] responses: JSON under `/api/`, else a page for the shopper's device.
/// Done here because only the request knows the device the page must fit.
pub async fn render_errors(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let device = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(Device::detect)
        .unwrap_or(Device::Pc);
    let is_api = req.uri().path().starts_with("/api/");
    let (req, hint) = if is_api {
        (req, crate::error_shop::Hint::None)
    } else {
        match crate::error_shop::hint(req).await {
            Ok(x) => x,
            Err(resp) => return resp,
        }
    };
    let resp = next.run(req).await;
    let Some(info) = resp.extensions().get::<ErrorInfo>().cloned() else {
        return resp;
    };
    let status = resp.status();
    if is_api || info.api {
        let body = serde_json::json!({
            "error": { "code": info.code, "message": info.message_en, "field": info.field }
        });
        return (status, axum::Json(body)).into_response();
    }
    // Branded for the merchant when the request names one (see `error_shop`).
    let shop = crate::error_shop::resolve(&state, hint).await;
    let device = shop.as_ref().map_or(device, |s| s.view.apply(device));
    crate::pages::error_page(&state, device, status, &info, shop.as_ref())
}
