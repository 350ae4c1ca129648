//! Payments over the API: read one, list with filters and keyset pagination, and the card
//! actions capture (売上確定), cancel (取消) and refund (返金) through [`crate::flows::card`].
//! Another merchant's payment is answered exactly like a missing one (404).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{err, time, ApiJson, ApiMerchant, ApiQuery};
use crate::db::payments::{self, PaymentRow};
use crate::error::{AppError, AppResult};
use crate::flows::card;
use crate::state::AppState;

/// A payment as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Payment {
    /// 決済ID
    pub id: String,
    /// 取引ID (the merchant's order id)
    pub order_id: String,
    pub checkout_id: String,
    /// `card`, `konbini`, …
    pub method: String,
    /// 支払機関名: card brand, store or bank.
    pub institution: Option<String>,
    pub status: String,
    /// 決済ステータス in Japanese.
    pub status_label_ja: String,
    pub amount: i64,
    pub captured_amount: i64,
    pub refunded_amount: i64,
    pub fee: i64,
    pub deadline_at: Option<String>,
    pub paid_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// Method details (masked card data only).
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
}

impl From<PaymentRow> for Payment {
    fn from(p: PaymentRow) -> Self {
        Payment {
            status_label_ja: p.status.label_ja().to_owned(),
            details: p.details_json(),
            deadline_at: p.deadline_at.map(time),
            paid_at: p.paid_at.map(time),
            created_at: time(p.created_at),
            updated_at: time(p.updated_at),
            id: p.id,
            order_id: p.order_id,
            checkout_id: p.checkout_id,
            method: p.method.code().to_owned(),
            institution: p.institution,
            status: p.status.code().to_owned(),
            amount: p.amount,
            captured_amount: p.captured_amount,
            refunded_amount: p.refunded_amount,
            fee: p.fee,
        }
    }
}

/// A page of payments, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentList {
    pub data: Vec<Payment>,
    /// Whether more payments follow; pass the last id as `starting_after` to get them.
    pub has_more: bool,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Exact order id.
    pub order_id: Option<String>,
    /// Status code, e.g. `authorized`, `captured`.
    pub status: Option<String>,
    /// Method code, e.g. `card`.
    pub method: Option<String>,
    /// Created at or after (unix seconds).
    pub created_from: Option<i64>,
    /// Created before (unix seconds).
    pub created_to: Option<i64>,
    /// Page size, 1–100 (default 20).
    pub limit: Option<i64>,
    /// Cursor: the id of the last payment of the previous page.
    pub starting_after: Option<String>,
}

fn not_found(id: &str) -> AppError {
    err(
        StatusCode::NOT_FOUND,
        "payment_not_found",
        format!("no payment {id}"),
    )
}

/// The merchant's payment, or 404 (also for other merchants' payments: never leak them).
pub async fn owned(state: &AppState, merchant_id: &str, id: &str) -> AppResult<PaymentRow> {
    payments::get(&state.db, id)
        .await?
        .filter(|p| p.merchant_id == merchant_id)
        .ok_or_else(|| not_found(id))
}

/// Retrieve a payment.
#[utoipa::path(
    get,
    path = "/api/v1/payments/{id}",
    operation_id = "getPayment",
    tag = "payments",
    params(("id" = String, Path, description = "Payment id (pay_…)")),
    responses(
        (status = 200, body = Payment),
        (status = 401, body = super::openapi::ApiError),
        (status = 404, description = "payment_not_found", body = super::openapi::ApiError),
    ),
    security(("api_key" = []))
)]
pub async fn get(
    State(state): State<AppState>,
    ApiMerchant(m): ApiMerchant,
    Path(id): Path<String>,
) -> AppResult<Json<Payment>> {
    Ok(Json(owned(&state, &m.id, &id).await?.into()))
}

fn filter_value(name: &'static str, v: Option<String>) -> AppResult<Option<String>> {
    match v {
        Some(s) if s.is_empty() => Ok(None),
        Some(s)
            if s.len() > 50
                || !s
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') =>
        {
            Err(err(
                StatusCode::BAD_REQUEST,
                "invalid_parameter",
                format!("{name} has unexpected characters"),
            ))
        }
        v => Ok(v),
    }
}

