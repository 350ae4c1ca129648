//! The server-to-server JSON API under `/api/v1`: per-merchant API keys (`Authorization: Bearer
//! ak_…`), `Idempotency-Key` on every POST, JSON errors `{"error": {code, message, field}}`, and
//! the one route table the router and the OpenAPI test both read.

pub mod checkouts;
pub mod customers;
pub mod events;
pub mod keys;
pub mod openapi;
pub mod payment_requests;
pub mod payments;
pub mod repeat_numbers;
pub mod settlements;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter};
use axum::Router;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use crate::db::merchants::MerchantRow;
use crate::db::{idempotency, Db};
use crate::domain::scope::Scope;
use crate::domain::MerchantStatus;
use crate::error::{AppError, ErrorInfo};
use crate::state::AppState;

/// Largest JSON body the API reads.
const MAX_BODY: usize = 64 * 1024;

/// How long an idempotency key and its stored response are kept (at least 24 hours).
pub const IDEMPOTENCY_TTL_MS: i64 = 24 * 3600 * 1000;

/// A claim older than this whose request never finished (process killed) may be taken over:
/// requests time out after 30 s, so its owner is gone.
const STALE_CLAIM_MS: i64 = 120_000;

macro_rules! api_route {
    ($method:ident $path:literal => $handler:path) => {
        (
            Method::$method,
            $path,
            axum::routing::on(MethodFilter::$method, $handler),
        )
    };
}

/// Every `/api/v1` route: the router is built from this list and the OpenAPI test checks that
/// each `(method, path)` here is documented, so the two cannot drift apart.
pub fn routes() -> Vec<(Method, &'static str, MethodRouter<AppState>)> {
    vec![
        api_route!(POST "/api/v1/checkouts" => checkouts::create),
        api_route!(POST "/api/v1/checkouts/{order_id}/expire" => checkouts::expire),
        api_route!(GET "/api/v1/payments" => payments::list),
        api_route!(GET "/api/v1/payments/{id}" => payments::get),
        api_route!(POST "/api/v1/payments/{id}/capture" => payments::capture),
        api_route!(POST "/api/v1/payments/{id}/cancel" => payments::cancel),
        api_route!(POST "/api/v1/payments/{id}/refund" => payments::refund),
        api_route!(POST "/api/v1/events/{id}/redeliver" => events::redeliver),
        api_route!(POST "/api/v1/events/ping" => events::ping),
        api_route!(POST "/api/v1/payment-requests" => payment_requests::create),
        api_route!(GET "/api/v1/payment-requests/{id}" => payment_requests::get),
        api_route!(POST "/api/v1/payment-requests/{id}/resend" => payment_requests::resend),
        api_route!(POST "/api/v1/payment-requests/{id}/cancel" => payment_requests::cancel),
        api_route!(GET "/api/v1/sms/messages" => payment_requests::messages),
        api_route!(POST "/api/v1/repeat-numbers" => repeat_numbers::create),
        api_route!(GET "/api/v1/repeat-numbers" => repeat_numbers::list),
        api_route!(GET "/api/v1/repeat-numbers/{id}" => repeat_numbers::get),
        api_route!(GET "/api/v1/repeat-numbers/{id}/payments" => repeat_numbers::payments),
        api_route!(POST "/api/v1/repeat-numbers/{id}/retire" => repeat_numbers::retire),
        api_route!(GET "/api/v1/customers/{customer_id}/cards" => customers::list),
        api_route!(DELETE "/api/v1/customers/{customer_id}/cards/{card_id}" => customers::remove),
        api_route!(GET "/api/v1/settlements" => settlements::list),
        api_route!(GET "/api/v1/settlements/{id}" => settlements::get),
        api_route!(GET "/api/v1/settlements/{id}/statement.pdf" => settlements::statement_pdf),
        api_route!(GET "/api/v1/settlement-terms" => settlements::terms),
    ]
}

/// `(METHOD, path)` of every `/api/v1` route, as served.
pub fn route_list() -> Vec<(String, String)> {
    routes()
        .into_iter()
        .map(|(m, p, _)| (m.as_str().to_owned(), p.to_owned()))
        .collect()
}

