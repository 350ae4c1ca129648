//! Wallet payments (PayPay, au PAY, メルペイ, 楽天ペイ, ペイディ, LINE Pay): the brands, the pending
//! timeout and the payment status machine (redirect to the wallet, approve there, come back).

use serde::{Deserialize, Serialize};

use crate::domain::lifecycle::Refusal;

/// A wallet the shopper can pay with. Stored (as `payments.institution`) by its code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Wallet {
    PayPay,
    AuPay,
    Merpay,
    RakutenPay,
    Paidy,
    LinePay,
}

impl Wallet {
    /// Display order: PayPay first (the most used), then the others.
    pub const ALL: [Wallet; 6] = [
        Wallet::PayPay,
        Wallet::AuPay,
        Wallet::Merpay,
        Wallet::RakutenPay,
        Wallet::Paidy,
        Wallet::LinePay,
    ];

    /// Stable code for the DB, URLs, links and notifications.
    pub fn code(self) -> &'static str {
        match self {
            Wallet::PayPay => "paypay",
            Wallet::AuPay => "aupay",
            Wallet::Merpay => "merpay",
            Wallet::RakutenPay => "rakutenpay",
            Wallet::Paidy => "paidy",
            Wallet::LinePay => "linepay",
        }
    }

    pub fn parse(code: &str) -> Option<Wallet> {
        Wallet::ALL.into_iter().find(|w| w.code() == code)
    }

    pub fn name_ja(self) -> &'static str {
        match self {
            Wallet::PayPay => "PayPay",
            Wallet::AuPay => "au PAY",
            Wallet::Merpay => "メルペイ",
            Wallet::RakutenPay => "楽天ペイ",
            Wallet::Paidy => "ペイディ（Paidy）",
            Wallet::LinePay => "LINE Pay",
        }
    }

    pub fn name_en(self) -> &'static str {
        match self {
            Wallet::PayPay => "PayPay",
            Wallet::AuPay => "au PAY",
            Wallet::Merpay => "Merpay",
            Wallet::RakutenPay => "Rakuten Pay",
            Wallet::Paidy => "Paidy",
            Wallet::LinePay => "LINE Pay",
        }
    }
}

/// The wallet brands a merchant offers: all of them (the default, also brands added later), or
/// a non-empty choice. Stored as `all` or comma-separated codes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Brands {
    All,
    Only(Vec<Wallet>),
}

impl Brands {
    /// From a choice of brands: every brand chosen is [`Brands::All`]; `None` for none.
    pub fn choose(chosen: &[Wallet]) -> Option<Brands> {
        let list: Vec<Wallet> = Wallet::ALL
            .into_iter()
            .filter(|w| chosen.contains(w))
            .collect();
        match list.len() {
            0 => None,
            n if n == Wallet::ALL.len() => Some(Brands::All),
            _ => Some(Brands::Only(list)),
        }
    }

    pub fn offers(&self, w: Wallet) -> bool {
        match self {
            Brands::All => true,
            Brands::Only(list) => list.contains(&w),
        }
    }

    /// The brands offered, in display order.
    pub fn list(&self) -> Vec<Wallet> {
        Wallet::ALL
            .into_iter()
            .filter(|w| self.offers(*w))
            .collect()
    }

    /// The stored form.
    pub fn code(&self) -> String {
        match self {
            Brands::All => "all".to_owned(),
            Brands::Only(list) => list.iter().map(|w| w.code()).collect::<Vec<_>>().join(","),
        }
    }

    /// The stored form back; `None` for an unknown code or an empty list.
    pub fn parse(s: &str) -> Option<Brands> {
        if s == "all" {
            return Some(Brands::All);
        }
        let list = s
            .split(',')
            .map(|c| Wallet::parse(c.trim()))
            .collect::<Option<Vec<_>>>()?;
        Brands::choose(&list)
    }
}

impl TryFrom<String> for Brands {
    type Error = crate::domain::BadCode;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Brands::parse(&s).ok_or(crate::domain::BadCode {
            kind: "wallet brands",
            value: s,
        })
    }
}

/// How long a payment may wait for the wallet before the background job fails it: long enough
/// to open the app, log in and confirm, short enough not to hold the merchant's stock.
pub const PENDING_TIMEOUT_MS: i64 = 30 * 60 * 1000;

