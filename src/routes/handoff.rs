//! PC → phone hand-off: the PC selector shows a QR code that opens the same checkout on the
//! shopper's phone, and a small state endpoint lets the PC page notice when the phone paid.

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::domain::CheckoutStatus;
use crate::error::{AppError, AppResult, Reason};
use crate::flows::checkout;
use crate::state::AppState;

/// How long the phone has to open the QR code's address. Short, because the code is on a
/// screen others may see; the PC page draws a fresh one on every load.
pub const HANDOFF_TTL_S: i64 = 600;

/// `GET /pay/{token}/handoff.png`: a QR code for a new, short-lived session of the same
/// checkout (any layout: the phone's own browser decides). Only while the checkout is open.
pub async fn qr(State(state): State<AppState>, Path(token): Path<String>) -> AppResult<Response> {
    let (session, o) = checkout::load_session(&state, &token).await?;
    if o.checkout.status != CheckoutStatus::Open {
        return Err(AppError::shopper(Reason::NotFound));
    }
    let phone = checkout::handoff_session(&state, &session, HANDOFF_TTL_S);
    let url = format!("{}/h/{phone}", state.public_url);
    let png = qr_png(&url).map_err(|e| anyhow::anyhow!("hand-off QR code: {e}"))?;
    Ok(no_store((
        [(header::CONTENT_TYPE, HeaderValue::from_static("image/png"))],
        png,
    )))
}

/// The QR code of `url` as a grey-scale PNG with the quiet zone the standard asks for.
fn qr_png(url: &str) -> Result<Vec<u8>, String> {
    let code = qrcode::QrCode::new(url.as_bytes()).map_err(|e| e.to_string())?;
    let img = code
        .render::<image::Luma<u8>>()
        .module_dimensions(4, 4)
        .build();
    let mut out = std::io::Cursor::new(Vec::with_capacity(2048));
    img.write_to(&mut out, image::ImageFormat::Png)
        .map_err(|e| e.to_string())?;
    Ok(out.into_inner())
}

/// `GET /h/{token}`: the address in the QR code. The short hand-off token becomes an ordinary
/// session on the phone (same absolute lifetime), so a payment begun in the last minute of the
/// hand-off window is not cut off.
pub async fn open(State(state): State<AppState>, Path(token): Path<String>) -> AppResult<Response> {
    let session = checkout::verify_session(&state, &token)
        .ok_or(AppError::shopper(Reason::SessionExpired))?;
    let token = checkout::renew_session(&state, &session, crate::device::ViewOverride::Auto);
    Ok(axum::response::Redirect::to(&format!("/pay/{token}")).into_response())
}

/// `GET /pay/{token}/state`: `{"state": "open" | "pending" | "paid" | "closed"}` for the PC
/// page's script, which reloads once the checkout is no longer open.
pub async fn state(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> AppResult<Response> {
    let (_, o) = checkout::load_session(&state, &token).await?;
    let s = match o.checkout.status {
        CheckoutStatus::Open => "open",
        CheckoutStatus::Pending => "pending",
        CheckoutStatus::Paid => "paid",
        _ => "closed",
    };
    Ok(no_store(axum::Json(serde_json::json!({ "state": s }))))
}

fn no_store(r: impl IntoResponse) -> Response {
    let mut r = r.into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    *r.status_mut() = StatusCode::OK;
    r
}