/// The API's routes with their layers: errors rendered as JSON (headers kept, so `Retry-After`
/// survives), then idempotency (it stores the rendered body), then authentication. The OpenAPI
/// document is public.
pub fn router(state: AppState) -> Router<AppState> {
    let mut r = Router::new();
    for (_, path, handler) in routes() {
        r = r.route(path, handler);
    }
    r.route_layer(middleware::from_fn(render_errors))
        .route_layer(middleware::from_fn_with_state(state.clone(), idempotency))
        .route_layer(middleware::from_fn_with_state(state, authenticate))
        .route_layer(middleware::from_fn(render_errors))
        .route("/api/openapi.json", axum::routing::get(openapi::serve))
}

/// Shorthand for an API error.
pub fn err(status: StatusCode, code: &'static str, message: impl Into<String>) -> AppError {
    AppError::api(status, code, message)
}

fn unauthorized() -> AppError {
    err(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "missing, unknown or retired API key: send `Authorization: Bearer ak_…`",
    )
}

/// The authenticated merchant; put in the request by [`authenticate`].
#[derive(Clone, Debug)]
pub struct ApiMerchant(pub MerchantRow);

impl<S: Send + Sync> FromRequestParts<S> for ApiMerchant {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        merchant_of(&parts.extensions)
    }
}

/// An owner key that named no tenant; put in the request by [`authenticate`]. Only the
/// read-only operations that span merchants take it (through [`ApiScope`]); every other one
/// extracts [`ApiMerchant`] and answers `400 merchant_required`.
#[derive(Clone, Debug)]
pub struct ApiOwner(pub String);

fn merchant_required() -> AppError {
    err(
        StatusCode::BAD_REQUEST,
        "merchant_required",
        "an owner API key acts for one tenant: name it in the `Kakehashi-Merchant` header",
    )
}

/// The request's merchant, or why there is none.
fn merchant_of(ext: &axum::http::Extensions) -> Result<ApiMerchant, AppError> {
    match (ext.get::<ApiMerchant>(), ext.get::<ApiOwner>()) {
        (Some(m), _) => Ok(m.clone()),
        (None, Some(_)) => Err(merchant_required()),
        (None, None) => Err(unauthorized()),
    }
}

/// The merchants a read may span: the key's merchant (or the tenant an owner key names), or
/// every tenant of an owner key sent without `Kakehashi-Merchant` (テナントオプション).
#[derive(Clone, Debug)]
pub struct ApiScope(pub Scope);

impl<S: Send + Sync> FromRequestParts<S> for ApiScope {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        if let Some(ApiOwner(o)) = parts.extensions.get::<ApiOwner>() {
            return Ok(ApiScope(Scope::Owner(o.clone())));
        }
        let ApiMerchant(m) = merchant_of(&parts.extensions)?;
        Ok(ApiScope(Scope::Merchant(m.id)))
    }
}

/// Resolves `Authorization: Bearer <key>` to an active merchant, or answers 401.
async fn authenticate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let key = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(str::to_owned);
    let Some(key) = key else {
        return with_challenge(unauthorized().into_response());
    };
    let named = req
        .headers()
        .get(MERCHANT_HEADER)
        .map(|v| v.to_str().unwrap_or("\u{fffd}").trim().to_owned());
    let merchant = match keys::authenticate_any(&state.db, &key).await {
        // An owner key without a tenant: the handler decides (`ApiScope` spans the tenants,
        // `ApiMerchant` answers `merchant_required`).
        Ok(Some(keys::Caller::Owner(o))) if named.as_deref().is_none_or(str::is_empty) => {
            req.extensions_mut().insert(ApiOwner(o));
            return next.run(req).await;
        }
        Ok(Some(caller)) => match tenant(&state, caller, named.as_deref()).await {
            Ok(m) => m,
            Err(e) => return e.into_response(),
        },
        Ok(None) => return with_challenge(unauthorized().into_response()),
        Err(e) => return AppError::from(e).into_response(),
    };
    if merchant.status != MerchantStatus::Active {
        return err(
            StatusCode::FORBIDDEN,
            "merchant_disabled",
            "this merchant is disabled",
        )
        .into_response();
    }
    req.extensions_mut().insert(ApiMerchant(merchant));
    next.run(req).await
}

