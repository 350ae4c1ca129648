//! The one connector error every family shares (card, numbers, bank net, carrier): a failure to
//! carry out a call, as opposed to a decline or a shopper's choice, which are outcomes.
//! `code()` is stable: it is recorded in payment events and mapped to our documented codes.

use thiserror::Error;

use crate::connectors::signed_return::ReturnError;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConnectorError {
    /// We asked for something the connector refuses as malformed or unsupported; the value is
    /// a stable code (e.g. `sandbox_refuses_live`, `shopper_phone_required`).
    #[error("invalid request: {0}")]
    InvalidRequest(&'static str),
    /// The same, with the processor's own words (kept for staff, never shown to shoppers).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The connector could not be reached or answered something unexpected; safe to retry.
    #[error("connector unavailable: {0}")]
    Unavailable(String),
    /// No answer in time: the call may have been applied (query before retrying).
    #[error("the connector did not answer in time")]
    Timeout,
    #[error("unknown transaction")]
    UnknownTransaction,
    #[error("transaction is in the wrong state: {0}")]
    InvalidState(String),
    #[error("amount exceeds what the transaction allows")]
    AmountExceeded,
    #[error("the connector rejected the operation: {0}")]
    Rejected(String),
    /// A shopper's return from a bank or carrier page that does not verify.
    #[error("return rejected: {0}")]
    BadReturn(#[from] ReturnError),
    #[error("this carrier is not available on feature phones")]
    NotAvailableOnFeaturePhone,
    /// A number that cannot be withdrawn any more (paid meanwhile).
    #[error("the number can no longer be cancelled")]
    NotCancellable,
}

impl ConnectorError {
    pub fn code(&self) -> &'static str {
        match self {
            ConnectorError::InvalidRequest(c) => c,
            ConnectorError::Invalid(_) => "invalid_request",
            ConnectorError::Unavailable(_) => "unavailable",
            ConnectorError::Timeout => "timeout",
            ConnectorError::UnknownTransaction => "unknown_transaction",
            ConnectorError::InvalidState(_) => "invalid_state",
            ConnectorError::AmountExceeded => "amount_exceeded",
            ConnectorError::Rejected(_) => "rejected",
            ConnectorError::BadReturn(e) => e.code(),
            ConnectorError::NotAvailableOnFeaturePhone => "carrier_not_available_on_feature_phone",
            ConnectorError::NotCancellable => "number_not_cancellable",
        }
    }

    /// Worth retrying the same call later. After a timeout on capture/refund call `query`
    /// first: the processor may have applied it.
    pub fn retryable(&self) -> bool {
        matches!(
            self,
            ConnectorError::Timeout | ConnectorError::Unavailable(_)
        )
    }
}
