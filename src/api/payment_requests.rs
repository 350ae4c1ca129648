//! Payment requests (SMS決済 / メール決済) over the API: create (sends the SMS and/or queues the
//! e-mail), read, resend, cancel, and the sandbox outbox `GET /api/v1/sms/messages` for
//! test-mode merchants.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{err, time, ApiJson, ApiMerchant};
use crate::domain::Mode;
use crate::error::{AppError, AppResult};
use crate::flows::payment_requests::SendError;
use crate::flows::payment_requests::{self as requests, NewRequest, RequestRow};
use crate::sms::SmsRow;
use crate::state::AppState;

/// A payment request to send by SMS, by e-mail, or both (at least one of `phone`, `email`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePaymentRequest {
    /// Japanese mobile number (070/080/090) for the SMS; hyphens, spaces and +81 are accepted.
    #[schema(example = "090-1234-5678")]
    pub phone: Option<String>,
    /// E-mail address for the e-mail carrying the link (sent through the message outbox, see
    /// docs/messages.md); also becomes the link's `shopper_email` unless that is given.
    #[schema(example = "hanako@example.jp")]
    pub email: Option<String>,
    #[schema(example = "order-2001")]
    pub order_id: String,
    #[schema(example = 3300)]
    pub amount: i64,
    #[schema(example = "修理代金")]
    pub item_name: String,
    /// Seconds the payment link works (default 86400, at most 30 days).
    #[schema(example = 604800)]
    pub expires_in: Option<i64>,
    /// Where the shopper returns after paying (default: the first registered origin, `/`).
    pub return_url: Option<String>,
    pub cancel_url: Option<String>,
    pub shopper_name: Option<String>,
    pub shopper_email: Option<String>,
    pub methods: Option<Vec<String>>,
    pub konbini_days: Option<i64>,
    pub lang: Option<String>,
}

/// One SMS and its delivery state.
#[derive(Debug, Serialize, ToSchema)]
pub struct SmsMessage {
    pub id: String,
    pub payment_request_id: Option<String>,
    /// Normalised `0?0` + 8 digits (e.g. `09012345678`).
    pub to: String,
    pub text: String,
    /// `sandbox` or `http`.
    pub provider: String,
    /// `queued`, `sent` or `failed`.
    pub status: String,
    /// The gateway's message id.
    pub provider_message_id: Option<String>,
    pub error: Option<String>,
    pub created_at: String,
}

impl From<SmsRow> for SmsMessage {
    fn from(s: SmsRow) -> Self {
        SmsMessage {
            id: s.id,
            payment_request_id: s.payment_request_id,
            to: s.phone,
            text: s.body,
            provider: s.provider,
            status: s.status.code().to_owned(),
            provider_message_id: s.provider_ref,
            error: s.error,
            created_at: time(s.created_at),
        }
    }
}

/// One e-mail of a payment request and its delivery state.
#[derive(Debug, Serialize, ToSchema)]
pub struct EmailMessage {
    pub id: String,
    pub to: String,
    /// `pending`, `sent`, `failed`, or `cancelled` (not needed: the request was paid, expired
    /// or cancelled before it went out).
    pub status: String,
    pub attempts: i64,
    /// The last refusal of the mail server, if any.
    pub error: Option<String>,
    pub sent_at: Option<String>,
    pub created_at: String,
}

/// A payment request.
#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentRequest {
    pub id: String,
    pub order_id: String,
    pub checkout_id: String,
    /// The mobile number the SMS went to (normalised); null for an e-mail-only request.
    pub phone: Option<String>,
    /// The address the e-mail went to; null for an SMS-only request.
    pub email: Option<String>,
    pub amount: i64,
    pub item_name: String,
    /// The short URL sent by SMS.
    pub url: String,
    /// `open`, `pending`, `paid`, `expired` or `cancelled`.
    pub status: String,
    pub expires_at: String,
    pub created_at: String,
    /// Every SMS sent for it, oldest first.
    pub messages: Vec<SmsMessage>,
    /// Every e-mail queued for it, oldest first.
    pub emails: Vec<EmailMessage>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SmsMessageList {
    pub data: Vec<SmsMessage>,
}

