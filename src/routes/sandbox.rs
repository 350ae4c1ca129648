//! Sandbox controls for merchants' integration tests: make a test-mode konbini / Pay-easy
//! payment paid (速報), confirmed (確報), reversed (速報取消) or expired, and pay a reusable
//! number (リピート) at a store, through the same state machine and notifications as real
//! results. Authenticated with the merchant's signing key.

use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::db::merchants;
use crate::domain::konbini::Chain;
use crate::error::{AppError, AppResult};
use crate::flows::konbini::{self as flow, ActionError, SandboxAction};
use crate::state::AppState;

/// Requests signed longer ago (or further ahead) than this are refused, so a captured request
/// cannot be replayed later.
pub const MAX_SKEW_S: i64 = 300;

/// The `{action}` path segments the endpoint accepts.
pub const ENDPOINT_ACTIONS: [&str; 4] = ["paid", "confirm", "reverse", "expire"];

fn api(status: StatusCode, code: &'static str, message: impl Into<String>) -> AppError {
    AppError::Api {
        status,
        code,
        message: message.into(),
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &'static str) -> AppResult<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            api(
                StatusCode::UNAUTHORIZED,
                "missing_header",
                format!("header {name} is required"),
            )
        })
}

/// The string a request signs: `{METHOD}\n{PATH}\n{unix_ts}`; PATH includes `?query` when sent.
pub fn string_to_sign(method: &str, path_and_query: &str, ts: i64) -> String {
    format!("{method}\n{path_and_query}\n{ts}")
}

/// Checks the merchant's signature headers on a sandbox request: the merchant, a signing key of
/// it, an HMAC of `{METHOD}\n{PATH}\n{X-Timestamp}` and a timestamp within 5 minutes.
async fn authenticate(
    state: &AppState,
    method: &Method,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
) -> AppResult<merchants::MerchantRow> {
    let merchant_id = header(headers, "x-merchant-id")?;
    let key_id = header(headers, "x-key-id")?;
    let signature = header(headers, "x-signature")?;
    let ts: i64 = header(headers, "x-timestamp")?.parse().map_err(|_| {
        api(
            StatusCode::UNAUTHORIZED,
            "bad_timestamp",
            "X-Timestamp must be unix seconds",
        )
    })?;
    let (merchant, secret) =
        merchants::merchant_with_key(&state.db, &state.keys, merchant_id, key_id)
            .await
            .map_err(|e| match e {
                merchants::KeyLookupError::UnknownMerchant => api(
                    StatusCode::UNAUTHORIZED,
                    "unknown_merchant",
                    "unknown merchant",
                ),
                merchants::KeyLookupError::UnknownKey => api(
                    StatusCode::UNAUTHORIZED,
                    "unknown_key",
                    "unknown or retired signing key",
                ),
                other => AppError::from(other),
            })?;
    let path = uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or(uri.path());
    if !crate::signing::verify(
        &secret,
        &string_to_sign(method.as_str(), path, ts),
        signature,
    ) {
        return Err(api(
            StatusCode::UNAUTHORIZED,
            "bad_signature",
            "X-Signature must be the hex HMAC-SHA256 of \"{METHOD}\\n{PATH}\\n{X-Timestamp}\" with the key's secret",
        ));
    }
    // abs_diff: a hostile timestamp (e.g. i64::MIN) must not overflow.
    if state.now_s().abs_diff(ts) > MAX_SKEW_S.unsigned_abs() {
        return Err(api(
            StatusCode::UNAUTHORIZED,
            "stale_timestamp",
            "X-Timestamp is more than 5 minutes away from the server's clock",
        ));
    }
    Ok(merchant)
}