/// True once a payment created at `created_ms` has waited longer than [`PENDING_TIMEOUT_MS`].
pub fn timed_out(created_ms: i64, now_ms: i64) -> bool {
    now_ms.saturating_sub(created_ms) > PENDING_TIMEOUT_MS
}

/// Status of a wallet payment. Serialized as the DB code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WalletStatus {
    /// Shopper sent to the wallet's page or app.
    AwaitingWallet,
    /// The wallet took the money (partly refunded ones stay here with `refunded_amount`).
    Paid,
    /// The wallet (or the shopper on its page) refused.
    Failed,
    /// No answer within [`PENDING_TIMEOUT_MS`]; a late approval still makes it paid.
    TimedOut,
    /// Refunded in full.
    Refunded,
}

impl WalletStatus {
    pub fn code(self) -> &'static str {
        match self {
            WalletStatus::AwaitingWallet => "awaiting_wallet",
            WalletStatus::Paid => "paid",
            WalletStatus::Failed => "failed",
            WalletStatus::TimedOut => "timed_out",
            WalletStatus::Refunded => "refunded",
        }
    }

    pub fn label_ja(self) -> &'static str {
        match self {
            WalletStatus::AwaitingWallet => "ウォレット手続き中",
            WalletStatus::Paid => "決済完了",
            WalletStatus::Failed => "決済失敗",
            WalletStatus::TimedOut => "タイムアウト",
            WalletStatus::Refunded => "返金済",
        }
    }

    pub fn label_en(self) -> &'static str {
        match self {
            WalletStatus::AwaitingWallet => "At the wallet",
            WalletStatus::Paid => "Paid",
            WalletStatus::Failed => "Failed",
            WalletStatus::TimedOut => "Timed out",
            WalletStatus::Refunded => "Refunded",
        }
    }

    /// Failed and refunded are final; a paid payment can still be refunded and a timed-out one
    /// can still be approved late.
    pub fn is_final(self) -> bool {
        matches!(self, WalletStatus::Failed | WalletStatus::Refunded)
    }

    /// Notification event for entering this status (`None` for the initial status).
    pub fn event_type(self) -> Option<&'static str> {
        match self {
            WalletStatus::AwaitingWallet => None,
            WalletStatus::Paid => Some("payment.completed"),
            WalletStatus::Failed => Some("payment.failed"),
            WalletStatus::TimedOut => Some("payment.expired"),
            WalletStatus::Refunded => Some("payment.refunded"),
        }
    }
}

crate::domain::lifecycle::impl_status!(
    WalletStatus,
    [
        WalletStatus::AwaitingWallet,
        WalletStatus::Paid,
        WalletStatus::Failed,
        WalletStatus::TimedOut,
        WalletStatus::Refunded,
    ]
);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WalletAction {
    /// The wallet took the money (verified return, processor webhook or retrieval).
    Approve,
    /// The wallet refused, or the shopper cancelled on its page.
    Decline,
    /// Background job; allowed only when [`timed_out`] holds.
    TimeOut { now_ms: i64 },
}

impl WalletAction {
    pub fn code(self) -> &'static str {
        match self {
            WalletAction::Approve => "approve",
            WalletAction::Decline => "decline",
            WalletAction::TimeOut { .. } => "time_out",
        }
    }
}

/// Why a transition was refused (the shared shape; `code()` is stable).
pub type TransitionError = crate::domain::lifecycle::TransitionError<WalletStatus>;

/// awaiting_wallet → paid | failed | timed_out (after [`PENDING_TIMEOUT_MS`]); timed_out → paid
/// (the shopper's money moved after our timeout: recording it is the only honest outcome).
pub fn apply(
    state: WalletStatus,
    action: WalletAction,
    created_ms: i64,
) -> Result<WalletStatus, TransitionError> {
    use WalletAction as A;
    use WalletStatus as S;
    let target = match action {
        A::Approve => S::Paid,
        A::Decline => S::Failed,
        A::TimeOut { .. } => S::TimedOut,
    };
    match (state, action) {
        (S::AwaitingWallet, A::TimeOut { now_ms }) => {
            if timed_out(created_ms, now_ms) {
                Ok(S::TimedOut)
            } else {
                Err(TransitionError::Refused(Refusal::NotYetTimedOut))
            }
        }
        (S::AwaitingWallet, A::Approve | A::Decline) | (S::TimedOut, A::Approve) => Ok(target),
        (s, _) if s == target => Err(TransitionError::Duplicate {
            from: state,
            action: action.code(),
        }),
        _ => Err(TransitionError::Forbidden {
            from: state,
            action: action.code(),
        }),
    }
}

