//! Which shop an error page belongs to. The `render_errors` middleware only has the request
//! that failed, so it looks there: a session token in `/pay/{token}/…` (its MAC checked, its
//! expiry ignored, so an expired session still names its checkout), or the merchant of a
//! `/checkout` link (query or form body). The page then wears the merchant's theme and links
//! back to the shop: the checkout's cancel URL, else its return URL; for a link that failed
//! before a checkout existed, its cancel/return URL only when it lies on an origin the merchant
//! registered, else the merchant's first registered origin.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{Method as HttpMethod, StatusCode};
use axum::response::{IntoResponse, Response};
use encoding_rs::UTF_8;

use crate::db::{checkouts, merchants};
use crate::device::ViewOverride;
use crate::domain::order::url_allowed;
use crate::domain::Mode;
use crate::form;
use crate::session::Session;
use crate::state::AppState;

/// What the request says about its shop, before anything is looked up.
pub enum Hint {
    None,
    Session(String),
    Link(Vec<(String, String)>),
    /// A `/checkout` query string, kept raw: it is decoded only when an error page is shown,
    /// so a request that succeeds does not decode its link twice (bench/README.md, Profile).
    Query(String),
}

/// The shop an error page is shown for.
#[derive(Clone, Debug)]
pub struct ErrorShop {
    pub name: String,
    pub theme: String,
    pub lang: String,
    pub back_url: Option<String>,
    pub test_mode: bool,
    pub view: ViewOverride,
}

/// Reads the hint; a `/checkout` form body is buffered (and put back) so the handler still
/// gets it. Over the body limit the request is refused here, as the handler would.
pub async fn hint(req: Request) -> Result<(Request, Hint), Response> {
    let path = req.uri().path().to_owned();
    if let Some(rest) = path.strip_prefix("/pay/") {
        let token = rest.split('/').next().unwrap_or_default().to_owned();
        return Ok((req, Hint::Session(token)));
    }
    if path != "/checkout" {
        return Ok((req, Hint::None));
    }
    if req.method() == HttpMethod::POST {
        let (parts, body) = req.into_parts();
        let bytes = match axum::body::to_bytes(body, 64 * 1024).await {
            Ok(b) => b,
            Err(_) => return Err(StatusCode::PAYLOAD_TOO_LARGE.into_response()),
        };
        let fields = form::parse_body(&parts.headers, &bytes, UTF_8);
        let req = Request::from_parts(parts, Body::from(bytes));
        return Ok((req, Hint::Link(fields)));
    }
    let query = req.uri().query().unwrap_or_default().to_owned();
    Ok((req, Hint::Query(query)))
}

/// Looks the shop up; `None` when the request names no known merchant (the page is then the
/// neutral one). Database errors are logged and give the neutral page too.
pub async fn resolve(state: &AppState, hint: Hint) -> Option<ErrorShop> {
    match hint {
        Hint::None => None,
        Hint::Session(token) => {
            // The MAC must hold; the expiry and the absolute lifetime are ignored (i64::MIN is
            // before any expiry), so an expired session still gets its shop's page.
            let session = Session::verify(&token, &state.secret, i64::MIN, i64::MAX)?;
            let checkout = checkouts::get(&state.db, &session.checkout_id)
                .await
                .map_err(|e| tracing::warn!(error = %e, "error page: checkout lookup"))
                .ok()??;
            let merchant = merchants::get(&state.db, &checkout.merchant_id)
                .await
                .map_err(|e| tracing::warn!(error = %e, "error page: merchant lookup"))
                .ok()??;
            Some(ErrorShop {
                name: merchant.name.clone(),
                theme: merchant.theme.clone(),
                lang: checkout.lang.clone(),
                back_url: Some(checkout.cancel_url.unwrap_or(checkout.return_url)),
                test_mode: merchant.mode() == Mode::Test,
                view: session.view,
            })
        }
        Hint::Query(query) => resolve_link(state, form::decode(query.as_bytes(), UTF_8)).await,
        Hint::Link(fields) => resolve_link(state, fields).await,
    }
}

/// The shop of a `/checkout` link that failed, from its fields.
async fn resolve_link(state: &AppState, fields: Vec<(String, String)>) -> Option<ErrorShop> {
    let id = form::get(&fields, "merchant_id");
    if id.is_empty() {
        return None;
    }
    let merchant = merchants::get(&state.db, id)
        .await
        .map_err(|e| tracing::warn!(error = %e, "error page: merchant lookup"))
        .ok()??;
    let origins = merchant.origins();
    let back_url = ["cancel_url", "return_url"]
        .into_iter()
        .map(|k| form::get(&fields, k))
        .find(|u| !u.is_empty() && url_allowed(u, &origins))
        .map(str::to_owned)
        .or_else(|| {
            origins
                .first()
                .map(|o| format!("{}/", o.trim_end_matches('/')))
        });
    let lang = if form::get(&fields, "lang") == "en" {
        "en"
    } else {
        "ja"
    };
    Some(ErrorShop {
        name: merchant.name.clone(),
        theme: merchant.theme.clone(),
        lang: lang.to_owned(),
        back_url,
        test_mode: merchant.mode() == Mode::Test,
        view: ViewOverride::Auto,
    })
}
