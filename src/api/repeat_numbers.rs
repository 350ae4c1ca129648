//! Reusable payment numbers (リピート) over the API: register, read, list, the store payments
//! taken on one, and retire. Another merchant's number is answered exactly like a missing one.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::payments::Payment;
use super::{err, time, ApiJson, ApiMerchant};
use crate::domain::repeat::AmountRule;
use crate::error::AppResult;
use crate::flows::repeat::{self as flow, NewNumber, RepeatRow};
use crate::state::AppState;

/// How many numbers the list returns (newest first).
const LIST_LIMIT: i64 = 100;

/// A bill to register once and have paid again and again.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRepeatNumber {
    /// Your customer reference (会員番号 etc.), 1–64 characters; each payment's `order_id` is
    /// `{reference}#{n}`.
    #[schema(example = "member-0042")]
    pub reference: String,
    /// What the bill is for, 1–64 characters (printed on the card, each payment's item name).
    #[schema(example = "プリペイドチャージ")]
    pub name: String,
    pub customer_name: Option<String>,
    /// `fixed` (the same `amount` every time) or `per_payment` (decided at the store).
    #[schema(example = "fixed")]
    pub amount_type: String,
    /// Yen, 1–300,000; required for `fixed`, refused for `per_payment`.
    #[schema(example = 5000)]
    pub amount: Option<i64>,
    /// Days the number stays payable, 1–1096 (default 365); it ends at 23:59:59 JST.
    #[schema(example = 365)]
    pub valid_days: Option<i64>,
}

/// A reusable payment number.
#[derive(Debug, Serialize, ToSchema)]
pub struct RepeatNumber {
    /// rpn_…
    pub id: String,
    pub reference: String,
    pub name: String,
    pub customer_name: Option<String>,
    /// `fixed` or `per_payment`.
    pub amount_type: String,
    /// The fixed amount; `null` for `per_payment`.
    pub amount: Option<i64>,
    /// The 13-digit number the customer gives at any konbini.
    pub number: String,
    /// `active`, `expired` (validity over) or `retired`.
    pub status: String,
    pub status_label_ja: String,
    pub valid_until: String,
    /// Store payments taken so far.
    pub payments_count: i64,
    pub created_at: String,
    pub retired_at: Option<String>,
}

