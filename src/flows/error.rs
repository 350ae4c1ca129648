//! The flows' error: what went wrong in business terms, with no HTTP in it. Each edge maps it in
//! one place: shopper pages and the JSON API in `error.rs` (`From<FlowError> for AppError`), the
//! console in `console/actions.rs` (staff see a Japanese sentence per code, never internal text).

use crate::domain::reason::Reason;

/// What kind of refusal a merchant/API caller gets: the edge chooses the HTTP status from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// The payment (or request) does not exist for this caller.
    NotFound,
    /// Not possible in the current state (wrong status, a concurrent change, already done).
    Conflict,
    /// The request's values are wrong (amount, phone number, template).
    Invalid,
    /// Well-formed but not processable as asked (e.g. a message that does not fit).
    Unprocessable,
    /// The processor refused or could not be reached; nothing changed on our side.
    Upstream,
}

/// Every error a flow returns.
#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    /// A shopper-facing refusal (the edge renders a branded page).
    #[error("rejected: {}", .reason.code())]
    Shopper {
        reason: Reason,
        field: Option<&'static str>,
    },
    /// A merchant/API refusal with its documented code.
    #[error("{code}: {message}")]
    Refused {
        kind: Refused,
        code: &'static str,
        message: String,
    },
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

pub type FlowResult<T> = Result<T, FlowError>;

impl FlowError {
    pub fn shopper(reason: Reason) -> Self {
        FlowError::Shopper {
            reason,
            field: None,
        }
    }

    pub fn field(reason: Reason, field: &'static str) -> Self {
        FlowError::Shopper {
            reason,
            field: Some(field),
        }
    }

    /// A merchant/API refusal with its documented code.
    pub fn refused(kind: Refused, code: &'static str, message: impl Into<String>) -> Self {
        FlowError::Refused {
            kind,
            code,
            message: message.into(),
        }
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        FlowError::refused(Refused::Conflict, code, message)
    }

    /// The stable code of a refusal (`None` for a bug or a store failure).
    pub fn code(&self) -> Option<&'static str> {
        match self {
            FlowError::Shopper { reason, .. } => Some(reason.code()),
            FlowError::Refused { code, .. } => Some(code),
            FlowError::Db(_) | FlowError::Internal(_) => None,
        }
    }
}

impl From<crate::db::merchants::KeyLookupError> for FlowError {
    fn from(e: crate::db::merchants::KeyLookupError) -> Self {
        use crate::db::merchants::KeyLookupError as K;
        match e {
            K::UnknownMerchant => FlowError::shopper(Reason::UnknownMerchant),
            K::UnknownKey => FlowError::shopper(Reason::UnknownKey),
            K::Db(e) => FlowError::Db(e),
            e @ K::Sealed(..) => FlowError::Internal(e.into()),
        }
    }
}

impl From<(Reason, Option<&'static str>)> for FlowError {
    fn from((reason, field): (Reason, Option<&'static str>)) -> Self {
        FlowError::Shopper { reason, field }
    }
}
