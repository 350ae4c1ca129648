//! Carrier billing (キャリア決済) domain rules: carriers, the monthly limit, continuous-billing dates and the payment/subscription status machines.
//!
//! Pure functions; time is unix milliseconds (UTC), calendar rules use JST (UTC+9, no DST).

use serde::{Deserialize, Serialize};
use thiserror::Error;

use time::{Date, Month};

use crate::domain::jst::{DAY_MS, OFFSET_MS as JST_OFFSET_MS};
/// Julian day number of 1970-01-01, to map "days since epoch" onto `time::Date`.
const UNIX_EPOCH_JULIAN_DAY: i64 = 2_440_588;

/// A mobile carrier whose phone bill the charge is added to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Carrier {
    Docomo,
    Au,
    Softbank,
}

impl Carrier {
    pub fn all() -> &'static [Carrier] {
        &[Carrier::Docomo, Carrier::Au, Carrier::Softbank]
    }

    /// Stable code for the DB, URLs and settings.
    pub fn code(self) -> &'static str {
        match self {
            Carrier::Docomo => "docomo",
            Carrier::Au => "au",
            Carrier::Softbank => "softbank",
        }
    }

    pub fn parse(code: &str) -> Option<Carrier> {
        Carrier::all().iter().copied().find(|c| c.code() == code)
    }

    /// The service name shoppers know (shown on the method button).
    pub fn name_ja(self) -> &'static str {
        match self {
            Carrier::Docomo => "d払い",
            Carrier::Au => "auかんたん決済",
            Carrier::Softbank => "ソフトバンクまとめて支払い",
        }
    }

    pub fn name_en(self) -> &'static str {
        match self {
            Carrier::Docomo => "d Barai (docomo)",
            Carrier::Au => "au Easy Payment",
            Carrier::Softbank => "SoftBank Matomete Shiharai",
        }
    }

    /// The payment method this carrier's charges are stored under.
    pub fn method(self) -> crate::domain::Method {
        use crate::domain::Method;
        match self {
            Carrier::Docomo => Method::Docomo,
            Carrier::Au => Method::Au,
            Carrier::Softbank => Method::Softbank,
        }
    }

    /// The carrier a payment method bills through, if it is carrier billing.
    pub fn of(m: crate::domain::Method) -> Option<Carrier> {
        Carrier::all().iter().copied().find(|c| c.method() == m)
    }

    /// Only docomo still bills feature phones; hide au/SoftBank on the feature-phone layout.
    pub fn available_on_feature_phone(self) -> bool {
        matches!(self, Carrier::Docomo)
    }
}

// ---------------------------------------------------------------------------
// Monthly limit
// ---------------------------------------------------------------------------

/// Per shopper, per carrier, per JST calendar month (yen).
pub const MONTHLY_LIMIT: i64 = 100_000;

/// Why a charge was refused before contacting the carrier. `code()` is stable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum LimitError {
    #[error("amount must be at least 1 yen")]
    AmountNotPositive,
    #[error("monthly carrier limit exceeded: {remaining} yen remaining this month")]
    MonthlyLimitExceeded { remaining: i64 },
}

impl LimitError {
    pub fn code(&self) -> &'static str {
        match self {
            LimitError::AmountNotPositive => "amount_not_positive",
            LimitError::MonthlyLimitExceeded { .. } => "carrier_monthly_limit_exceeded",
        }
    }
}

/// Check a new charge against what this shopper already spent with this carrier
/// this month (sum of completed charges keyed by [`month_key`]).
pub fn check_limit(already_this_month: i64, amount: i64) -> Result<(), LimitError> {
    if amount < 1 {
        return Err(LimitError::AmountNotPositive);
    }
    let remaining = (MONTHLY_LIMIT - already_this_month.max(0)).max(0);
    if amount > remaining {
        Err(LimitError::MonthlyLimitExceeded { remaining })
    } else {
        Ok(())
    }
}

fn jst_date_and_ms_of_day(now_ms: i64) -> (Date, i64) {
    let local = now_ms.saturating_add(JST_OFFSET_MS);
    let day = local.div_euclid(DAY_MS);
    (date_from_day(day), local.rem_euclid(DAY_MS))
}

