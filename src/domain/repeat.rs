//! Reusable payment numbers (リピート / スタンダードカード・ジョイントカード): the amount rule,
//! the validity period and whether one more store payment may be taken. Pure: time comes in as
//! unix milliseconds.

use crate::domain::konbini::{self, LimitError};
use crate::domain::string_enum;

/// Digits of a repeat number as the customer gives it at the store.
pub const NUMBER_DIGITS: usize = 13;
/// Longest validity period in days (about three years): a number is never unlimited, like
/// every konbini number, and a member card is reissued at least that often.
pub const MAX_VALID_DAYS: i64 = 1096;
/// Validity when the merchant names none: one year.
pub const DEFAULT_VALID_DAYS: i64 = 365;
/// Longest customer reference / bill name (characters): both are printed on the card.
pub const MAX_REFERENCE_CHARS: usize = 64;
pub const MAX_NAME_CHARS: usize = 64;

string_enum! {
    /// Stored status: `active` until the merchant retires the number (`retired` is final).
    pub enum RepeatStatus { Active => "active", Retired => "retired" }
}

/// What the merchant and the console see: the stored status, with `expired` once the validity
/// period is over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RepeatState {
    Active,
    Expired,
    Retired,
}

impl RepeatState {
    pub fn of(status: RepeatStatus, valid_until_ms: i64, now_ms: i64) -> RepeatState {
        match status {
            RepeatStatus::Retired => RepeatState::Retired,
            RepeatStatus::Active if now_ms > valid_until_ms => RepeatState::Expired,
            RepeatStatus::Active => RepeatState::Active,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            RepeatState::Active => "active",
            RepeatState::Expired => "expired",
            RepeatState::Retired => "retired",
        }
    }

    pub fn label_ja(self) -> &'static str {
        match self {
            RepeatState::Active => "利用中",
            RepeatState::Expired => "有効期限切れ",
            RepeatState::Retired => "利用停止",
        }
    }
}

/// How much each store payment is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AmountRule {
    /// The registered amount, every time (月謝, 会費, 駐車場).
    Fixed(i64),
    /// Decided at the store (チャージ / top-up), within the konbini limits.
    PerPayment,
}

impl AmountRule {
    /// The stored column: the amount, or NULL for per-payment amounts.
    pub fn from_column(amount: Option<i64>) -> AmountRule {
        amount.map_or(AmountRule::PerPayment, AmountRule::Fixed)
    }

    pub fn column(self) -> Option<i64> {
        match self {
            AmountRule::Fixed(a) => Some(a),
            AmountRule::PerPayment => None,
        }
    }
}

/// Why a number was not registered or a store payment was refused. `code()` is documented
/// (docs/repeat-numbers.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RepeatError {
    #[error("{0}")]
    Limit(LimitError),
    #[error("valid_days must be 1..={MAX_VALID_DAYS}")]
    ValidDays,
    #[error("the reference and the name must be 1..=64 characters, without control characters")]
    Text,
    #[error("this number has a fixed amount: send no amount, or exactly the fixed one")]
    AmountFixed,
    #[error("this number's amount is decided at the store: give the amount")]
    AmountRequired,
    #[error("the number was retired")]
    Retired,
    #[error("the number's validity period is over")]
    Expired,
}

impl RepeatError {
    pub fn code(self) -> &'static str {
        match self {
            RepeatError::Limit(e) => e.code(),
            RepeatError::ValidDays => "invalid_valid_days",
            RepeatError::Text => "invalid_field",
            RepeatError::AmountFixed => "amount_fixed",
            RepeatError::AmountRequired => "amount_required",
            RepeatError::Retired => "repeat_number_retired",
            RepeatError::Expired => "repeat_number_expired",
        }
    }
}

/// Checks a new registration's amount rule; a fixed amount is one konbini payment's amount.
pub fn validate_rule(rule: AmountRule) -> Result<(), RepeatError> {
    match rule {
        AmountRule::Fixed(a) => konbini::validate_amount(a).map_err(RepeatError::Limit),
        AmountRule::PerPayment => Ok(()),
    }
}

/// Checks the validity period (whole days, counted like a konbini deadline) and returns the
/// last valid millisecond: the end of that JST day.
pub fn valid_until(now_ms: i64, days: i64) -> Result<i64, RepeatError> {
    if !(1..=MAX_VALID_DAYS).contains(&days) {
        return Err(RepeatError::ValidDays);
    }
    // In range 1..=1096, so the conversion cannot fail.
    Ok(konbini::deadline_ms(now_ms, days as u32))
}

