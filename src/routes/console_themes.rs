//! Console: theme upload (`POST /console/settings/theme`, multipart) for merchant admins and
//! operators, CSRF-checked and audited; and the public, content-hashed theme assets
//! (`GET /themes/{name}/{file}`) served from the database so every instance has them.

use axum::extract::multipart::MultipartError;
use axum::extract::{Multipart, Path, RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};

use crate::console::auth::Staff;
use crate::console::error::ConsoleResult;
use crate::console::{audit, theme_upload};
use crate::db::theme_uploads;
use crate::domain::theme::UploadedName;
use crate::error::{AppError, Reason};
use crate::form;
use crate::routes::console::html;
use crate::routes::console_admin::{keys_of, merchant_of, settings_page};
use crate::state::AppState;

/// The request body limit of the upload: the logo limit plus room for the other fields.
pub const BODY_LIMIT: usize = theme_upload::MAX_LOGO_BYTES + 16 * 1024;

/// The posted fields; the logo is read whole (the body limit bounds it).
#[derive(Default)]
struct Posted {
    csrf: String,
    primary: String,
    accent: String,
    logo: Vec<u8>,
}

/// The sentence for a form that could not be read: too large, or not a well-formed upload.
fn unreadable(e: &MultipartError) -> String {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        format!(
            "ロゴ画像が大きすぎます（{}KBまで）。",
            theme_upload::MAX_LOGO_BYTES / 1024
        )
    } else {
        "送信されたフォームを読み込めませんでした。もう一度お試しください。".into()
    }
}

/// Reads the form; a body over the limit is an error, but the fields before it (the token
/// comes first) are kept so the refusal can still be told apart from a forged request.
async fn read(mut mp: Multipart) -> (Posted, Result<(), String>) {
    let mut p = Posted::default();
    loop {
        let field = match mp.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => return (p, Ok(())),
            Err(e) => return (p, Err(unreadable(&e))),
        };
        let name = field.name().unwrap_or_default().to_owned();
        let bytes = match field.bytes().await {
            Ok(b) => b,
            Err(e) => return (p, Err(unreadable(&e))),
        };
        let text = || String::from_utf8_lossy(&bytes).trim().to_owned();
        match name.as_str() {
            "csrf" => p.csrf = text(),
            "primary" => p.primary = text(),
            "accent" => p.accent = text(),
            "logo" => p.logo = bytes.to_vec(),
            _ => {}
        }
    }
}

/// `POST /console/settings/theme?merchant=…`: stores the upload (it becomes selectable in the
/// settings; the shop's theme changes only when the settings are saved with it).
pub async fn upload(
    State(state): State<AppState>,
    staff: Staff,
    RawQuery(q): RawQuery,
    mp: Multipart,
) -> ConsoleResult<Response> {
    staff.require_admin()?;
    let q = form::decode(q.unwrap_or_default().as_bytes(), encoding_rs::UTF_8);
    let m = merchant_of(&state, &staff, &q).await?;
    let (p, complete) = read(mp).await;
    // The token is checked before anything else is looked at, even when the body was refused.
    staff.check_csrf(&state.secret, &p.csrf)?;
    let prepared =
        complete.and_then(|()| theme_upload::prepare(&m.id, &p.primary, &p.accent, &p.logo));
    let u = match prepared {
        Ok(u) => u,
        Err(e) => {
            let keys = keys_of(&state, &m).await?;
            let uploaded = theme_uploads::names(&state.db, &m.id).await?;
            return html(
                StatusCode::BAD_REQUEST,
                &settings_page(&state, &staff, &m, keys, &uploaded, Some(e), None),
            );
        }
    };
    let name = u.name.name();
    let before = theme_uploads::names(&state.db, &m.id).await?.len();
    let new = theme_uploads::insert(
        &state.db,
        &theme_uploads::NewUpload {
            name: &name,
            merchant_id: &m.id,
            logo: &u.logo,
            logo_type: u.logo_type,
            logo_fp: &u.logo_fp,
            created_by: &staff.user.id,
        },
        staff.now,
    )
    .await?;
    audit::staff(
        &state.db,
        &staff,
        Some(&m.id),
        "theme.upload",
        &name,
        &format!(
            "uploads {before} -> {}; primary={} accent={} logo={} {}B fp_gif={}B",
            before + usize::from(new),
            u.name.primary.css(),
            u.name.accent.css(),
            u.logo_type,
            u.logo.len(),
            u.logo_fp.len()
        ),
    )
    .await?;
    Ok(Redirect::to(&format!("/console/settings?merchant={}&uploaded=1", m.id)).into_response())
}

/// `GET /themes/{name}/{file}`: `logo`, `logo.gif` (feature phones) or `theme.css` of an
/// uploaded theme. The name changes with the content, so the answer may be cached forever.
pub async fn asset(
    State(state): State<AppState>,
    Path((name, file)): Path<(String, String)>,
) -> Result<Response, AppError> {
    let not_found = || AppError::shopper(Reason::NotFound);
    let parsed = UploadedName::parse(&name).ok_or_else(not_found)?;
    let row = theme_uploads::get(&state.db, &name)
        .await?
        .ok_or_else(not_found)?;
    let (body, content_type): (Vec<u8>, &'static str) = match file.as_str() {
        "logo" => match row.logo_type.as_str() {
            "image/png" => (row.logo, "image/png"),
            _ => (row.logo, "image/jpeg"),
        },
        "logo.gif" => (row.logo_fp, "image/gif"),
        "theme.css" => (
            crate::themes::uploaded_css(&parsed).into_bytes(),
            "text/css; charset=utf-8",
        ),
        _ => return Err(not_found()),
    };
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    Ok(r)
}
