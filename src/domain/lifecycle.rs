//! The one shape every method's status machine has: a status type (codes, labels, finality) and
//! the reasons a machine refuses an action. Card, numbers (konbini / Pay-easy), bank net and
//! carrier billing each instantiate it, so a new method is its statuses, its actions and an
//! `apply` function; storage, labels, errors and their codes come with the shape.

use std::fmt;

/// A method's payment status, stored by [`Status::code`].
pub trait Status: Copy + Eq + fmt::Debug + Send + Sync + 'static {
    /// Every status, in display order.
    const ALL: &'static [Self];
    /// Error code of an action that is impossible from the current status. The card actions API
    /// has always answered `invalid_transition`, the others `forbidden_transition`; both are
    /// documented, so each machine keeps its own.
    const FORBIDDEN_CODE: &'static str = "forbidden_transition";

    /// The stored code (e.g. `awaiting_payment`).
    fn code(self) -> &'static str;
    /// The console's label (決済ステータス), in the words merchants and processors use.
    fn label_ja(self) -> &'static str;
    fn label_en(self) -> &'static str;
    /// No action leaves this status.
    fn is_final(self) -> bool;

    fn parse(code: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|s| s.code() == code)
    }
}

/// A refusal that is not about the current status: the action is possible from here, but not
/// with these values or not yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A capture larger than the authorization.
    AmountExceedsAuthorized,
    /// A refund larger than what is still refundable.
    AmountExceedsCaptured,
    /// Zero, negative or above the order amount.
    InvalidAmount,
    /// Authorization without a successful 3-D Secure outcome.
    AuthenticationRequired,
    /// Expiry asked for before the deadline.
    NotYetExpired,
    /// A pending timeout asked for before it has passed.
    NotYetTimedOut,
}

impl Refusal {
    pub fn code(self) -> &'static str {
        match self {
            Refusal::AmountExceedsAuthorized => "amount_exceeds_authorized",
            Refusal::AmountExceedsCaptured => "amount_exceeds_captured",
            Refusal::InvalidAmount => "invalid_amount",
            Refusal::AuthenticationRequired => "authentication_required",
            Refusal::NotYetExpired => "not_yet_expired",
            Refusal::NotYetTimedOut => "not_yet_timed_out",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            Refusal::AmountExceedsAuthorized => "amount exceeds the authorized amount",
            Refusal::AmountExceedsCaptured => "amount exceeds the captured amount still refundable",
            Refusal::InvalidAmount => "amount must be positive and within the order amount",
            Refusal::AuthenticationRequired => "3-D Secure authentication did not succeed",
            Refusal::NotYetExpired => "deadline has not passed yet",
            Refusal::NotYetTimedOut => "the pending timeout has not passed yet",
        }
    }
}

/// Why a machine refused an action. `code()` is stable (documented in the API references).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransitionError<S: Status> {
    /// The action adds nothing (a repeated notice, a reloaded return URL): acknowledge it and
    /// change nothing.
    Duplicate { from: S, action: &'static str },
    /// The action is impossible from this status.
    Forbidden { from: S, action: &'static str },
    /// Possible from this status, but not with these values or not yet.
    Refused(Refusal),
}

impl<S: Status> TransitionError<S> {
    pub fn code(&self) -> &'static str {
        match self {
            TransitionError::Duplicate { .. } => "duplicate",
            TransitionError::Forbidden { .. } => S::FORBIDDEN_CODE,
            TransitionError::Refused(r) => r.code(),
        }
    }

    /// Whether the action had already been applied (safe to acknowledge).
    pub fn is_duplicate(&self) -> bool {
        matches!(self, TransitionError::Duplicate { .. })
    }
}

impl<S: Status> fmt::Display for TransitionError<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransitionError::Duplicate { from, action } => {
                write!(f, "{action} is a duplicate for status {}", from.code())
            }
            TransitionError::Forbidden { from, action } => {
                write!(f, "{action} is not allowed from status {}", from.code())
            }
            TransitionError::Refused(r) => f.write_str(r.message()),
        }
    }
}

impl<S: Status> std::error::Error for TransitionError<S> {}

impl<S: Status> From<Refusal> for TransitionError<S> {
    fn from(r: Refusal) -> Self {
        TransitionError::Refused(r)
    }
}

/// Implements [`Status`] for an enum whose inherent `code`, `label_ja`, `label_en` and `is_final`
/// already exist (they stay callable without importing the trait).
macro_rules! impl_status {
    ($ty:ty, [$($var:expr),+ $(,)?] $(, forbidden = $code:literal)?) => {
        impl $crate::domain::lifecycle::Status for $ty {
            const ALL: &'static [Self] = &[$($var),+];
            $(const FORBIDDEN_CODE: &'static str = $code;)?
            fn code(self) -> &'static str {
                <$ty>::code(self)
            }
            fn label_ja(self) -> &'static str {
                <$ty>::label_ja(self)
            }
            fn label_en(self) -> &'static str {
                <$ty>::label_en(self)
            }
            fn is_final(self) -> bool {
                <$ty>::is_final(self)
            }
        }

        impl $ty {
            /// Parses a stored code.
            pub fn parse(code: &str) -> Option<Self> {
                <Self as $crate::domain::lifecycle::Status>::parse(code)
            }
        }
    };
}
pub(crate) use impl_status;
