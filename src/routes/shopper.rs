//! The preamble every shopper page shares, as extractors: the session token from the path, the
//! checkout it opens, the layout for the device, and for a form post its body decoded in the
//! page's encoding with the CSRF token checked. Handlers start from the parsed values.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;

use crate::device::{page_encoding, Device, Ua};
use crate::error::{AppError, Reason};
use crate::flows::checkout::{self, Opened};
use crate::form;
use crate::session::Session;
use crate::state::AppState;

/// A shopper's request to a `/pay/{token}/…` page.
pub struct ShopperPage {
    pub token: String,
    pub o: Opened,
    /// The layout: the User-Agent's device, or the shopper's PC/smartphone choice.
    pub device: Device,
}

async fn page_from_parts(parts: &mut Parts, state: &AppState) -> Result<ShopperPage, AppError> {
    let Path(params) = Path::<HashMap<String, String>>::from_request_parts(parts, state)
        .await
        .map_err(|_| AppError::shopper(Reason::NotFound))?;
    let token = params
        .get("token")
        .cloned()
        .ok_or(AppError::shopper(Reason::NotFound))?;
    let Ok(ua) = Ua::from_request_parts(parts, state).await;
    let (session, o) = checkout::load_session(state, &token).await?;
    let device = session.view.apply(ua.device);
    Ok(ShopperPage { token, o, device })
}

impl FromRequestParts<AppState> for ShopperPage {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        page_from_parts(parts, state).await
    }
}

/// A shopper's form post to a `/pay/{token}/…` page: the page, plus the body's fields once
/// its CSRF token is checked.
pub struct ShopperForm {
    pub page: ShopperPage,
    pub fields: Vec<(String, String)>,
}

impl ShopperForm {
    /// A field's value ("" when absent).
    pub fn get(&self, name: &str) -> &str {
        form::get(&self.fields, name)
    }
}

impl FromRequest<AppState> for ShopperForm {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, AppError> {
        let (mut parts, body) = req.into_parts();
        let page = page_from_parts(&mut parts, state).await?;
        let headers = parts.headers.clone();
        let body = Bytes::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(|_| AppError::shopper(Reason::BadRequest))?;
        let fields = form::parse_body(&headers, &body, page_encoding(page.device));
        if !Session::csrf_ok(&page.token, &state.secret, form::get(&fields, "csrf")) {
            return Err(AppError::shopper(Reason::BadCsrf));
        }
        Ok(ShopperForm { page, fields })
    }
}

/// Extractor: the client address of this request (`crate::client_addr`: the TCP peer, or the
/// forwarded address when the peer is a trusted proxy).
pub struct ClientAddr(pub std::net::IpAddr);

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c: &axum::extract::ConnectInfo<std::net::SocketAddr>| c.0.ip())
            .unwrap_or(std::net::IpAddr::from([0, 0, 0, 0]));
        Ok(ClientAddr(crate::client_addr::client_ip(
            peer,
            &parts.headers,
            &state.config.trusted_proxies,
        )))
    }
}
