//! Console errors: a sign-in redirect, or a console page with a status and a message.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};

/// Every refusal a console handler can return. Rendered by [`render`] with the console layout.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// Not signed in, or the session expired: go to the login page.
    #[error("sign-in required")]
    Login,
    #[error("forbidden")]
    Forbidden,
    #[error("not found")]
    NotFound,
    #[error("form expired (CSRF)")]
    BadCsrf,
    /// Bad input, with a message for the user (Japanese).
    #[error("bad request: {0}")]
    Bad(String),
    /// A card action the payment's state or the acquirer refused.
    #[error("conflict: {0}")]
    Conflict(String),
    #[error(transparent)]
    Db(#[from] crate::db::Error),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

pub type ConsoleResult<T> = Result<T, ConsoleError>;

/// Carried in the response extensions so the console middleware can render the page with the
/// state (stylesheet URL) it has and `IntoResponse` has not.
#[derive(Clone, Debug)]
pub struct ConsoleErrorInfo {
    pub status: StatusCode,
    pub message: String,
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let (status, message) = match &self {
            ConsoleError::Login => return Redirect::to("/console/login").into_response(),
            ConsoleError::Forbidden => (
                StatusCode::FORBIDDEN,
                "この操作を行う権限がありません。".to_owned(),
            ),
            ConsoleError::NotFound => {
                (StatusCode::NOT_FOUND, "ページが見つかりません。".to_owned())
            }
            ConsoleError::BadCsrf => (
                StatusCode::FORBIDDEN,
                "画面の有効期限が切れました。もう一度お試しください。".to_owned(),
            ),
            ConsoleError::Bad(m) => (StatusCode::BAD_REQUEST, m.clone()),
            ConsoleError::Conflict(m) => (StatusCode::CONFLICT, m.clone()),
            ConsoleError::Db(e) => {
                tracing::error!(error = %e, "console database error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "システムエラーが発生しました。".to_owned(),
                )
            }
            ConsoleError::Internal(e) => {
                tracing::error!(error = %e, "console internal error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "システムエラーが発生しました。".to_owned(),
                )
            }
        };
        let mut r = (status, message.clone()).into_response();
        r.extensions_mut()
            .insert(ConsoleErrorInfo { status, message });
        r
    }
}
