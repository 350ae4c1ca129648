//! Bank net (銀行ネット / online banking) domain rules: supported banks, the pending timeout and the payment status machine.

use serde::{Deserialize, Serialize};

use crate::domain::lifecycle::Refusal;

/// A bank the shopper can be redirected to. Serialized as its 4-digit 金融機関コード.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Bank {
    #[serde(rename = "0001")]
    Mizuho,
    #[serde(rename = "0005")]
    Mufg,
    #[serde(rename = "0009")]
    Smbc,
    #[serde(rename = "0010")]
    Resona,
    #[serde(rename = "0033")]
    PayPay,
    #[serde(rename = "0036")]
    Rakuten,
    #[serde(rename = "0038")]
    SbiSumishinNet,
    #[serde(rename = "9900")]
    JapanPost,
}

impl Bank {
    pub fn all() -> &'static [Bank] {
        &[
            Bank::Mizuho,
            Bank::Mufg,
            Bank::Smbc,
            Bank::Resona,
            Bank::PayPay,
            Bank::Rakuten,
            Bank::SbiSumishinNet,
            Bank::JapanPost,
        ]
    }

    /// Zengin 金融機関コード (4 digits), used as the DB code and in sandbox URLs.
    pub fn code(self) -> &'static str {
        match self {
            Bank::Mizuho => "0001",
            Bank::Mufg => "0005",
            Bank::Smbc => "0009",
            Bank::Resona => "0010",
            Bank::PayPay => "0033",
            Bank::Rakuten => "0036",
            Bank::SbiSumishinNet => "0038",
            Bank::JapanPost => "9900",
        }
    }

    pub fn parse(code: &str) -> Option<Bank> {
        Bank::all().iter().copied().find(|b| b.code() == code)
    }

    pub fn name_ja(self) -> &'static str {
        match self {
            Bank::Mizuho => "みずほ銀行",
            Bank::Mufg => "三菱UFJ銀行",
            Bank::Smbc => "三井住友銀行",
            Bank::Resona => "りそな銀行",
            Bank::PayPay => "PayPay銀行",
            Bank::Rakuten => "楽天銀行",
            Bank::SbiSumishinNet => "住信SBIネット銀行",
            Bank::JapanPost => "ゆうちょ銀行",
        }
    }

    pub fn name_en(self) -> &'static str {
        match self {
            Bank::Mizuho => "Mizuho Bank",
            Bank::Mufg => "MUFG Bank",
            Bank::Smbc => "Sumitomo Mitsui Banking Corporation",
            Bank::Resona => "Resona Bank",
            Bank::PayPay => "PayPay Bank",
            Bank::Rakuten => "Rakuten Bank",
            Bank::SbiSumishinNet => "SBI Sumishin Net Bank",
            Bank::JapanPost => "Japan Post Bank",
        }
    }
}

/// How long a payment may wait for the bank before the background job fails it.
/// 30 minutes: long enough for a login with a one-time password, short enough
/// that the merchant is not left holding stock for a shopper who walked away.
pub const PENDING_TIMEOUT_MS: i64 = 30 * 60 * 1000;

/// True once a payment created at `created_ms` has waited longer than [`PENDING_TIMEOUT_MS`].
pub fn timed_out(created_ms: i64, now_ms: i64) -> bool {
    now_ms.saturating_sub(created_ms) > PENDING_TIMEOUT_MS
}

/// Status of a bank-net payment. Serialized as the DB code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BankStatus {
    /// Shopper redirected to the bank.
    AwaitingBank,
    /// Bank confirmed the debit.
    Paid,
    /// Bank refused (or the shopper refused on the bank page).
    Declined,
    /// No answer within [`PENDING_TIMEOUT_MS`]; failed by the background job.
    TimedOut,
}

impl BankStatus {
    pub fn code(self) -> &'static str {
        match self {
            BankStatus::AwaitingBank => "awaiting_bank",
            BankStatus::Paid => "paid",
            BankStatus::Declined => "declined",
            BankStatus::TimedOut => "timed_out",
        }
    }

    pub fn label_ja(self) -> &'static str {
        match self {
            BankStatus::AwaitingBank => "銀行手続き中",
            BankStatus::Paid => "入金済",
            BankStatus::Declined => "決済失敗",
            BankStatus::TimedOut => "タイムアウト",
        }
    }

    pub fn label_en(self) -> &'static str {
        match self {
            BankStatus::AwaitingBank => "At the bank",
            BankStatus::Paid => "Paid",
            BankStatus::Declined => "Declined",
            BankStatus::TimedOut => "Timed out",
        }
    }

    /// Declined and paid are final; a timed-out payment can still be paid by a late approval.
    pub fn is_final(self) -> bool {
        matches!(self, BankStatus::Paid | BankStatus::Declined)
    }

    /// Notification event for entering this status (`None` for the initial status).
    pub fn event_type(self) -> Option<&'static str> {
        match self {
            BankStatus::AwaitingBank => None,
            BankStatus::Paid => Some("payment.completed"),
            BankStatus::Declined => Some("payment.failed"),
            BankStatus::TimedOut => Some("payment.expired"),
        }
    }
}