impl RepeatNumber {
    fn of(r: RepeatRow, now: i64) -> RepeatNumber {
        let state = r.state(now);
        RepeatNumber {
            amount_type: match r.rule() {
                AmountRule::Fixed(_) => "fixed",
                AmountRule::PerPayment => "per_payment",
            }
            .to_owned(),
            status: state.code().to_owned(),
            status_label_ja: state.label_ja().to_owned(),
            valid_until: time(r.valid_until),
            created_at: time(r.created_at),
            retired_at: r.retired_at.map(time),
            id: r.id,
            reference: r.reference,
            name: r.name,
            customer_name: r.customer_name,
            amount: r.amount,
            number: r.number,
            payments_count: r.payments_count,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RepeatNumberList {
    pub data: Vec<RepeatNumber>,
}

/// A number's store payments, newest first (at most 100).
#[derive(Debug, Serialize, ToSchema)]
pub struct RepeatPaymentList {
    pub data: Vec<Payment>,
}

fn amount_rule(req: &CreateRepeatNumber) -> AppResult<AmountRule> {
    let field = |code, message: &str| err(StatusCode::BAD_REQUEST, code, message);
    match (req.amount_type.as_str(), req.amount) {
        ("fixed", Some(a)) => Ok(AmountRule::Fixed(a)),
        ("fixed", None) => Err(field("amount_required", "a fixed number needs amount")),
        ("per_payment", None) => Ok(AmountRule::PerPayment),
        ("per_payment", Some(_)) => Err(field(
            "invalid_field",
            "a per_payment number takes its amount at the store: send no amount",
        )),
        _ => Err(err(
            StatusCode::BAD_REQUEST,
            "invalid_field",
            "amount_type must be fixed or per_payment",
        )),
    }
}

/// Register a reusable payment number (test mode: the sandbox).
#[utoipa::path(
    post,
    path = "/api/v1/repeat-numbers",
    operation_id = "createRepeatNumber",
    tag = "repeat numbers",
    params(super::openapi::IdempotencyKey),
    request_body = CreateRepeatNumber,
    responses(
        (status = 201, body = RepeatNumber),
        (status = 400, description = "invalid_field, amount_required, amount_not_positive, amount_too_large, invalid_valid_days", body = super::openapi::ApiError),
        (status = 401, body = super::openapi::ApiError),
        (status = 409, description = "repeat_numbers_unavailable (live mode: no connector offers reusable numbers; or konbini not enabled)", body = super::openapi::ApiError),
        (status = 502, description = "institution_unavailable", body = super::openapi::ApiError),
    ),
    security(("api_key" = []))
)]
pub async fn create(
    State(state): State<AppState>,
    ApiMerchant(m): ApiMerchant,
    ApiJson(req): ApiJson<CreateRepeatNumber>,
) -> AppResult<(StatusCode, Json<RepeatNumber>)> {
    let amount = amount_rule(&req)?;
    let new = NewNumber {
        reference: req.reference,
        name: req.name,
        customer_name: req.customer_name,
        amount,
        valid_days: req.valid_days,
    };
    let r = flow::create(&state, &m, new).await?;
    Ok((
        StatusCode::CREATED,
        Json(RepeatNumber::of(r, state.now_ms())),
    ))
}

/// List your reusable numbers, newest first (at most 100).
#[utoipa::path(
    get,
    path = "/api/v1/repeat-numbers",
    operation_id = "listRepeatNumbers",
    tag = "repeat numbers",
    responses(
        (status = 200, body = RepeatNumberList),
        (status = 401, body = super::openapi::ApiError),
    ),
    security(("api_key" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    ApiMerchant(m): ApiMerchant,
) -> AppResult<Json<RepeatNumberList>> {
    let now = state.now_ms();
    let data = crate::db::repeat_numbers::list(
        &state.db,
        &crate::domain::scope::Scope::Merchant(m.id.clone()),
        LIST_LIMIT,
    )
    .await?
    .into_iter()
    .map(|r| RepeatNumber::of(r, now))
    .collect();
    Ok(Json(RepeatNumberList { data }))
}

/// Retrieve a reusable number.
#[utoipa::path(
    get,
    path = "/api/v1/repeat-numbers/{id}",
    operation_id = "getRepeatNumber",
    tag = "repeat numbers",
    params(("id" = String, Path, description = "Repeat number id (rpn_…)")),
    responses(
        (status = 200, body = RepeatNumber),
        (status = 401, body = super::openapi::ApiError),
        (status = 404, description = "repeat_number_not_found", body = super::openapi::ApiError),
    ),
    security(("api_key" = []))
)]
pub async fn get(
    State(state): State<AppState>,
    ApiMerchant(m): ApiMerchant,
    Path(id): Path<String>,
) -> AppResult<Json<RepeatNumber>> {
    let r = flow::get(&state.db, &m.id, &id).await?;
    Ok(Json(RepeatNumber::of(r, state.now_ms())))
}

/// The store payments taken on a reusable number, newest first (at most 100).
#[utoipa::path(
    get,
    path = "/api/v1/repeat-numbers/{id}/payments",
    operation_id = "listRepeatNumberPayments",
    tag = "repeat numbers",
    params(("id" = String, Path, description = "Repeat number id (rpn_…)")),
    responses(
        (status = 200, body = RepeatPaymentList),
        (status = 401, body = super::openapi::ApiError),
        (status = 404, description = "repeat_number_not_found", body = super::openapi::ApiError),
    ),
    security(("api_key" = []))
)]
pub async fn payments(
    State(state): State<AppState>,
    ApiMerchant(m): ApiMerchant,
    Path(id): Path<String>,
) -> AppResult<Json<RepeatPaymentList>> {
    let r = flow::get(&state.db, &m.id, &id).await?;
    let data = flow::payments_of(&state.db, &r)
        .await?
        .into_iter()
        .map(Payment::from)
        .collect();
    Ok(Json(RepeatPaymentList { data }))
}

/// Retire a reusable number: no store payment is taken on it any more (final).
#[utoipa::path(
    post,
    path = "/api/v1/repeat-numbers/{id}/retire",
    operation_id = "retireRepeatNumber",
    tag = "repeat numbers",
    params(("id" = String, Path, description = "Repeat number id (rpn_…)"), super::openapi::IdempotencyKey),
    responses(
        (status = 200, description = "Retired (also when it was already)", body = RepeatNumber),
        (status = 401, body = super::openapi::ApiError),
        (status = 404, description = "repeat_number_not_found", body = super::openapi::ApiError),
    ),
    security(("api_key" = []))
)]
pub async fn retire(
    State(state): State<AppState>,
    ApiMerchant(m): ApiMerchant,
    Path(id): Path<String>,
) -> AppResult<Json<RepeatNumber>> {
    let r = flow::retire(&state, &m.id, &id).await?;
    Ok(Json(RepeatNumber::of(r, state.now_ms())))
}