fn date_from_day(day: i64) -> Date {
    // Clamp into time's supported range so absurd inputs saturate instead of panicking.
    let min = i64::from(Date::MIN.to_julian_day());
    let max = i64::from(Date::MAX.to_julian_day());
    let jd = (day + UNIX_EPOCH_JULIAN_DAY).clamp(min, max) as i32;
    Date::from_julian_day(jd).unwrap_or(Date::MIN)
}

fn day_from_date(d: Date) -> i64 {
    i64::from(d.to_julian_day()) - UNIX_EPOCH_JULIAN_DAY
}

/// Month bucket for the monthly limit, e.g. `"2026-11"`, in JST: a charge at
/// 2026-11-30 23:30 JST (14:30 UTC) counts for November, one at 00:10 JST on
/// Dec 1st for December.
pub fn month_key(now_ms: i64) -> String {
    let (d, _) = jst_date_and_ms_of_day(now_ms);
    format!("{:04}-{:02}", d.year(), u8::from(d.month()))
}

fn days_in_month(year: i32, month: Month) -> u8 {
    time::util::days_in_month(month, year)
}

// ---------------------------------------------------------------------------
// Billing kinds
// ---------------------------------------------------------------------------

/// 都度 (one-off) or 継続課金 (charged monthly until cancelled).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BillingKind {
    OneOff,
    Continuous,
}

impl BillingKind {
    pub fn code(self) -> &'static str {
        match self {
            BillingKind::OneOff => "one_off",
            BillingKind::Continuous => "continuous",
        }
    }

    pub fn parse(code: &str) -> Option<BillingKind> {
        match code {
            "one_off" => Some(BillingKind::OneOff),
            "continuous" => Some(BillingKind::Continuous),
            _ => None,
        }
    }

    pub fn label_ja(self) -> &'static str {
        match self {
            BillingKind::OneOff => "都度",
            BillingKind::Continuous => "継続課金",
        }
    }
}

/// The charge `months` months after `first_charge_ms`, same JST day of month and
/// time of day, clamped to the month's last day (Jan 31 → Feb 28/29 → Mar 31).
///
/// Prefer this over chaining [`next_charge_ms`]: computing from the first charge
/// keeps a 31st-of-month subscription on the 31st after a short month.
pub fn charge_ms(first_charge_ms: i64, months: u32) -> i64 {
    let (d, ms_of_day) = jst_date_and_ms_of_day(first_charge_ms);
    let total = i64::from(d.year()) * 12 + i64::from(u8::from(d.month())) - 1 + i64::from(months);
    let year = total.div_euclid(12).clamp(-9999, 9999) as i32;
    let month = Month::try_from((total.rem_euclid(12) + 1) as u8).unwrap_or(Month::December);
    let day = d.day().min(days_in_month(year, month));
    let date = Date::from_calendar_date(year, month, day).unwrap_or(d);
    day_from_date(date)
        .saturating_mul(DAY_MS)
        .saturating_add(ms_of_day)
        .saturating_sub(JST_OFFSET_MS)
}

/// Next monthly charge after `prev_charge_ms`: same JST day next month, clamped to
/// month end. Note a clamped date stays clamped if chained (31 → 28 → 28); see [`charge_ms`].
pub fn next_charge_ms(prev_charge_ms: i64) -> i64 {
    charge_ms(prev_charge_ms, 1)
}

// ---------------------------------------------------------------------------
// Payment status machine
// ---------------------------------------------------------------------------

/// Status of one carrier charge. Serialized as the DB code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CarrierStatus {
    /// Shopper redirected to the carrier's page.
    AwaitingAuth,
    /// Carrier approved; the amount is on the phone bill.
    Completed,
    /// Carrier declined (limit, blocked line, wrong password too often...).
    Failed,
    /// Shopper backed out on the carrier's page.
    Cancelled,
    /// Merchant cancelled a completed charge (取消).
    Refunded,
}