/// `POST /sandbox/v1/payments/{payment_id}/{action}`, action ∈ `paid|confirm|reverse|expire`;
/// `paid` takes an optional `?paid_at=<unix seconds>` (default now).
pub async fn control(
    State(state): State<AppState>,
    Path((payment_id, action)): Path<(String, String)>,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> AppResult<Response> {
    let merchant = authenticate(&state, &method, &uri, &headers).await?;
    let paid_at = paid_at_ms(uri.query())?;
    // The endpoint speaks the result names (`paid`); the CLI's verb `pay` is not a path here.
    let action = Some(action.as_str())
        .filter(|a| ENDPOINT_ACTIONS.contains(a))
        .and_then(|a| SandboxAction::parse(a, paid_at))
        .ok_or_else(|| {
            api(
                StatusCode::NOT_FOUND,
                "unknown_action",
                "action must be paid, confirm, reverse or expire",
            )
        })?;
    if paid_at.is_some() && !matches!(action, SandboxAction::Paid { .. }) {
        return Err(api(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            "paid_at is only accepted by the paid action",
        ));
    }
    match flow::sandbox_apply(
        &state.db,
        &payment_id,
        Some(&merchant.id),
        action,
        "sandbox_api",
        state.now_ms(),
    )
    .await
    {
        Ok(p) => {
            state.wake_notifier();
            Ok(Json(serde_json::json!({ "payment": flow::payment_json(&p) })).into_response())
        }
        Err(e) => Err(action_error(e)),
    }
}

/// `paid_at` from the query (unix seconds); any other parameter is refused.
fn paid_at_ms(query: Option<&str>) -> AppResult<Option<i64>> {
    let mut paid_at = None;
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "paid_at" => {
                let s: i64 = v.parse().ok().filter(|s| *s > 0).ok_or_else(|| {
                    api(
                        StatusCode::BAD_REQUEST,
                        "invalid_paid_at",
                        "paid_at must be unix seconds",
                    )
                })?;
                paid_at = Some(s.saturating_mul(1000));
            }
            other => {
                return Err(api(
                    StatusCode::BAD_REQUEST,
                    "invalid_query",
                    format!("unknown query parameter {other:?}"),
                ))
            }
        }
    }
    Ok(paid_at)
}

/// `POST /sandbox/v1/repeat-numbers/{id}/pay`: the customer paid the reusable number at a
/// store now (速報): a new payment, paid, with its notification. `?amount=<yen>` for a number
/// whose amount is decided at the store, `?chain=<code>` for the store (default: the
/// merchant's first enabled chain).
pub async fn repeat_pay(
    State(state): State<AppState>,
    Path(repeat_id): Path<String>,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> AppResult<Response> {
    let merchant = authenticate(&state, &method, &uri, &headers).await?;
    let (amount, chain) = repeat_query(uri.query())?;
    let p = crate::flows::repeat::sandbox_pay(
        &state.db,
        &repeat_id,
        Some(&merchant.id),
        amount,
        chain,
        "sandbox_api",
        state.now_ms(),
    )
    .await?;
    state.wake_notifier();
    Ok(Json(serde_json::json!({ "payment": flow::payment_json(&p) })).into_response())
}

/// `amount` (yen) and `chain` (a chain code) from the query; any other parameter is refused.
fn repeat_query(query: Option<&str>) -> AppResult<(Option<i64>, Option<Chain>)> {
    let (mut amount, mut chain) = (None, None);
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "amount" => {
                amount = Some(v.parse::<i64>().map_err(|_| {
                    api(
                        StatusCode::BAD_REQUEST,
                        "invalid_query",
                        "amount must be whole yen",
                    )
                })?);
            }
            "chain" => {
                chain = Some(Chain::parse(&v).ok_or_else(|| {
                    api(
                        StatusCode::BAD_REQUEST,
                        "invalid_query",
                        "chain must be seven, lawson, famima, ministop, daily or seicomart",
                    )
                })?);
            }
            other => {
                return Err(api(
                    StatusCode::BAD_REQUEST,
                    "invalid_query",
                    format!("unknown query parameter {other:?}"),
                ))
            }
        }
    }
    Ok((amount, chain))
}

fn action_error(e: ActionError) -> AppError {
    match e {
        // The sandbox does not exist for live merchants (or for payments a processor took):
        // their payments are as unknown to it as any other id.
        ActionError::NotFound | ActionError::LiveMode => api(
            StatusCode::NOT_FOUND,
            "payment_not_found",
            "no such sandbox payment for this merchant",
        ),
        ActionError::NotNumberPayment => api(
            StatusCode::CONFLICT,
            "not_a_number_payment",
            "only konbini and Pay-easy payments take these actions",
        ),
        ActionError::Transition(t) => api(StatusCode::CONFLICT, t.code(), t.to_string()),
        ActionError::Conflict => api(
            StatusCode::CONFLICT,
            "conflict",
            "the payment changed at the same time; retry",
        ),
        ActionError::BadStatus(s) => AppError::Internal(anyhow::anyhow!("bad status {s}")),
        ActionError::Db(e) => AppError::Db(e),
    }
}