async fn view(state: &AppState, r: RequestRow) -> AppResult<PaymentRequest> {
    let status = requests::status_of(&state.db, &r, state.now_ms())
        .await?
        .code()
        .to_owned();
    let messages = crate::sms::messages_of_request(&state.db, &r.id)
        .await?
        .into_iter()
        .map(SmsMessage::from)
        .collect();
    let emails = crate::db::messages::for_request(&state.db, &r.id)
        .await?
        .into_iter()
        .map(|e| EmailMessage {
            id: e.id,
            to: e.recipient,
            status: e.status.code().to_owned(),
            attempts: e.attempts,
            error: e.last_error,
            sent_at: e.sent_at.map(time),
            created_at: time(e.created_at),
        })
        .collect();
    Ok(PaymentRequest {
        url: requests::short_url(state, &r.code),
        phone: r.phone().map(str::to_owned),
        email: r.email.clone(),
        emails,
        id: r.id,
        order_id: r.order_id,
        checkout_id: r.checkout_id,
        amount: r.amount,
        item_name: r.item_name,
        status,
        expires_at: time(r.expires_at),
        created_at: time(r.created_at),
        messages,
    })
}

/// Create a payment request and send its link by SMS and/or e-mail.
#[utoipa::path(
    post,
    path = "/api/v1/payment-requests",
    operation_id = "createPaymentRequest",
    tag = "payment requests",
    params(super::openapi::IdempotencyKey),
    request_body = CreatePaymentRequest,
    responses(
        (status = 201, description = "Created; see messages[].status for the SMS delivery and emails[].status for the e-mail's", body = PaymentRequest),
        (status = 400, description = "recipient_required, invalid_phone, invalid_email, or a link reason code (invalid_field, invalid_amount, …)", body = super::openapi::ApiError),
        (status = 401, body = super::openapi::ApiError),
        (status = 409, description = "sms_provider_not_configured, order_conflict, checkout_not_open", body = super::openapi::ApiError),
        (status = 422, description = "sms_too_long", body = super::openapi::ApiError),
        (status = 429, description = "rate_limited (see Retry-After)", body = super::openapi::ApiError),
    ),
    security(("api_key" = []))
)]
pub async fn create(
    State(state): State<AppState>,
    ApiMerchant(m): ApiMerchant,
    ApiJson(req): ApiJson<CreatePaymentRequest>,
) -> AppResult<(StatusCode, Json<PaymentRequest>)> {
    let return_url = match req.return_url.filter(|u| !u.is_empty()) {
        Some(u) => u,
        None => m
            .origins()
            .first()
            .map(|o| format!("{o}/"))
            .ok_or_else(|| {
                err(
                    StatusCode::BAD_REQUEST,
                    "return_url_required",
                    "the merchant has no registered return origin: give return_url",
                )
            })?,
    };
    let checkout = super::checkouts::CreateCheckout {
        order_id: req.order_id,
        amount: req.amount,
        item_name: req.item_name.clone(),
        shopper_name: req.shopper_name,
        shopper_kana: None,
        shopper_email: req.shopper_email,
        shopper_phone: None,
        methods: req.methods,
        return_url,
        cancel_url: req.cancel_url,
        expires_in: None,
        konbini_days: req.konbini_days,
        lang: req.lang,
        customer_id: None,
    };
    let new = NewRequest {
        phone: req.phone.unwrap_or_default(),
        email: req.email.unwrap_or_default(),
        order_fields: checkout.order_fields(),
        amount: req.amount,
        item_name: req.item_name,
        expires_in_s: req
            .expires_in
            .unwrap_or(super::checkouts::DEFAULT_EXPIRES_IN),
    };
    let (r, _) = requests::create(&state, &m, new).await?;
    Ok((StatusCode::CREATED, Json(view(&state, r).await?)))
}