/// The header naming the merchant an owner key acts for (テナントオプション).
pub const MERCHANT_HEADER: &str = "kakehashi-merchant";

/// The merchant a request acts for: a merchant key's own (a `Kakehashi-Merchant` header, if
/// sent, must name it), or the tenant an owner key names. A merchant that is not the owner's
/// tenant answers exactly as an unknown one (`404 merchant_not_found`), so ids of other
/// owners' merchants tell nothing.
async fn tenant(
    state: &AppState,
    caller: keys::Caller,
    named: Option<&str>,
) -> Result<MerchantRow, AppError> {
    let not_found = || {
        err(
            StatusCode::NOT_FOUND,
            "merchant_not_found",
            "no such merchant for this API key",
        )
    };
    match (caller, named) {
        (keys::Caller::Merchant(m), None) => Ok(*m),
        (keys::Caller::Merchant(m), Some(n)) if n == m.id => Ok(*m),
        (keys::Caller::Merchant(_), Some(_)) => Err(not_found()),
        (keys::Caller::Owner(_), None | Some("")) => Err(merchant_required()),
        (keys::Caller::Owner(o), Some(n)) => {
            crate::db::owners::merchant_in_scope(&state.db, &Scope::Owner(o), n)
                .await?
                .ok_or_else(not_found)
        }
    }
}

fn with_challenge(mut resp: Response) -> Response {
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"kakehashi\""),
    );
    resp
}

/// Renders [`ErrorInfo`] responses as JSON, keeping the response's headers.
async fn render_errors(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    let Some(info) = resp.extensions().get::<ErrorInfo>().cloned() else {
        return resp;
    };
    let (mut parts, _) = resp.into_parts();
    parts.extensions.remove::<ErrorInfo>();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let body = serde_json::json!({
        "error": { "code": info.code, "message": info.message_en, "field": info.field }
    });
    Response::from_parts(parts, Body::from(body.to_string()))
}

/// What a POST is identified by for idempotency: method, path with query, and the exact body.
pub fn request_hash(method: &str, path_and_query: &str, body: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(method.as_bytes());
    h.update(b"\n");
    h.update(path_and_query.as_bytes());
    h.update(b"\n");
    h.update(body);
    hex::encode(h.finalize())
}

enum Claim {
    /// This request owns the key: run it and store the response.
    Owned,
    Replay {
        status: i64,
        body: String,
    },
    Reused,
    InProgress,
}

/// Claims `(merchant, key)` at `now`; otherwise explains why not. Keys older than
/// [`IDEMPOTENCY_TTL_MS`] are pruned first.
async fn claim(
    db: &Db,
    merchant_id: &str,
    key: &str,
    hash: &str,
    now: i64,
) -> Result<Claim, crate::db::Error> {
    if idempotency::prune_and_claim(db, merchant_id, key, hash, now - IDEMPOTENCY_TTL_MS, now)
        .await?
    {
        return Ok(Claim::Owned);
    }
    let Some(row) = idempotency::get(db, merchant_id, key).await? else {
        // Released by a failed first attempt a moment ago: the client may simply retry.
        return Ok(Claim::InProgress);
    };
    if row.request_hash != hash {
        return Ok(Claim::Reused);
    }
    match (row.done.0, row.response_status) {
        (true, Some(s)) => Ok(Claim::Replay {
            status: s,
            body: row.response_body.unwrap_or_default(),
        }),
        _ if row.created_at < now - STALE_CLAIM_MS => Ok(
            if idempotency::take_over(db, merchant_id, key, row.created_at, now).await? {
                Claim::Owned
            } else {
                Claim::InProgress
            },
        ),
        _ => Ok(Claim::InProgress),
    }
}

/// Stores the final response, or releases the key when the outcome was transient (5xx, 429) so
/// the same request can be retried with the same key.
async fn finish(
    db: &Db,
    merchant_id: &str,
    key: &str,
    status: StatusCode,
    body: &[u8],
) -> Result<(), crate::db::Error> {
    if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
        idempotency::release(db, merchant_id, key).await
    } else {
        let body = String::from_utf8_lossy(body);
        idempotency::store_response(db, merchant_id, key, status.as_u16() as i64, &body).await
    }
}

