//! The one error type, and how each kind is shown: a device-appropriate page for shoppers,
//! JSON with a stable code for API callers, a generic page (and a full log line) for bugs.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

pub use crate::domain::reason::Reason;
use crate::flows::error::{FlowError, Refused};

/// The HTTP status of a refusal: the edge's mapping of a domain reason.
pub fn http_status(reason: Reason) -> StatusCode {
    match reason {
        Reason::BadSignature | Reason::UnknownMerchant | Reason::UnknownKey => {
            StatusCode::FORBIDDEN
        }
        Reason::BadCsrf | Reason::ReturnRejected => StatusCode::FORBIDDEN,
        Reason::LinkExpired | Reason::SessionExpired => StatusCode::GONE,
        Reason::OrderConflict | Reason::CheckoutClosed => StatusCode::CONFLICT,
        Reason::Locked => StatusCode::TOO_MANY_REQUESTS,
        Reason::NotFound => StatusCode::NOT_FOUND,
        _ => StatusCode::BAD_REQUEST,
    }
}

/// Every error a handler can return.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// A shopper-facing refusal, rendered as a page for the shopper's device.
    #[error("rejected: {}", .reason.code())]
    Shopper {
        reason: Reason,
        field: Option<&'static str>,
    },
    /// A merchant/API refusal, rendered as JSON `{"error": {"code", "message"}}`.
    #[error("api error: {code}")]
    Api {
        status: StatusCode,
        code: &'static str,
        message: String,
    },
    /// A merchant/API caller over a rate limit: 429 with `Retry-After`.
    #[error("rate limited: {code}")]
    RateLimited {
        code: &'static str,
        message: String,
        retry_after_s: i64,
    },
    #[error(transparent)]
    Db(#[from] crate::db::Error),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl AppError {
    /// A merchant/API refusal with its documented code.
    pub fn api(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        AppError::Api {
            status,
            code,
            message: message.into(),
        }
    }
    pub fn shopper(reason: Reason) -> Self {
        AppError::Shopper {
            reason,
            field: None,
        }
    }
    pub fn field(reason: Reason, field: &'static str) -> Self {
        AppError::Shopper {
            reason,
            field: Some(field),
        }
    }
}

impl From<crate::db::merchants::KeyLookupError> for AppError {
    fn from(e: crate::db::merchants::KeyLookupError) -> Self {
        use crate::db::merchants::KeyLookupError as K;
        match e {
            K::UnknownMerchant => AppError::shopper(Reason::UnknownMerchant),
            K::UnknownKey => AppError::shopper(Reason::UnknownKey),
            K::Db(e) => AppError::Db(e),
            e @ K::Sealed(..) => AppError::Internal(e.into()),
        }
    }
}

impl From<(Reason, Option<&'static str>)> for AppError {
    fn from((reason, field): (Reason, Option<&'static str>)) -> Self {
        AppError::Shopper { reason, field }
    }
}

/// The HTTP status of a flow's merchant/API refusal.
pub fn refused_status(kind: Refused) -> StatusCode {
    match kind {
        Refused::NotFound => StatusCode::NOT_FOUND,
        Refused::Conflict => StatusCode::CONFLICT,
        Refused::Invalid => StatusCode::BAD_REQUEST,
        Refused::Unprocessable => StatusCode::UNPROCESSABLE_ENTITY,
        Refused::Upstream => StatusCode::BAD_GATEWAY,
    }
}

/// The one place a flow's error becomes the edge's.
impl From<FlowError> for AppError {
    fn from(e: FlowError) -> Self {
        match e {
            FlowError::Shopper { reason, field } => AppError::Shopper { reason, field },
            FlowError::Refused {
                kind,
                code,
                message,
            } => AppError::Api {
                status: refused_status(kind),
                code,
                message,
            },
            FlowError::Db(e) => AppError::Db(e),
            FlowError::Internal(e) => AppError::Internal(e),
        }
    }
}

/// Attached to error responses; the `render_errors` middleware turns it into the final body,
/// because only the middleware sees the request (device, path) the page must fit.
#[derive(Clone, Debug)]
pub struct ErrorInfo {
    pub code: &'static str,
    pub field: Option<&'static str>,
    pub message_ja: &'static str,
    pub message_en: String,
    pub api: bool,
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let mut retry_after = None;
        let (status, info) = match self {
            AppError::Shopper { reason, field } => {
                tracing::info!(code = reason.code(), field, "request refused");
                (
                    http_status(reason),
                    ErrorInfo {
                        code: reason.code(),
                        field,
                        message_ja: reason.message_ja(),
                        message_en: reason.message_en().to_owned(),
                        api: false,
                    },
                )
            }
            AppError::Api {
                status,
                code,
                message,
            } => (
                status,
                ErrorInfo {
                    code,
                    field: None,
                    message_ja: "",
                    message_en: message,
                    api: true,
                },
            ),
            AppError::RateLimited {
                code,
                message,
                retry_after_s,
            } => {
                retry_after = Some(retry_after_s);
                (
                    StatusCode::TOO_MANY_REQUESTS,
                    ErrorInfo {
                        code,
                        field: None,
                        message_ja: "",
                        message_en: message,
                        api: true,
                    },
                )
            }
            AppError::Db(e) => internal(&e),
            AppError::Internal(e) => internal(&*e),
        };
        let mut resp = status.into_response();
        if let Some(s) = retry_after {
            resp.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(s),
            );
        }
        resp.extensions_mut().insert(info);
        resp
    }
}

fn internal(e: &dyn std::fmt::Display) -> (StatusCode, ErrorInfo) {
    // Full detail goes to the log only; the shopper sees a generic page.
    tracing::error!(error = %e, "internal error");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        ErrorInfo {
            code: "internal_error",
            field: None,
            message_ja: "システムエラーが発生しました。しばらくしてからもう一度お試しください。",
            message_en: "Something went wrong on our side. Please try again shortly.".into(),
            api: false,
        },
    )
}

pub type AppResult<T> = Result<T, AppError>;