/// Retrieve a payment request with its messages.
#[utoipa::path(
    get,
    path = "/api/v1/payment-requests/{id}",
    operation_id = "getPaymentRequest",
    tag = "payment requests",
    params(("id" = String, Path, description = "Payment request id (preq_…)")),
    responses(
        (status = 200, body = PaymentRequest),
        (status = 401, body = super::openapi::ApiError),
        (status = 404, description = "payment_request_not_found", body = super::openapi::ApiError),
    ),
    security(("api_key" = []))
)]
pub async fn get(
    State(state): State<AppState>,
    ApiMerchant(m): ApiMerchant,
    Path(id): Path<String>,
) -> AppResult<Json<PaymentRequest>> {
    let r = requests::get(&state.db, &m.id, &id).await?;
    Ok(Json(view(&state, r).await?))
}

/// Send the request again (same link): the SMS and/or the e-mail, to where it first went.
#[utoipa::path(
    post,
    path = "/api/v1/payment-requests/{id}/resend",
    operation_id = "resendPaymentRequest",
    tag = "payment requests",
    params(("id" = String, Path, description = "Payment request id"), super::openapi::IdempotencyKey),
    responses(
        (status = 200, body = PaymentRequest),
        (status = 401, body = super::openapi::ApiError),
        (status = 404, description = "payment_request_not_found", body = super::openapi::ApiError),
        (status = 409, description = "payment_request_not_open", body = super::openapi::ApiError),
        (status = 429, description = "rate_limited (see Retry-After)", body = super::openapi::ApiError),
    ),
    security(("api_key" = []))
)]
pub async fn resend(
    State(state): State<AppState>,
    ApiMerchant(m): ApiMerchant,
    Path(id): Path<String>,
) -> AppResult<Json<PaymentRequest>> {
    let (r, _) = requests::resend(&state, &m, &id).await?;
    Ok(Json(view(&state, r).await?))
}

/// Cancel a payment request: its link stops working and its checkout closes.
#[utoipa::path(
    post,
    path = "/api/v1/payment-requests/{id}/cancel",
    operation_id = "cancelPaymentRequest",
    tag = "payment requests",
    params(("id" = String, Path, description = "Payment request id"), super::openapi::IdempotencyKey),
    responses(
        (status = 200, body = PaymentRequest),
        (status = 401, body = super::openapi::ApiError),
        (status = 404, description = "payment_request_not_found", body = super::openapi::ApiError),
        (status = 409, description = "payment_exists: cancel the payment instead", body = super::openapi::ApiError),
    ),
    security(("api_key" = []))
)]
pub async fn cancel(
    State(state): State<AppState>,
    ApiMerchant(m): ApiMerchant,
    Path(id): Path<String>,
) -> AppResult<Json<PaymentRequest>> {
    let r = requests::cancel(&state, &m, &id).await?;
    Ok(Json(view(&state, r).await?))
}

/// The sandbox's sent messages (test-mode merchants only), newest first.
#[utoipa::path(
    get,
    path = "/api/v1/sms/messages",
    operation_id = "listSmsMessages",
    tag = "payment requests",
    responses(
        (status = 200, body = SmsMessageList),
        (status = 401, body = super::openapi::ApiError),
        (status = 403, description = "test_mode_only", body = super::openapi::ApiError),
    ),
    security(("api_key" = []))
)]
pub async fn messages(
    State(state): State<AppState>,
    ApiMerchant(m): ApiMerchant,
) -> AppResult<Json<SmsMessageList>> {
    if m.mode() != Mode::Test {
        return Err(err(
            StatusCode::FORBIDDEN,
            "test_mode_only",
            "the SMS sandbox is only readable by test-mode merchants",
        ));
    }
    let data = crate::sms::list_messages(&state.db, &m.id, 100)
        .await?
        .into_iter()
        .map(SmsMessage::from)
        .collect();
    Ok(Json(SmsMessageList { data }))
}

/// The API's answer to a refused send: 429 with `Retry-After` for the rate limit.
impl From<SendError> for AppError {
    fn from(e: SendError) -> Self {
        match e {
            SendError::RateLimited { retry_after_s } => AppError::RateLimited {
                code: "rate_limited",
                message: format!(
                    "too many SMS messages this minute; retry after {retry_after_s} s"
                ),
                retry_after_s,
            },
            SendError::Flow(e) => e.into(),
        }
    }
}