/// List payments, newest first, with filters and keyset pagination.
#[utoipa::path(
    get,
    path = "/api/v1/payments",
    operation_id = "listPayments",
    tag = "payments",
    params(ListQuery),
    responses(
        (status = 200, body = PaymentList),
        (status = 400, description = "invalid_parameter", body = super::openapi::ApiError),
        (status = 401, body = super::openapi::ApiError),
    ),
    security(("api_key" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    ApiMerchant(m): ApiMerchant,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> AppResult<Json<PaymentList>> {
    let limit = q.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(err(
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
            "limit must be 1 to 100",
        ));
    }
    let order_id = filter_value("order_id", q.order_id)?;
    let status = filter_value("status", q.status)?;
    let method = filter_value("method", q.method)?;
    let from_ms = q.created_from.map(|s| s.saturating_mul(1000));
    let to_ms = q.created_to.map(|s| s.saturating_mul(1000));
    let cursor = match q.starting_after.filter(|s| !s.is_empty()) {
        None => None,
        Some(id) => {
            let p = payments::get(&state.db, &id)
                .await?
                .filter(|p| p.merchant_id == m.id)
                .ok_or_else(|| {
                    err(
                        StatusCode::BAD_REQUEST,
                        "invalid_parameter",
                        "starting_after is not one of your payments",
                    )
                })?;
            Some((p.created_at, p.id))
        }
    };
    // The console's search statement: conditions only for the filters given, and the cursor as
    // a row comparison `(created_at, id) < (…)`, so the index seeks to the page instead of
    // scanning the newer rows (which a `($n IS NULL OR …)` form could not).
    let methods: Vec<&str> = method.as_deref().into_iter().collect();
    // The key's merchant is the whole scope: an owner key chose its tenant by header already.
    let scope = crate::domain::scope::Scope::Merchant(m.id.clone());
    let search = crate::db::search::PaymentSearch {
        scope: &scope,
        merchant_id: Some(&m.id),
        order_id: order_id.as_deref().unwrap_or(""),
        payment_id: "",
        status: status.as_deref().unwrap_or(""),
        methods: &methods,
        created_from: from_ms,
        created_before: to_ms,
        amount_min: None,
        amount_max: None,
        sort: crate::db::search::SortCol::Created,
        desc: true,
    };
    let after = cursor.map(|(at, id)| crate::db::search::Cursor {
        key: crate::db::search::Key::I(at),
        id,
    });
    let (rows, next) = crate::db::search::page(&state.db, &search, after.as_ref(), limit).await?;
    let has_more = next.is_some();
    Ok(Json(PaymentList {
        data: rows.into_iter().map(Payment::from).collect(),
        has_more,
    }))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CaptureRequest {
    /// Amount to capture (default: the full authorization); at most the authorized amount.
    pub amount: Option<i64>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefundRequest {
    /// Amount to refund, at most what was captured and not yet refunded (carrier billing: the
    /// whole amount).
    pub amount: i64,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmptyRequest {}

/// Capture (売上確定) an authorized card payment.
#[utoipa::path(
    post,
    path = "/api/v1/payments/{id}/capture",
    operation_id = "capturePayment",
    tag = "payments",
    params(("id" = String, Path, description = "Payment id"), super::openapi::IdempotencyKey),
    request_body(content = CaptureRequest, description = "Optional; empty body captures the full amount"),
    responses(
        (status = 200, body = Payment),
        (status = 401, body = super::openapi::ApiError),
        (status = 404, description = "payment_not_found", body = super::openapi::ApiError),
        (status = 409, description = "The payment's state does not allow it", body = super::openapi::ApiError),
    ),
    security(("api_key" = []))
)]
pub async fn capture(
    State(state): State<AppState>,
    ApiMerchant(m): ApiMerchant,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<CaptureRequest>,
) -> AppResult<Json<Payment>> {
    owned(&state, &m.id, &id).await?;
    Ok(Json(
        card::capture(&state, &id, req.amount, "api").await?.into(),
    ))
}

/// Cancel (取消) a card payment, before or after capture, or an unpaid konbini / Pay-easy number.
#[utoipa::path(
    post,
    path = "/api/v1/payments/{id}/cancel",
    operation_id = "cancelPayment",
    tag = "payments",
    params(("id" = String, Path, description = "Payment id"), super::openapi::IdempotencyKey),
    responses(
        (status = 200, body = Payment),
        (status = 401, body = super::openapi::ApiError),
        (status = 404, description = "payment_not_found", body = super::openapi::ApiError),
        (status = 409, description = "The payment's state does not allow it", body = super::openapi::ApiError),
    ),
    security(("api_key" = []))
)]
pub async fn cancel(
    State(state): State<AppState>,
    ApiMerchant(m): ApiMerchant,
    Path(id): Path<String>,
    ApiJson(_): ApiJson<EmptyRequest>,
) -> AppResult<Json<Payment>> {
    let p = owned(&state, &m.id, &id).await?;
    // An unpaid konbini / Pay-easy number is cancelled at the institution that issued it.
    if crate::domain::konbini::NumberMethod::of(p.method).is_some() {
        let row = crate::flows::number_cancel::cancel(&state, &id, "api").await?;
        return Ok(Json(row.into()));
    }
    Ok(Json(card::cancel(&state, &id, "api").await?.into()))
}

/// Refund (返金) part or all of a captured card payment, or all of a completed carrier payment.
#[utoipa::path(
    post,
    path = "/api/v1/payments/{id}/refund",
    operation_id = "refundPayment",
    tag = "payments",
    params(("id" = String, Path, description = "Payment id"), super::openapi::IdempotencyKey),
    request_body = RefundRequest,
    responses(
        (status = 200, body = Payment),
        (status = 400, description = "invalid_json (amount missing)", body = super::openapi::ApiError),
        (status = 401, body = super::openapi::ApiError),
        (status = 404, description = "payment_not_found", body = super::openapi::ApiError),
        (status = 409, description = "The payment's state does not allow it", body = super::openapi::ApiError),
    ),
    security(("api_key" = []))
)]
pub async fn refund(
    State(state): State<AppState>,
    ApiMerchant(m): ApiMerchant,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<RefundRequest>,
) -> AppResult<Json<Payment>> {
    let p = owned(&state, &m.id, &id).await?;
    // Carrier billing is refunded whole through the connector that served it.
    if crate::domain::carrier::Carrier::of(p.method).is_some() {
        let row = crate::flows::carrier_sync::refund(&state, &id, Some(req.amount), "api").await?;
        return Ok(Json(row.into()));
    }
    // Wallets are refunded (in part or whole) through the connector that served them.
    if p.method == crate::flows::wallet::METHOD {
        let row = crate::flows::wallet::refund(&state, &id, req.amount, "api").await?;
        return Ok(Json(row.into()));
    }
    Ok(Json(
        card::refund(&state, &id, req.amount, "api").await?.into(),
    ))
}