crate::domain::lifecycle::impl_status!(
    BankStatus,
    [
        BankStatus::AwaitingBank,
        BankStatus::Paid,
        BankStatus::Declined,
        BankStatus::TimedOut,
    ]
);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BankAction {
    /// Verified return (or bank notice): the debit went through.
    Approve,
    /// Verified return: declined.
    Decline,
    /// Background job; allowed only when [`timed_out`] holds.
    TimeOut { now_ms: i64 },
}

impl BankAction {
    pub fn code(self) -> &'static str {
        match self {
            BankAction::Approve => "approve",
            BankAction::Decline => "decline",
            BankAction::TimeOut { .. } => "time_out",
        }
    }
}

/// Why a transition was refused (the shared shape; `code()` is stable).
pub type TransitionError<S = BankStatus> = crate::domain::lifecycle::TransitionError<S>;

/// awaiting_bank → paid | declined | timed_out (after [`PENDING_TIMEOUT_MS`]).
///
/// One exception: timed_out → paid. If the bank's approval arrives after our
/// timeout, the shopper's money has already moved; recording the payment (and
/// sending `payment.completed`) is the only honest outcome, never dropping it.
pub fn apply(
    state: BankStatus,
    action: BankAction,
    created_ms: i64,
) -> Result<BankStatus, TransitionError> {
    use BankAction as A;
    use BankStatus as S;
    let dup = || TransitionError::Duplicate {
        from: state,
        action: action.code(),
    };
    let forbidden = || TransitionError::Forbidden {
        from: state,
        action: action.code(),
    };
    match (state, action) {
        (S::AwaitingBank | S::TimedOut, A::Approve) => Ok(S::Paid),
        (S::Paid, A::Approve) => Err(dup()),
        (S::Declined, A::Approve) => Err(forbidden()),

        (S::AwaitingBank, A::Decline) => Ok(S::Declined),
        (S::Declined, A::Decline) => Err(dup()),
        (S::Paid | S::TimedOut, A::Decline) => Err(forbidden()),

        (S::AwaitingBank, A::TimeOut { now_ms }) => {
            if timed_out(created_ms, now_ms) {
                Ok(S::TimedOut)
            } else {
                Err(TransitionError::Refused(Refusal::NotYetTimedOut))
            }
        }
        (S::TimedOut, A::TimeOut { .. }) => Err(dup()),
        (S::Paid | S::Declined, A::TimeOut { .. }) => Err(forbidden()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::lifecycle::Status;

    #[test]
    fn banks() {
        assert_eq!(Bank::parse("0005"), Some(Bank::Mufg));
        assert_eq!(
            Bank::parse("9900").map(|b| b.name_ja()),
            Some("ゆうちょ銀行")
        );
        assert_eq!(Bank::parse("5"), None);
        for b in Bank::all() {
            assert_eq!(Bank::parse(b.code()), Some(*b));
            assert_eq!(b.code().len(), 4);
        }
    }

    #[test]
    fn timeout_boundary() {
        assert!(!timed_out(0, PENDING_TIMEOUT_MS));
        assert!(timed_out(0, PENDING_TIMEOUT_MS + 1));
        assert!(!timed_out(1_000, 0));
    }

    #[test]
    fn every_pair() {
        use BankAction as A;
        use BankStatus as S;
        let early = A::TimeOut {
            now_ms: PENDING_TIMEOUT_MS,
        };
        let late = A::TimeOut {
            now_ms: PENDING_TIMEOUT_MS + 1,
        };
        for &s in S::ALL {
            for a in [A::Approve, A::Decline, early, late] {
                let want: Result<S, &str> = match (s, a) {
                    (S::AwaitingBank | S::TimedOut, A::Approve) => Ok(S::Paid),
                    (S::Paid, A::Approve) => Err("duplicate"),
                    (S::AwaitingBank, A::Decline) => Ok(S::Declined),
                    (S::Declined, A::Decline) => Err("duplicate"),
                    (S::AwaitingBank, A::TimeOut { now_ms }) if now_ms > PENDING_TIMEOUT_MS => {
                        Ok(S::TimedOut)
                    }
                    (S::AwaitingBank, A::TimeOut { .. }) => Err("not_yet_timed_out"),
                    (S::TimedOut, A::TimeOut { .. }) => Err("duplicate"),
                    _ => Err("forbidden_transition"),
                };
                assert_eq!(apply(s, a, 0).map_err(|e| e.code()), want, "{s:?} + {a:?}");
            }
        }
    }

    #[test]
    fn statuses_and_events() {
        for s in BankStatus::ALL {
            assert_eq!(BankStatus::parse(s.code()), Some(*s));
        }
        assert_eq!(BankStatus::Paid.event_type(), Some("payment.completed"));
        assert_eq!(BankStatus::Declined.event_type(), Some("payment.failed"));
        assert_eq!(BankStatus::TimedOut.event_type(), Some("payment.expired"));
    }
}