impl CarrierStatus {
    pub fn code(self) -> &'static str {
        match self {
            CarrierStatus::AwaitingAuth => "awaiting_auth",
            CarrierStatus::Completed => "completed",
            CarrierStatus::Failed => "failed",
            CarrierStatus::Cancelled => "cancelled",
            CarrierStatus::Refunded => "refunded",
        }
    }

    pub fn label_ja(self) -> &'static str {
        match self {
            CarrierStatus::AwaitingAuth => "認証待ち",
            CarrierStatus::Completed => "決済完了",
            CarrierStatus::Failed => "決済失敗",
            CarrierStatus::Cancelled => "購入者キャンセル",
            CarrierStatus::Refunded => "取消済",
        }
    }

    pub fn label_en(self) -> &'static str {
        match self {
            CarrierStatus::AwaitingAuth => "Awaiting carrier",
            CarrierStatus::Completed => "Completed",
            CarrierStatus::Failed => "Failed",
            CarrierStatus::Cancelled => "Cancelled by shopper",
            CarrierStatus::Refunded => "Cancelled (refunded)",
        }
    }

    /// Every outcome but a completed charge is final (a completed one can still be cancelled).
    pub fn is_final(self) -> bool {
        !matches!(self, CarrierStatus::AwaitingAuth | CarrierStatus::Completed)
    }

    /// Notification event for entering this status (`None` for the initial status).
    pub fn event_type(self) -> Option<&'static str> {
        match self {
            CarrierStatus::AwaitingAuth => None,
            CarrierStatus::Completed => Some("payment.completed"),
            CarrierStatus::Failed => Some("payment.failed"),
            CarrierStatus::Cancelled => Some("payment.cancelled"),
            CarrierStatus::Refunded => Some("payment.refunded"),
        }
    }
}

crate::domain::lifecycle::impl_status!(
    CarrierStatus,
    [
        CarrierStatus::AwaitingAuth,
        CarrierStatus::Completed,
        CarrierStatus::Failed,
        CarrierStatus::Cancelled,
        CarrierStatus::Refunded,
    ]
);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CarrierAction {
    /// Verified return: carrier approved.
    Approve,
    /// Verified return: carrier declined.
    Decline,
    /// Verified return: shopper cancelled on the carrier page.
    ShopperCancel,
    /// Merchant cancels a completed charge.
    Refund,
}

impl CarrierAction {
    pub fn code(self) -> &'static str {
        match self {
            CarrierAction::Approve => "approve",
            CarrierAction::Decline => "decline",
            CarrierAction::ShopperCancel => "shopper_cancel",
            CarrierAction::Refund => "refund",
        }
    }
}

/// Why a transition was refused (the shared shape; `code()` is stable). Subscriptions use
/// `TransitionError<SubscriptionStatus>`.
pub type TransitionError<S = CarrierStatus> = crate::domain::lifecycle::TransitionError<S>;

/// awaiting_auth → completed | failed | cancelled; completed → refunded.
/// Every outcome of the carrier page is final for that attempt: a retry is a new payment.
pub fn apply(
    state: CarrierStatus,
    action: CarrierAction,
) -> Result<CarrierStatus, TransitionError> {
    use CarrierAction as A;
    use CarrierStatus as S;
    let target = match action {
        A::Approve => S::Completed,
        A::Decline => S::Failed,
        A::ShopperCancel => S::Cancelled,
        A::Refund => S::Refunded,
    };
    match (state, action) {
        (S::AwaitingAuth, A::Approve | A::Decline | A::ShopperCancel) => Ok(target),
        (S::Completed, A::Refund) => Ok(S::Refunded),
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

// ---------------------------------------------------------------------------
// Continuous billing (subscription) status machine
// ---------------------------------------------------------------------------

/// A 継続課金 agreement, created when the first continuous charge completes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionStatus {
    Active,
    Cancelled,
}

impl SubscriptionStatus {
    pub fn code(self) -> &'static str {
        match self {
            SubscriptionStatus::Active => "active",
            SubscriptionStatus::Cancelled => "cancelled",
        }
    }

    pub fn label_ja(self) -> &'static str {
        match self {
            SubscriptionStatus::Active => "継続中",
            SubscriptionStatus::Cancelled => "解約済",
        }
    }

    pub fn label_en(self) -> &'static str {
        match self {
            SubscriptionStatus::Active => "Active",
            SubscriptionStatus::Cancelled => "Cancelled",
        }
    }

    pub fn is_final(self) -> bool {
        self == SubscriptionStatus::Cancelled
    }
}