/// `Idempotency-Key` handling for every POST: the first request runs and its response is
/// stored; the same key with the same request replays it (same status, header
/// `Idempotent-Replayed: true`); with a different request → 422 `idempotency_key_reused`; while
/// the first is still running → 409 `request_in_progress`.
async fn idempotency(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if req.method() != Method::POST {
        return next.run(req).await;
    }
    let merchant = match merchant_of(req.extensions()) {
        Ok(ApiMerchant(m)) => m,
        Err(e) => return e.into_response(),
    };
    let key = match req.headers().get("idempotency-key").map(|v| v.to_str()) {
        None => {
            return err(
                StatusCode::BAD_REQUEST,
                "idempotency_key_required",
                "every POST needs an Idempotency-Key header (e.g. a UUID)",
            )
            .into_response()
        }
        Some(Ok(k)) if (1..=255).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_graphic()) => {
            k.to_owned()
        }
        Some(_) => {
            return err(
                StatusCode::BAD_REQUEST,
                "invalid_idempotency_key",
                "Idempotency-Key must be 1 to 255 visible ASCII characters",
            )
            .into_response()
        }
    };
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => {
            return err(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                "request bodies are limited to 64 KiB",
            )
            .into_response()
        }
    };
    let target = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let hash = request_hash(parts.method.as_str(), target, &bytes);
    match claim(&state.db, &merchant.id, &key, &hash, state.now_ms()).await {
        Err(e) => AppError::from(e).into_response(),
        Ok(Claim::Reused) => err(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency_key_reused",
            "this Idempotency-Key was used with a different request",
        )
        .into_response(),
        Ok(Claim::InProgress) => err(
            StatusCode::CONFLICT,
            "request_in_progress",
            "a request with this Idempotency-Key is still being processed; retry shortly",
        )
        .into_response(),
        Ok(Claim::Replay { status, body }) => {
            let status = u16::try_from(status)
                .ok()
                .and_then(|s| StatusCode::from_u16(s).ok())
                .unwrap_or(StatusCode::OK);
            (
                status,
                [
                    (header::CONTENT_TYPE, "application/json"),
                    (
                        header::HeaderName::from_static("idempotent-replayed"),
                        "true",
                    ),
                ],
                body,
            )
                .into_response()
        }
        Ok(Claim::Owned) => {
            let resp = next
                .run(Request::from_parts(parts, Body::from(bytes)))
                .await;
            let (rparts, rbody) = resp.into_parts();
            let rbytes = match axum::body::to_bytes(rbody, 4 * 1024 * 1024).await {
                Ok(b) => b,
                Err(e) => {
                    let _ = finish(
                        &state.db,
                        &merchant.id,
                        &key,
                        StatusCode::INTERNAL_SERVER_ERROR,
                        b"",
                    )
                    .await;
                    return AppError::Internal(anyhow::anyhow!("response body: {e}"))
                        .into_response();
                }
            };
            if let Err(e) = finish(&state.db, &merchant.id, &key, rparts.status, &rbytes).await {
                tracing::error!(error = %e, "storing the idempotent response failed");
            }
            Response::from_parts(rparts, Body::from(rbytes))
        }
    }
}

/// A JSON body parsed strictly (unknown fields refused); an empty body reads as `{}` so bodiless
/// actions (`cancel`) and optional ones (`capture`) need none. Errors are API errors.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|_| {
            err(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                "request bodies are limited to 64 KiB",
            )
        })?;
        let text: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            &bytes
        };
        serde_json::from_slice(text).map(ApiJson).map_err(|e| {
            err(
                StatusCode::BAD_REQUEST,
                "invalid_json",
                format!("the request body is not valid for this endpoint: {e}"),
            )
        })
    }
}

/// Query parameters parsed into `T`, with API errors.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::try_from_uri(&parts.uri)
            .map(|axum::extract::Query(t)| ApiQuery(t))
            .map_err(|e| {
                err(
                    StatusCode::BAD_REQUEST,
                    "invalid_parameter",
                    format!("bad query parameter: {}", e.body_text()),
                )
            })
    }
}

/// Times in responses: RFC 3339 in Japan time, like notifications.
pub fn time(ms: i64) -> String {
    crate::util::rfc3339_jst(ms)
}