/// A refund of `amount` from a payment of `paid` yen of which `refunded` were refunded before:
/// the new status (`paid` while some remains, `refunded` once all is back) and refunded total.
pub fn refund(
    state: WalletStatus,
    paid: i64,
    refunded: i64,
    amount: i64,
) -> Result<(WalletStatus, i64), TransitionError> {
    if state != WalletStatus::Paid {
        return Err(TransitionError::Forbidden {
            from: state,
            action: "refund",
        });
    }
    if amount <= 0 {
        return Err(TransitionError::Refused(Refusal::InvalidAmount));
    }
    let total = refunded.saturating_add(amount);
    if total > paid {
        return Err(TransitionError::Refused(Refusal::AmountExceedsCaptured));
    }
    let to = if total == paid {
        WalletStatus::Refunded
    } else {
        WalletStatus::Paid
    };
    Ok((to, total))
}

#[cfg(test)]
mod tests {
    use super::*;
    use WalletAction as A;
    use WalletStatus as S;

    #[test]
    fn codes_round_trip() {
        for w in Wallet::ALL {
            assert_eq!(Wallet::parse(w.code()), Some(w));
        }
        assert_eq!(Wallet::parse("bitcoin"), None);
    }

    #[test]
    fn machine() {
        assert_eq!(apply(S::AwaitingWallet, A::Approve, 0), Ok(S::Paid));
        assert_eq!(apply(S::AwaitingWallet, A::Decline, 0), Ok(S::Failed));
        assert!(matches!(
            apply(S::AwaitingWallet, A::TimeOut { now_ms: 1_000 }, 0),
            Err(TransitionError::Refused(Refusal::NotYetTimedOut))
        ));
        let late = PENDING_TIMEOUT_MS + 1;
        assert_eq!(
            apply(S::AwaitingWallet, A::TimeOut { now_ms: late }, 0),
            Ok(S::TimedOut)
        );
        assert_eq!(apply(S::TimedOut, A::Approve, 0), Ok(S::Paid));
        assert!(matches!(
            apply(S::Paid, A::Approve, 0),
            Err(TransitionError::Duplicate { .. })
        ));
        assert!(matches!(
            apply(S::Paid, A::Decline, 0),
            Err(TransitionError::Forbidden { .. })
        ));
        assert!(matches!(
            apply(S::Failed, A::Approve, 0),
            Err(TransitionError::Forbidden { .. })
        ));
    }

    #[test]
    fn refunds_partial_then_whole() {
        assert_eq!(refund(S::Paid, 1_000, 0, 300), Ok((S::Paid, 300)));
        assert_eq!(refund(S::Paid, 1_000, 300, 700), Ok((S::Refunded, 1_000)));
        assert!(matches!(
            refund(S::Paid, 1_000, 300, 701),
            Err(TransitionError::Refused(Refusal::AmountExceedsCaptured))
        ));
        assert!(matches!(
            refund(S::Paid, 1_000, 0, 0),
            Err(TransitionError::Refused(Refusal::InvalidAmount))
        ));
        assert!(matches!(
            refund(S::AwaitingWallet, 1_000, 0, 10),
            Err(TransitionError::Forbidden { .. })
        ));
    }

    #[test]
    fn brands_round_trip() {
        assert_eq!(Brands::parse("all"), Some(Brands::All));
        let b = Brands::parse("aupay,paypay").unwrap();
        assert_eq!(b, Brands::Only(vec![Wallet::PayPay, Wallet::AuPay]));
        assert_eq!(b.code(), "paypay,aupay");
        assert!(b.offers(Wallet::AuPay) && !b.offers(Wallet::LinePay));
        assert_eq!(Brands::choose(&Wallet::ALL), Some(Brands::All));
        assert_eq!(Brands::choose(&[]), None);
        for bad in ["", "paypay,", "bitcoin", "paypay,bitcoin"] {
            assert_eq!(Brands::parse(bad), None, "{bad}");
        }
        assert_eq!(Brands::All.list(), Wallet::ALL.to_vec());
    }
}