/// A reference or name: trimmed, 1..=64 characters, no control characters (it is printed).
pub fn clean_text(s: &str, max: usize) -> Result<String, RepeatError> {
    let t = s.trim();
    let n = t.chars().count();
    if n == 0 || n > max || t.chars().any(char::is_control) {
        return Err(RepeatError::Text);
    }
    Ok(t.to_owned())
}

/// Whether one more store payment may be taken at `now_ms`, and its amount: the fixed amount
/// (an amount given must equal it), or the given amount within the konbini limits.
pub fn payment_amount(
    state: RepeatState,
    rule: AmountRule,
    given: Option<i64>,
) -> Result<i64, RepeatError> {
    match state {
        RepeatState::Retired => return Err(RepeatError::Retired),
        RepeatState::Expired => return Err(RepeatError::Expired),
        RepeatState::Active => {}
    }
    match (rule, given) {
        (AmountRule::Fixed(a), None) => Ok(a),
        (AmountRule::Fixed(a), Some(g)) if g == a => Ok(a),
        (AmountRule::Fixed(_), Some(_)) => Err(RepeatError::AmountFixed),
        (AmountRule::PerPayment, None) => Err(RepeatError::AmountRequired),
        (AmountRule::PerPayment, Some(g)) => {
            konbini::validate_amount(g).map_err(RepeatError::Limit)?;
            Ok(g)
        }
    }
}

/// The order id of a number's `seq`-th store payment: the customer reference and the count,
/// so the merchant's books show whose payment it is.
pub fn order_id(reference: &str, seq: i64) -> String {
    format!("{reference}#{seq}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_follows_validity_and_retirement() {
        assert_eq!(
            RepeatState::of(RepeatStatus::Active, 100, 100),
            RepeatState::Active
        );
        assert_eq!(
            RepeatState::of(RepeatStatus::Active, 100, 101),
            RepeatState::Expired
        );
        assert_eq!(
            RepeatState::of(RepeatStatus::Retired, 100, 0),
            RepeatState::Retired
        );
    }

    #[test]
    fn amount_rules() {
        let a = RepeatState::Active;
        assert_eq!(payment_amount(a, AmountRule::Fixed(500), None), Ok(500));
        assert_eq!(
            payment_amount(a, AmountRule::Fixed(500), Some(500)),
            Ok(500)
        );
        assert_eq!(
            payment_amount(a, AmountRule::Fixed(500), Some(600)),
            Err(RepeatError::AmountFixed)
        );
        assert_eq!(
            payment_amount(a, AmountRule::PerPayment, None),
            Err(RepeatError::AmountRequired)
        );
        assert_eq!(
            payment_amount(a, AmountRule::PerPayment, Some(300_001))
                .unwrap_err()
                .code(),
            "amount_too_large"
        );
        assert_eq!(
            payment_amount(a, AmountRule::PerPayment, Some(0))
                .unwrap_err()
                .code(),
            "amount_not_positive"
        );
        assert_eq!(
            payment_amount(a, AmountRule::PerPayment, Some(300_000)),
            Ok(300_000)
        );
        assert_eq!(
            payment_amount(RepeatState::Retired, AmountRule::Fixed(1), None),
            Err(RepeatError::Retired)
        );
        assert_eq!(
            payment_amount(RepeatState::Expired, AmountRule::PerPayment, Some(1)),
            Err(RepeatError::Expired)
        );
        assert!(validate_rule(AmountRule::Fixed(300_001)).is_err());
        assert!(validate_rule(AmountRule::PerPayment).is_ok());
    }

    #[test]
    fn validity_days_are_bounded() {
        assert_eq!(valid_until(0, 0), Err(RepeatError::ValidDays));
        assert_eq!(
            valid_until(0, MAX_VALID_DAYS + 1),
            Err(RepeatError::ValidDays)
        );
        assert_eq!(valid_until(0, 3), Ok(konbini::deadline_ms(0, 3)));
    }

    #[test]
    fn text_is_trimmed_and_bounded() {
        assert_eq!(clean_text("  会員001 ", 64).unwrap(), "会員001");
        assert!(clean_text("", 64).is_err());
        assert!(clean_text("a\nb", 64).is_err());
        assert!(clean_text(&"x".repeat(65), 64).is_err());
        assert_eq!(order_id("M-1", 3), "M-1#3");
    }
}