crate::domain::lifecycle::impl_status!(
    SubscriptionStatus,
    [SubscriptionStatus::Active, SubscriptionStatus::Cancelled]
);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SubscriptionAction {
    /// A monthly charge went through at `at_ms`; the status stays `active`.
    Charged { at_ms: i64 },
    /// Cancelled by the shopper (at the carrier) or the merchant.
    Cancel,
}

impl SubscriptionAction {
    pub fn code(self) -> &'static str {
        match self {
            SubscriptionAction::Charged { .. } => "charged",
            SubscriptionAction::Cancel => "cancel",
        }
    }

    /// Event sent when this action is applied successfully. Per action rather
    /// than per status, because a charge does not change the status.
    pub fn event_type(self) -> &'static str {
        match self {
            SubscriptionAction::Charged { .. } => "subscription.charged",
            SubscriptionAction::Cancel => "subscription.cancelled",
        }
    }
}

/// active --charged--> active; active --cancel--> cancelled. Nothing is charged after cancellation.
pub fn apply_subscription(
    state: SubscriptionStatus,
    action: SubscriptionAction,
) -> Result<SubscriptionStatus, TransitionError<SubscriptionStatus>> {
    use SubscriptionAction as A;
    use SubscriptionStatus as S;
    match (state, action) {
        (S::Active, A::Charged { .. }) => Ok(S::Active),
        (S::Active, A::Cancel) => Ok(S::Cancelled),
        (S::Cancelled, A::Cancel) => Err(TransitionError::Duplicate {
            from: state,
            action: action.code(),
        }),
        (S::Cancelled, A::Charged { .. }) => Err(TransitionError::Forbidden {
            from: state,
            action: action.code(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::lifecycle::Status;
    use time::macros::datetime;

    fn ms(dt: time::OffsetDateTime) -> i64 {
        (dt.unix_timestamp_nanos() / 1_000_000) as i64
    }

    #[test]
    fn carriers() {
        for c in Carrier::all() {
            assert_eq!(Carrier::parse(c.code()), Some(*c));
        }
        assert_eq!(Carrier::Docomo.name_ja(), "d払い");
        assert!(Carrier::Docomo.available_on_feature_phone());
        assert!(!Carrier::Au.available_on_feature_phone());
        assert!(!Carrier::Softbank.available_on_feature_phone());
    }

    #[test]
    fn month_key_uses_jst() {
        assert_eq!(month_key(ms(datetime!(2026-11-30 14:59:59 UTC))), "2026-11");
        assert_eq!(month_key(ms(datetime!(2026-11-30 15:00:00 UTC))), "2026-12");
        assert_eq!(month_key(ms(datetime!(2026-12-31 15:00:00 UTC))), "2027-01");
        assert_eq!(month_key(0), "1970-01");
        // Absurd input saturates instead of panicking.
        let _ = month_key(i64::MAX);
        let _ = month_key(i64::MIN);
    }

    #[test]
    fn limit() {
        assert!(check_limit(0, 100_000).is_ok());
        assert!(check_limit(99_999, 1).is_ok());
        assert_eq!(
            check_limit(99_999, 2),
            Err(LimitError::MonthlyLimitExceeded { remaining: 1 })
        );
        assert_eq!(
            check_limit(150_000, 1).unwrap_err().code(),
            "carrier_monthly_limit_exceeded"
        );
        assert_eq!(check_limit(0, 0).unwrap_err().code(), "amount_not_positive");
        assert!(check_limit(0, 100_001).is_err());
    }

    #[test]
    fn next_charge_same_day_and_clamped() {
        let t = ms(datetime!(2026-03-15 10:00:00 +9));
        assert_eq!(next_charge_ms(t), ms(datetime!(2026-04-15 10:00:00 +9)));
        let t = ms(datetime!(2026-01-31 08:00:00 +9));
        assert_eq!(next_charge_ms(t), ms(datetime!(2026-02-28 08:00:00 +9)));
        let t = ms(datetime!(2028-01-31 08:00:00 +9));
        assert_eq!(next_charge_ms(t), ms(datetime!(2028-02-29 08:00:00 +9)));
        let t = ms(datetime!(2026-12-10 23:30:00 +9));
        assert_eq!(next_charge_ms(t), ms(datetime!(2027-01-10 23:30:00 +9)));
        // 2026-01-31 00:30 JST is still Jan 30 in UTC: the JST date governs.
        let t = ms(datetime!(2026-01-31 00:30:00 +9));
        assert_eq!(next_charge_ms(t), ms(datetime!(2026-02-28 00:30:00 +9)));
    }

    #[test]
    fn anchored_charges_do_not_drift() {
        let first = ms(datetime!(2026-01-31 09:00:00 +9));
        assert_eq!(charge_ms(first, 1), ms(datetime!(2026-02-28 09:00:00 +9)));
        assert_eq!(charge_ms(first, 2), ms(datetime!(2026-03-31 09:00:00 +9)));
        assert_eq!(charge_ms(first, 12), ms(datetime!(2027-01-31 09:00:00 +9)));
        assert_eq!(charge_ms(first, 0), first);
    }

    #[test]
    fn every_payment_pair() {
        use CarrierAction as A;
        use CarrierStatus as S;
        let actions = [A::Approve, A::Decline, A::ShopperCancel, A::Refund];
        for &s in S::ALL {
            for a in actions {
                let want: Result<S, &str> = match (s, a) {
                    (S::AwaitingAuth, A::Approve) => Ok(S::Completed),
                    (S::AwaitingAuth, A::Decline) => Ok(S::Failed),
                    (S::AwaitingAuth, A::ShopperCancel) => Ok(S::Cancelled),
                    (S::Completed, A::Refund) => Ok(S::Refunded),
                    (S::Completed, A::Approve)
                    | (S::Failed, A::Decline)
                    | (S::Cancelled, A::ShopperCancel)
                    | (S::Refunded, A::Refund) => Err("duplicate"),
                    _ => Err("forbidden_transition"),
                };
                assert_eq!(apply(s, a).map_err(|e| e.code()), want, "{s:?} + {a:?}");
            }
        }
    }

    #[test]
    fn payment_events() {
        assert_eq!(
            CarrierStatus::Completed.event_type(),
            Some("payment.completed")
        );
        assert_eq!(CarrierStatus::Failed.event_type(), Some("payment.failed"));
        assert_eq!(
            CarrierStatus::Cancelled.event_type(),
            Some("payment.cancelled")
        );
        assert_eq!(CarrierStatus::AwaitingAuth.event_type(), None);
        for s in CarrierStatus::ALL {
            assert_eq!(CarrierStatus::parse(s.code()), Some(*s));
        }
    }

    #[test]
    fn every_subscription_pair() {
        use SubscriptionAction as A;
        use SubscriptionStatus as S;
        let c = A::Charged { at_ms: 1 };
        assert_eq!(apply_subscription(S::Active, c), Ok(S::Active));
        assert_eq!(apply_subscription(S::Active, A::Cancel), Ok(S::Cancelled));
        assert_eq!(
            apply_subscription(S::Cancelled, A::Cancel)
                .unwrap_err()
                .code(),
            "duplicate"
        );
        assert_eq!(
            apply_subscription(S::Cancelled, c).unwrap_err().code(),
            "forbidden_transition"
        );
        assert_eq!(c.event_type(), "subscription.charged");
        assert_eq!(A::Cancel.event_type(), "subscription.cancelled");
        assert_eq!(
            BillingKind::parse("continuous"),
            Some(BillingKind::Continuous)
        );
        assert_eq!(BillingKind::OneOff.label_ja(), "都度");
    }
}
