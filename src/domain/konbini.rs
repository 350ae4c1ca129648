//! Konbini (コンビニ番号方式) and Pay-easy domain rules: chains, number shapes, limits, deadlines and the payment-number status machine.
//!
//! Everything here is pure: time comes in as unix milliseconds (UTC) and the
//! Japanese calendar day is computed at the fixed offset UTC+9 (JST has no DST).

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::domain::lifecycle::Refusal;

use crate::domain::jst::{DAY_MS, OFFSET_MS as JST_OFFSET_MS};

// ---------------------------------------------------------------------------
// Chains
// ---------------------------------------------------------------------------

/// A convenience-store chain the shopper can pay at.
///
/// Serialized with the same short codes that `code()` returns, so DB columns,
/// JSON and merchant settings all share one spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Chain {
    #[serde(rename = "seven")]
    SevenEleven,
    #[serde(rename = "lawson")]
    Lawson,
    #[serde(rename = "famima")]
    FamilyMart,
    #[serde(rename = "ministop")]
    Ministop,
    /// Daily Yamazaki, including ヤマザキデイリーストアー (same payment system).
    #[serde(rename = "daily")]
    DailyYamazaki,
    #[serde(rename = "seicomart")]
    Seicomart,
}

/// How the payment number looks for a chain; drives both issuing and the shopper's screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NumberShape {
    /// セブン-イレブン: one 払込票番号 of [`PAYMENT_SLIP_NO_DIGITS`] digits (carried in `receipt_no`).
    PaymentSlip,
    /// ローソン / ファミリーマート / ミニストップ: お客様番号 ([`CUSTOMER_NO_DIGITS`] digits,
    /// `customer_no`) plus 確認番号 ([`CONFIRM_NO_DIGITS`] digits, `confirm_no`).
    CustomerAndConfirm,
    /// デイリーヤマザキ / セイコーマート: one 受付番号 (オンライン決済番号) of
    /// [`RECEPTION_NO_DIGITS`] digits (carried in `receipt_no`).
    Reception,
    /// Pay-easy: 収納機関番号 + お客様番号 + 確認番号 (`institution_no`, `customer_no`, `confirm_no`).
    Payeasy,
    /// Bank transfer (銀行振込): no number to key in but a 振込先 account (bank, branch, account
    /// type, number, holder), carried in `IssuedNumber::account` and shown on its own.
    BankTransfer,
}

/// 払込票番号 length at Seven-Eleven.
pub const PAYMENT_SLIP_NO_DIGITS: usize = 13;
/// お客様番号 length at Lawson, FamilyMart and Ministop.
pub const CUSTOMER_NO_DIGITS: usize = 11;
/// 確認番号 length at Lawson, FamilyMart and Ministop.
pub const CONFIRM_NO_DIGITS: usize = 4;
/// 受付番号 length at Daily Yamazaki and Seicomart. We use 11 digits (the
/// オンライン決済番号 form used by the major gateways) rather than the 6-digit
/// variant that also needs the shopper's phone number: one field is easier on
/// feature phones and at the register.
pub const RECEPTION_NO_DIGITS: usize = 11;
/// Pay-easy 収納機関番号 length.
pub const PAYEASY_INSTITUTION_NO_DIGITS: usize = 5;
/// Pay-easy お客様番号 length (we always issue the full 20 digits).
pub const PAYEASY_CUSTOMER_NO_DIGITS: usize = 20;
/// Pay-easy 確認番号 length.
pub const PAYEASY_CONFIRM_NO_DIGITS: usize = 6;

/// One field the shopper must see/enter, for rendering the number screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct NumberField {
    /// Field name in `IssuedNumber` (`receipt_no`, `customer_no`, `confirm_no`, `institution_no`).
    pub key: &'static str,
    pub label_ja: &'static str,
    pub label_en: &'static str,
    pub digits: usize,
}

const F_SLIP: NumberField = NumberField {
    key: "receipt_no",
    label_ja: "払込票番号",
    label_en: "Payment slip number",
    digits: PAYMENT_SLIP_NO_DIGITS,
};
const F_CUSTOMER: NumberField = NumberField {
    key: "customer_no",
    label_ja: "お客様番号",
    label_en: "Customer number",
    digits: CUSTOMER_NO_DIGITS,
};
const F_CONFIRM: NumberField = NumberField {
    key: "confirm_no",
    label_ja: "確認番号",
    label_en: "Confirmation number",
    digits: CONFIRM_NO_DIGITS,
};
const F_RECEPTION: NumberField = NumberField {
    key: "receipt_no",
    label_ja: "受付番号",
    label_en: "Reception number",
    digits: RECEPTION_NO_DIGITS,
};
const F_PE_INSTITUTION: NumberField = NumberField {
    key: "institution_no",
    label_ja: "収納機関番号",
    label_en: "Institution number",
    digits: PAYEASY_INSTITUTION_NO_DIGITS,
};
const F_PE_CUSTOMER: NumberField = NumberField {
    key: "customer_no",
    label_ja: "お客様番号",
    label_en: "Customer number",
    digits: PAYEASY_CUSTOMER_NO_DIGITS,
};
const F_PE_CONFIRM: NumberField = NumberField {
    key: "confirm_no",
    label_ja: "確認番号",
    label_en: "Confirmation number",
    digits: PAYEASY_CONFIRM_NO_DIGITS,
};

impl NumberShape {
    /// The fields of this shape, in the order the shopper enters them.
    pub fn fields(self) -> &'static [NumberField] {
        match self {
            NumberShape::PaymentSlip => &[F_SLIP],
            NumberShape::CustomerAndConfirm => &[F_CUSTOMER, F_CONFIRM],
            NumberShape::Reception => &[F_RECEPTION],
            NumberShape::Payeasy => &[F_PE_INSTITUTION, F_PE_CUSTOMER, F_PE_CONFIRM],
            NumberShape::BankTransfer => &[],
        }
    }
}

impl Chain {
    pub fn all() -> &'static [Chain] {
        &[
            Chain::SevenEleven,
            Chain::Lawson,
            Chain::FamilyMart,
            Chain::Ministop,
            Chain::DailyYamazaki,
            Chain::Seicomart,
        ]
    }

    /// Stable code used in the DB, settings and URLs.
    pub fn code(self) -> &'static str {
        match self {
            Chain::SevenEleven => "seven",
            Chain::Lawson => "lawson",
            Chain::FamilyMart => "famima",
            Chain::Ministop => "ministop",
            Chain::DailyYamazaki => "daily",
            Chain::Seicomart => "seicomart",
        }
    }

    /// Inverse of [`Chain::code`]; exact match only so typos in merchant settings surface.
    pub fn parse(code: &str) -> Option<Chain> {
        Chain::all().iter().copied().find(|c| c.code() == code)
    }

    pub fn name_ja(self) -> &'static str {
        match self {
            Chain::SevenEleven => "セブン-イレブン",
            Chain::Lawson => "ローソン",
            Chain::FamilyMart => "ファミリーマート",
            Chain::Ministop => "ミニストップ",
            Chain::DailyYamazaki => "デイリーヤマザキ",
            Chain::Seicomart => "セイコーマート",
        }
    }

    pub fn name_en(self) -> &'static str {
        match self {
            Chain::SevenEleven => "7-Eleven",
            Chain::Lawson => "Lawson",
            Chain::FamilyMart => "FamilyMart",
            Chain::Ministop => "Ministop",
            Chain::DailyYamazaki => "Daily Yamazaki",
            Chain::Seicomart => "Seicomart",
        }
    }

    pub fn shape(self) -> NumberShape {
        match self {
            Chain::SevenEleven => NumberShape::PaymentSlip,
            Chain::Lawson | Chain::FamilyMart | Chain::Ministop => NumberShape::CustomerAndConfirm,
            Chain::DailyYamazaki | Chain::Seicomart => NumberShape::Reception,
        }
    }

    /// Smallest allowed deadline in days: FamilyMart cannot issue a same-day (0-day) number.
    pub fn min_days(self) -> u32 {
        match self {
            Chain::FamilyMart => 1,
            _ => 0,
        }
    }

    /// Step-by-step instructions shown under the number (Japanese).
    pub fn how_to_pay_ja(self) -> &'static [&'static str] {
        match self {
            Chain::SevenEleven => &[
                "お近くのセブン-イレブンのレジで「インターネット代金の支払い」とお伝えください。",
                "払込票番号（13桁）をお伝えいただくか、印刷した払込票または払込票画面を提示してください。",
                "代金を現金でお支払いください。",
                "領収書（レシート）を必ずお受け取りください。",
            ],
            Chain::Lawson | Chain::Ministop => &[
                "店内のLoppi端末のトップ画面で「各種番号をお持ちの方」を選択してください。",
                "お客様番号（11桁）を入力し、続けて確認番号（4桁）を入力してください。",
                "内容を確認して「了解」を押すと申込券が発券されます。",
                "申込券を30分以内にレジへお持ちいただき、代金を現金でお支払いください。",
                "領収書を必ずお受け取りください。",
            ],
            Chain::FamilyMart => &[
                "店内のマルチコピー機（旧Famiポート）で「代金支払い」を選択してください。",
                "お客様番号（11桁）と確認番号（4桁）を入力してください。",
                "内容を確認すると申込券が発券されます。",
                "申込券を30分以内にレジへお持ちいただき、代金を現金でお支払いください。",
                "領収書を必ずお受け取りください。",
            ],
            Chain::DailyYamazaki | Chain::Seicomart => &[
                "レジで「オンライン決済」とお伝えください。",
                "受付番号（11桁）をお伝えいただくか、レジの画面に入力してください。",
                "代金を現金でお支払いください。",
                "領収書を必ずお受け取りください。",
            ],
        }
    }

    /// Step-by-step instructions (English), same steps as [`Chain::how_to_pay_ja`].
    pub fn how_to_pay_en(self) -> &'static [&'static str] {
        match self {
            Chain::SevenEleven => &[
                "At the register of any 7-Eleven, say you want to make an \"internet payment\".",
                "Tell the cashier the 13-digit payment slip number, or show the printed slip or the slip screen.",
                "Pay the amount in cash.",
                "Keep the receipt.",
            ],
            Chain::Lawson | Chain::Ministop => &[
                "On the Loppi terminal in the store, choose \"各種番号をお持ちの方\" (I have a number).",
                "Enter the 11-digit customer number, then the 4-digit confirmation number.",
                "Check the details and confirm; the terminal prints an application slip.",
                "Take the slip to the register within 30 minutes and pay in cash.",
                "Keep the receipt.",
            ],
            Chain::FamilyMart => &[
                "On the multi-copy machine (formerly Famiport), choose \"代金支払い\" (bill payment).",
                "Enter the 11-digit customer number and the 4-digit confirmation number.",
                "Confirm the details; the machine prints an application slip.",
                "Take the slip to the register within 30 minutes and pay in cash.",
                "Keep the receipt.",
            ],
            Chain::DailyYamazaki | Chain::Seicomart => &[
                "At the register, say \"オンライン決済\" (online payment).",
                "Tell the cashier the 11-digit reception number, or enter it on the register's screen.",
                "Pay the amount in cash.",
                "Keep the receipt.",
            ],
        }
    }
}

// ---------------------------------------------------------------------------
// Limits
// ---------------------------------------------------------------------------

/// Largest konbini payment (yen). There is no minimum beyond 1 yen.
pub const MAX_AMOUNT: i64 = 300_000;
/// Payments of this amount or more carry stamp duty (印紙代).
pub const STAMP_DUTY_THRESHOLD: i64 = 50_000;
/// Stamp duty per qualifying payment, deducted from the merchant's payout.
pub const STAMP_DUTY: i64 = 200;
/// Longest konbini / Pay-easy deadline in days; numbers are never unlimited.
pub const MAX_DAYS: u32 = 60;

/// Largest Pay-easy payment (yen).
///
/// 999,999 yen: the common cap of Japanese gateways' Pay-easy service (the
/// amount field is six digits). Note that *cash* at an ATM is separately capped
/// at [`PAYEASY_ATM_CASH_LIMIT`] by the anti-money-laundering law, so larger
/// bills must be paid from a cash card or online banking; the how-to text says so.
pub const PAYEASY_MAX_AMOUNT: i64 = 999_999;
/// ATMs refuse cash transfers above 100,000 yen (犯罪収益移転防止法); cards/online banking are fine.
pub const PAYEASY_ATM_CASH_LIMIT: i64 = 100_000;

/// Stamp duty owed for a konbini payment of `amount` yen.
pub fn stamp_duty(amount: i64) -> i64 {
    if amount >= STAMP_DUTY_THRESHOLD {
        STAMP_DUTY
    } else {
        0
    }
}

/// Why an amount or deadline was refused; `code()` is stable for APIs and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum LimitError {
    #[error("amount must be at least 1 yen")]
    AmountNotPositive,
    #[error("amount {amount} exceeds the maximum of {max} yen")]
    AmountTooLarge { amount: i64, max: i64 },
    #[error("deadline of {days} days is outside {min}..={max}")]
    DaysOutOfRange { days: i64, min: u32, max: u32 },
}

impl LimitError {
    pub fn code(&self) -> &'static str {
        match self {
            LimitError::AmountNotPositive => "amount_not_positive",
            LimitError::AmountTooLarge { .. } => "amount_too_large",
            LimitError::DaysOutOfRange { .. } => "deadline_days_out_of_range",
        }
    }
}

fn check_amount(amount: i64, max: i64) -> Result<(), LimitError> {
    if amount < 1 {
        Err(LimitError::AmountNotPositive)
    } else if amount > max {
        Err(LimitError::AmountTooLarge { amount, max })
    } else {
        Ok(())
    }
}

/// Konbini amount check: 1..=300,000 yen.
pub fn validate_amount(amount: i64) -> Result<(), LimitError> {
    check_amount(amount, MAX_AMOUNT)
}

/// Pay-easy amount check: 1..=999,999 yen.
pub fn validate_payeasy_amount(amount: i64) -> Result<(), LimitError> {
    check_amount(amount, PAYEASY_MAX_AMOUNT)
}

/// Deadline days for a chain: 0–60, FamilyMart 1–60. `i64` so that negative
/// values coming from requests are reported rather than wrapped.
pub fn validate_days(chain: Chain, days: i64) -> Result<u32, LimitError> {
    check_days(days, chain.min_days())
}

/// Pay-easy deadline days: 0–60, like most chains.
pub fn validate_payeasy_days(days: i64) -> Result<u32, LimitError> {
    check_days(days, 0)
}

/// Bank transfer (銀行振込) deadline days: 1–60. Never same-day: a transfer sent in the evening
/// from a bank outside the 24-hour clearing network (モアタイム) arrives the next business day.
pub fn validate_bank_transfer_days(days: i64) -> Result<u32, LimitError> {
    check_days(days, 1)
}

/// Largest bank transfer (yen): the largest amount an order link may carry. Banks set their own
/// per-transfer limits for the shopper; ATM cash is capped like Pay-easy's.
pub const BANK_TRANSFER_MAX_AMOUNT: i64 = crate::domain::method::MAX_LINK_AMOUNT;

/// Bank transfer amount check: 1 yen up to [`BANK_TRANSFER_MAX_AMOUNT`].
pub fn validate_bank_transfer_amount(amount: i64) -> Result<(), LimitError> {
    check_amount(amount, BANK_TRANSFER_MAX_AMOUNT)
}

/// Bank transfer instructions (Japanese), shown under the 振込先.
pub fn bank_transfer_how_to_pay_ja() -> &'static [&'static str] {
    &[
        "インターネットバンキング、または銀行・ゆうちょ銀行のATMから、下記の振込先にお振込みください。",
        "金額はお支払い金額ちょうどでお振込みください。金額が異なると入金を確認できません。",
        "この振込先口座はこのご注文専用です。別のご注文には使えません。",
        "振込手数料はお客様のご負担となります。",
        "お振込みの確認には、銀行の営業時間により翌営業日までかかることがあります。",
        "ATMで現金でお振込みの場合、10万円を超える金額はお振込みいただけません。キャッシュカードまたはインターネットバンキングをご利用ください。",
    ]
}

/// Bank transfer instructions (English).
pub fn bank_transfer_how_to_pay_en() -> &'static [&'static str] {
    &[
        "Transfer the amount to the account below from your online banking or a bank (or Japan Post Bank) ATM.",
        "Transfer exactly the amount shown: a different amount cannot be matched to your order.",
        "This account is for this order only; do not use it for another order.",
        "Transfer fees are paid by you.",
        "Depending on bank hours, the transfer may be confirmed on the next business day.",
        "ATMs do not accept more than 100,000 yen in cash; use a cash card or online banking for larger amounts.",
    ]
}

fn check_days(days: i64, min: u32) -> Result<u32, LimitError> {
    if days < i64::from(min) || days > i64::from(MAX_DAYS) {
        Err(LimitError::DaysOutOfRange {
            days,
            min,
            max: MAX_DAYS,
        })
    } else {
        // In range 0..=60, so the conversion cannot fail.
        Ok(days as u32)
    }
}

// ---------------------------------------------------------------------------
// Deadlines
// ---------------------------------------------------------------------------

/// Day number (days since 1970-01-01) of the JST calendar date at `now_ms`.
pub fn jst_day(now_ms: i64) -> i64 {
    now_ms.saturating_add(JST_OFFSET_MS).div_euclid(DAY_MS)
}

/// Payment deadline: the end of the JST day that is `days` days after today (JST).
///
/// Returned as unix ms (UTC) of 23:59:59.999 JST — the last millisecond of that
/// day — so the deadline displays as 23:59:59 and a payment made anywhere inside
/// that final second still counts as on time. `days = 0` means "by tonight".
pub fn deadline_ms(now_ms: i64, days: u32) -> i64 {
    let last_day = jst_day(now_ms).saturating_add(i64::from(days));
    last_day
        .saturating_add(1)
        .saturating_mul(DAY_MS)
        .saturating_sub(JST_OFFSET_MS)
        .saturating_sub(1)
}

/// True when `at_ms` is after the deadline (the deadline itself is still on time).
pub fn is_past_deadline(at_ms: i64, deadline_ms: i64) -> bool {
    at_ms > deadline_ms
}

// ---------------------------------------------------------------------------
// Status machine
// ---------------------------------------------------------------------------

/// Which number-type method a payment uses; selects the event-type prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NumberMethod {
    Konbini,
    Payeasy,
    BankTransfer,
}

impl NumberMethod {
    pub fn code(self) -> &'static str {
        match self {
            NumberMethod::Konbini => "konbini",
            NumberMethod::Payeasy => "payeasy",
            NumberMethod::BankTransfer => "bank_transfer",
        }
    }

    pub fn parse(code: &str) -> Option<NumberMethod> {
        match code {
            "konbini" => Some(NumberMethod::Konbini),
            "payeasy" => Some(NumberMethod::Payeasy),
            "bank_transfer" => Some(NumberMethod::BankTransfer),
            _ => None,
        }
    }

    /// The payment method this number type is stored under.
    pub fn method(self) -> crate::domain::Method {
        match self {
            NumberMethod::Konbini => crate::domain::Method::Konbini,
            NumberMethod::Payeasy => crate::domain::Method::Payeasy,
            NumberMethod::BankTransfer => crate::domain::Method::BankTransfer,
        }
    }

    /// The number type of a payment method, if it is one.
    pub fn of(m: crate::domain::Method) -> Option<NumberMethod> {
        match m {
            crate::domain::Method::Konbini => Some(NumberMethod::Konbini),
            crate::domain::Method::Payeasy => Some(NumberMethod::Payeasy),
            crate::domain::Method::BankTransfer => Some(NumberMethod::BankTransfer),
            _ => None,
        }
    }
}

/// Status of a konbini / Pay-easy payment number. Serialized as the DB code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NumberStatus {
    /// Written before the institution is asked for the number (発行中): the payment holds the
    /// checkout while the call is out, so a retry reuses this payment's id as the idempotency
    /// key and never gets a second number. Nothing is shown to the shopper as payable.
    Issuing,
    /// The institution refused to issue the number, or the shopper gave up on a number whose
    /// issue did not complete (発行失敗). Final; the checkout is open again.
    IssueFailed,
    /// Number issued, waiting for the shopper (申込済).
    AwaitingPayment,
    /// 速報 received: paid at the store / ATM on time (消込済).
    Paid,
    /// 確報 received: funds confirmed for payout. Final.
    Confirmed,
    /// 速報取消: the store reversed the preliminary payment.
    Reversed,
    /// Deadline passed with no payment (期限切れ).
    Expired,
    /// A payment whose paid-at time is after the deadline (期限後入金). Neither
    /// rejected nor silently treated as normal: the merchant decides whether to
    /// ship or refund.
    LatePaid,
    /// Withdrawn before payment (取消): the shopper chose another store or method, and the
    /// institution cancelled the number first. Final; the checkout is open again.
    Cancelled,
}

impl NumberStatus {
    /// DB code.
    pub fn code(self) -> &'static str {
        match self {
            NumberStatus::Issuing => "issuing",
            NumberStatus::IssueFailed => "issue_failed",
            NumberStatus::AwaitingPayment => "awaiting_payment",
            NumberStatus::Paid => "paid",
            NumberStatus::Confirmed => "confirmed",
            NumberStatus::Reversed => "reversed",
            NumberStatus::Expired => "expired",
            NumberStatus::LatePaid => "late_paid",
            NumberStatus::Cancelled => "cancelled",
        }
    }

    /// Console label (決済ステータス), using the words merchants know.
    pub fn label_ja(self) -> &'static str {
        match self {
            NumberStatus::Issuing => "発行中",
            NumberStatus::IssueFailed => "発行失敗",
            NumberStatus::AwaitingPayment => "申込済",
            NumberStatus::Paid => "消込済（速報）",
            NumberStatus::Confirmed => "入金確定（確報）",
            NumberStatus::Reversed => "速報取消",
            NumberStatus::Expired => "期限切れ",
            NumberStatus::LatePaid => "期限後入金",
            NumberStatus::Cancelled => "取消済",
        }
    }

    pub fn label_en(self) -> &'static str {
        match self {
            NumberStatus::Issuing => "Issuing",
            NumberStatus::IssueFailed => "Not issued",
            NumberStatus::AwaitingPayment => "Awaiting payment",
            NumberStatus::Paid => "Paid (preliminary)",
            NumberStatus::Confirmed => "Confirmed",
            NumberStatus::Reversed => "Reversed",
            NumberStatus::Expired => "Expired",
            NumberStatus::LatePaid => "Paid after deadline",
            NumberStatus::Cancelled => "Cancelled",
        }
    }

    /// Statuses from which no action changes anything any more.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            NumberStatus::Confirmed | NumberStatus::Cancelled | NumberStatus::IssueFailed
        )
    }
}

crate::domain::lifecycle::impl_status!(
    NumberStatus,
    [
        NumberStatus::Issuing,
        NumberStatus::IssueFailed,
        NumberStatus::AwaitingPayment,
        NumberStatus::Paid,
        NumberStatus::Confirmed,
        NumberStatus::Reversed,
        NumberStatus::Expired,
        NumberStatus::LatePaid,
        NumberStatus::Cancelled,
    ]
);

/// An event reported by the payment institution (or the sandbox control endpoint),
/// or by our own expiry job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum NumberAction {
    /// The institution issued the number (`issuing` → `awaiting_payment`).
    Issued,
    /// The institution refused the number, or the shopper gave up on an issue that did not
    /// complete (`issuing` → `issue_failed`).
    IssueFail,
    /// 速報: paid at the store/ATM at `at_ms` (the institution's paid-at time,
    /// not the time the notice reached us — notices can lag up to ~2 hours).
    Paid { at_ms: i64 },
    /// 確報.
    Confirm,
    /// 速報取消.
    Reverse,
    /// Expiry job: allowed only once `now_ms` is past the deadline.
    Expire { now_ms: i64 },
    /// The shopper changes store or method: the institution has cancelled the unpaid number.
    Cancel,
}

impl NumberAction {
    pub fn code(&self) -> &'static str {
        match self {
            NumberAction::Issued => "issued",
            NumberAction::IssueFail => "issue_fail",
            NumberAction::Paid { .. } => "paid",
            NumberAction::Confirm => "confirm",
            NumberAction::Reverse => "reverse",
            NumberAction::Expire { .. } => "expire",
            NumberAction::Cancel => "cancel",
        }
    }
}

/// Why a transition was refused (the shared shape; `code()` is stable).
pub type TransitionError<S = NumberStatus> = crate::domain::lifecycle::TransitionError<S>;

/// Apply one event to a number's status.
///
/// Rules (and why):
/// - `Paid` decides on-time vs late by the institution's paid-at time against
///   the deadline, not by our current status: a 速報 for a payment made at 23:50
///   can reach us after the expiry job ran, and that shopper paid on time. So
///   `awaiting_payment` / `expired` / `reversed` → `paid` or `late_paid`.
///   (`reversed` may be paid again: a 速報取消 is often a register mistake and the
///   number stays usable.)
/// - `Confirm` (確報) is allowed from `paid` and from `late_paid` → `confirmed`:
///   the money really arrives either way, and the merchant already got the
///   `late_paid` notice to decide on; lateness stays visible from paid-at vs deadline.
///   A reversed payment can never be confirmed.
/// - `Reverse` (速報取消) from `paid` / `late_paid` → `reversed`; never after 確報.
/// - `Expire` only from `awaiting_payment` and only when `now_ms > deadline_ms`.
/// - `Issued` / `IssueFail` only from `issuing` (the number is written as `issuing` before the
///   institution is called); an issuing or failed number takes no other action.
/// - `Cancel` only from `awaiting_payment` (nothing paid yet; the institution refused the
///   number first). `cancelled` is final: the checkout has moved on to another payment, so a
///   later result for the old number is refused rather than making two live payments.
pub fn apply(
    state: NumberStatus,
    action: NumberAction,
    deadline_ms: i64,
) -> Result<NumberStatus, TransitionError> {
    use NumberAction as A;
    use NumberStatus as S;
    let dup = || TransitionError::Duplicate {
        from: state,
        action: action.code(),
    };
    let forbidden = || TransitionError::Forbidden {
        from: state,
        action: action.code(),
    };
    match (state, action) {
        (S::Issuing, A::Issued) => Ok(S::AwaitingPayment),
        (S::AwaitingPayment, A::Issued) => Err(dup()),
        (_, A::Issued) => Err(forbidden()),
        (S::Issuing, A::IssueFail) => Ok(S::IssueFailed),
        (S::IssueFailed, A::IssueFail) => Err(dup()),
        (_, A::IssueFail) => Err(forbidden()),
        // Nothing was shown as payable: no result can apply to a number not (yet) issued.
        (S::Issuing | S::IssueFailed, _) => Err(forbidden()),
        (S::AwaitingPayment | S::Expired | S::Reversed, A::Paid { at_ms }) => {
            if is_past_deadline(at_ms, deadline_ms) {
                Ok(S::LatePaid)
            } else {
                Ok(S::Paid)
            }
        }
        (S::Paid | S::LatePaid | S::Confirmed, A::Paid { .. }) => Err(dup()),

        (S::Paid | S::LatePaid, A::Confirm) => Ok(S::Confirmed),
        (S::Confirmed, A::Confirm) => Err(dup()),
        (S::AwaitingPayment | S::Expired | S::Reversed, A::Confirm) => Err(forbidden()),

        (S::Paid | S::LatePaid, A::Reverse) => Ok(S::Reversed),
        (S::Reversed, A::Reverse) => Err(dup()),
        (S::AwaitingPayment | S::Expired | S::Confirmed, A::Reverse) => Err(forbidden()),

        (S::AwaitingPayment, A::Expire { now_ms }) => {
            if is_past_deadline(now_ms, deadline_ms) {
                Ok(S::Expired)
            } else {
                Err(TransitionError::Refused(Refusal::NotYetExpired))
            }
        }
        (S::Expired, A::Expire { .. }) => Err(dup()),
        (S::Paid | S::LatePaid | S::Confirmed | S::Reversed, A::Expire { .. }) => Err(forbidden()),

        (S::AwaitingPayment, A::Cancel) => Ok(S::Cancelled),
        (S::Cancelled, A::Cancel) => Err(dup()),
        (S::Cancelled, _) => Err(forbidden()),
        (S::Paid | S::LatePaid | S::Confirmed | S::Reversed | S::Expired, A::Cancel) => {
            Err(forbidden())
        }
    }
}

/// Notification event type for a payment that has just entered `new_status`.
///
/// `method` is `"payeasy"` for Pay-easy; any other value (normally `"konbini"`)
/// gives the konbini events. Expiry is method-neutral (`payment.expired`).
pub fn event_type(method: &str, new_status: NumberStatus) -> &'static str {
    let m = NumberMethod::parse(method).unwrap_or(NumberMethod::Konbini);
    event_type_for(m, new_status)
}

/// Typed form of [`event_type`].
pub fn event_type_for(method: NumberMethod, new_status: NumberStatus) -> &'static str {
    use NumberMethod::{BankTransfer, Konbini, Payeasy};
    match (method, new_status) {
        // Written with the payment itself (`payment.created`, never sent to the merchant).
        (_, NumberStatus::Issuing) => "payment.created",
        // Method-neutral: the merchant sees that no number came of this payment.
        (_, NumberStatus::IssueFailed) => "payment.failed",
        (BankTransfer, NumberStatus::AwaitingPayment) => "bank_transfer.issued",
        (BankTransfer, NumberStatus::Paid) => "bank_transfer.paid",
        (BankTransfer, NumberStatus::Confirmed) => "bank_transfer.confirmed",
        (BankTransfer, NumberStatus::Reversed) => "bank_transfer.reversed",
        (BankTransfer, NumberStatus::LatePaid) => "bank_transfer.late_paid",
        (Konbini, NumberStatus::AwaitingPayment) => "konbini.issued",
        (Payeasy, NumberStatus::AwaitingPayment) => "payeasy.issued",
        (Konbini, NumberStatus::Paid) => "konbini.paid",
        (Payeasy, NumberStatus::Paid) => "payeasy.paid",
        (Konbini, NumberStatus::Confirmed) => "konbini.confirmed",
        (Payeasy, NumberStatus::Confirmed) => "payeasy.confirmed",
        (Konbini, NumberStatus::Reversed) => "konbini.reversed",
        (Payeasy, NumberStatus::Reversed) => "payeasy.reversed",
        (Konbini, NumberStatus::LatePaid) => "konbini.late_paid",
        (Payeasy, NumberStatus::LatePaid) => "payeasy.late_paid",
        (_, NumberStatus::Expired) => "payment.expired",
        // Method-neutral like expiry: the merchant sees the number withdrawn.
        (_, NumberStatus::Cancelled) => "payment.cancelled",
    }
}

// ---------------------------------------------------------------------------
// Pay-easy
// ---------------------------------------------------------------------------

/// Pay-easy instructions (Japanese): ATM or online banking.
pub fn payeasy_how_to_pay_ja() -> &'static [&'static str] {
    &[
        "Pay-easy（ペイジー）マークのある銀行ATM、またはインターネットバンキングで「税金・料金払込み」を選択してください。",
        "収納機関番号（5桁）を入力してください。",
        "お客様番号（20桁）と確認番号（6桁）を入力してください。",
        "表示された請求内容と金額を確認し、お支払いください。",
        "ATMで現金でお支払いの場合、10万円を超える金額はお支払いいただけません。キャッシュカードまたはインターネットバンキングをご利用ください。",
        "ご利用明細（控え）を必ずお受け取りください。",
    ]
}

/// Pay-easy instructions (English).
pub fn payeasy_how_to_pay_en() -> &'static [&'static str] {
    &[
        "At a bank ATM showing the Pay-easy mark, or in your online banking, choose \"税金・料金払込み\" (taxes and bills).",
        "Enter the 5-digit institution number.",
        "Enter the 20-digit customer number and the 6-digit confirmation number.",
        "Check the bill and the amount, then pay.",
        "ATMs do not accept more than 100,000 yen in cash; use a cash card or online banking for larger amounts.",
        "Keep the statement.",
    ]
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
    fn chain_codes_round_trip() {
        for c in Chain::all() {
            assert_eq!(Chain::parse(c.code()), Some(*c));
            assert!(!c.how_to_pay_ja().is_empty());
            assert_eq!(c.how_to_pay_ja().len(), c.how_to_pay_en().len());
        }
        assert_eq!(Chain::parse("Seven"), None);
        assert_eq!(Chain::FamilyMart.name_ja(), "ファミリーマート");
    }

    #[test]
    fn shapes_per_chain() {
        assert_eq!(Chain::SevenEleven.shape(), NumberShape::PaymentSlip);
        assert_eq!(NumberShape::PaymentSlip.fields()[0].digits, 13);
        for c in [Chain::Lawson, Chain::FamilyMart, Chain::Ministop] {
            let f = c.shape().fields();
            assert_eq!((f[0].digits, f[1].digits), (11, 4));
        }
        for c in [Chain::DailyYamazaki, Chain::Seicomart] {
            assert_eq!(c.shape(), NumberShape::Reception);
        }
        let pe = NumberShape::Payeasy.fields();
        assert_eq!(
            pe.iter().map(|f| f.digits).collect::<Vec<_>>(),
            vec![5, 20, 6]
        );
    }

    #[test]
    fn stamp_duty_threshold() {
        assert_eq!(stamp_duty(49_999), 0);
        assert_eq!(stamp_duty(50_000), 200);
        assert_eq!(stamp_duty(300_000), 200);
        assert_eq!(stamp_duty(0), 0);
    }

    #[test]
    fn amount_limits() {
        assert!(validate_amount(1).is_ok());
        assert!(validate_amount(300_000).is_ok());
        assert_eq!(
            validate_amount(300_001).unwrap_err().code(),
            "amount_too_large"
        );
        assert_eq!(
            validate_amount(0).unwrap_err().code(),
            "amount_not_positive"
        );
        assert!(validate_payeasy_amount(999_999).is_ok());
        assert!(validate_payeasy_amount(1_000_000).is_err());
    }

    #[test]
    fn days_limits() {
        assert_eq!(validate_days(Chain::SevenEleven, 0), Ok(0));
        assert_eq!(validate_days(Chain::Lawson, 60), Ok(60));
        assert!(validate_days(Chain::Lawson, 61).is_err());
        assert!(validate_days(Chain::Lawson, -1).is_err());
        assert_eq!(
            validate_days(Chain::FamilyMart, 0).unwrap_err().code(),
            "deadline_days_out_of_range"
        );
        assert_eq!(validate_days(Chain::FamilyMart, 1), Ok(1));
        assert_eq!(validate_payeasy_days(60), Ok(60));
    }

    #[test]
    fn deadline_just_before_jst_midnight() {
        // 2026-11-30 23:59:59 JST = 14:59:59 UTC: still "today" in JST.
        let now = ms(datetime!(2026-11-30 14:59:59 UTC));
        assert_eq!(
            deadline_ms(now, 0),
            ms(datetime!(2026-11-30 14:59:59.999 UTC))
        );
        assert_eq!(
            deadline_ms(now, 3),
            ms(datetime!(2026-12-03 23:59:59.999 +9))
        );
    }

    #[test]
    fn deadline_just_after_jst_midnight() {
        // 2026-12-01 00:00:00 JST = 2026-11-30 15:00 UTC: already tomorrow in JST
        // even though the UTC date is still the 30th.
        let now = ms(datetime!(2026-11-30 15:00:00 UTC));
        assert_eq!(
            deadline_ms(now, 0),
            ms(datetime!(2026-12-01 23:59:59.999 +9))
        );
        // Month / year roll-over.
        let now = ms(datetime!(2026-12-31 15:30:00 UTC));
        assert_eq!(
            deadline_ms(now, 1),
            ms(datetime!(2027-01-02 23:59:59.999 +9))
        );
    }

    #[test]
    fn deadline_before_epoch_and_boundary() {
        let now = ms(datetime!(1969-12-31 10:00:00 UTC)); // 19:00 JST
        assert_eq!(
            deadline_ms(now, 0),
            ms(datetime!(1969-12-31 23:59:59.999 +9))
        );
        let d = deadline_ms(0, 0);
        assert!(!is_past_deadline(d, d));
        assert!(is_past_deadline(d + 1, d));
    }

    const DL: i64 = 1_000_000;

    fn all_actions() -> Vec<NumberAction> {
        vec![
            NumberAction::Issued,
            NumberAction::IssueFail,
            NumberAction::Paid { at_ms: DL },
            NumberAction::Paid { at_ms: DL + 1 },
            NumberAction::Confirm,
            NumberAction::Reverse,
            NumberAction::Expire { now_ms: DL },
            NumberAction::Expire { now_ms: DL + 1 },
            NumberAction::Cancel,
        ]
    }

    /// Expected result for every (state, action) pair; the test walks all of them.
    fn expected(s: NumberStatus, a: NumberAction) -> Result<NumberStatus, &'static str> {
        use NumberAction as A;
        use NumberStatus as S;
        match (s, a) {
            (S::Issuing, A::Issued) => Ok(S::AwaitingPayment),
            (S::AwaitingPayment, A::Issued) => Err("duplicate"),
            (S::Issuing, A::IssueFail) => Ok(S::IssueFailed),
            (S::IssueFailed, A::IssueFail) => Err("duplicate"),
            (_, A::Issued | A::IssueFail) | (S::Issuing | S::IssueFailed, _) => {
                Err("forbidden_transition")
            }
            (S::AwaitingPayment, A::Cancel) => Ok(S::Cancelled),
            (S::Cancelled, A::Cancel) => Err("duplicate"),
            (S::Cancelled, _) | (_, A::Cancel) => Err("forbidden_transition"),
            (S::AwaitingPayment | S::Expired | S::Reversed, A::Paid { at_ms }) if at_ms <= DL => {
                Ok(S::Paid)
            }
            (S::AwaitingPayment | S::Expired | S::Reversed, A::Paid { .. }) => Ok(S::LatePaid),
            (S::Paid | S::LatePaid | S::Confirmed, A::Paid { .. }) => Err("duplicate"),
            (S::Paid | S::LatePaid, A::Confirm) => Ok(S::Confirmed),
            (S::Confirmed, A::Confirm) => Err("duplicate"),
            (_, A::Confirm) => Err("forbidden_transition"),
            (S::Paid | S::LatePaid, A::Reverse) => Ok(S::Reversed),
            (S::Reversed, A::Reverse) => Err("duplicate"),
            (_, A::Reverse) => Err("forbidden_transition"),
            (S::AwaitingPayment, A::Expire { now_ms }) if now_ms > DL => Ok(S::Expired),
            (S::AwaitingPayment, A::Expire { .. }) => Err("not_yet_expired"),
            (S::Expired, A::Expire { .. }) => Err("duplicate"),
            (_, A::Expire { .. }) => Err("forbidden_transition"),
        }
    }

    #[test]
    fn every_state_action_pair() {
        let mut checked = 0;
        for &s in NumberStatus::ALL {
            for a in all_actions() {
                let got = apply(s, a, DL).map_err(|e| e.code());
                assert_eq!(got, expected(s, a), "{s:?} + {a:?}");
                checked += 1;
            }
        }
        assert_eq!(checked, 81);
    }

    #[test]
    fn key_business_rules() {
        use NumberStatus as S;
        // Paid on an expired number with an on-time paid-at is a normal payment.
        assert_eq!(
            apply(S::Expired, NumberAction::Paid { at_ms: DL - 5 }, DL),
            Ok(S::Paid)
        );
        // ... and a really late one is flagged, not rejected.
        assert_eq!(
            apply(S::Expired, NumberAction::Paid { at_ms: DL + 5 }, DL),
            Ok(S::LatePaid)
        );
        // A reversed payment can't be confirmed.
        assert_eq!(
            apply(S::Reversed, NumberAction::Confirm, DL)
                .unwrap_err()
                .code(),
            "forbidden_transition"
        );
        // 確報 is final.
        assert!(apply(S::Confirmed, NumberAction::Reverse, DL).is_err());
        assert!(S::Confirmed.is_final());
    }

    #[test]
    fn status_codes_and_labels() {
        for &s in NumberStatus::ALL {
            assert_eq!(NumberStatus::parse(s.code()), Some(s));
            assert!(!s.label_ja().is_empty());
        }
        assert_eq!(NumberStatus::LatePaid.label_ja(), "期限後入金");
    }

    #[test]
    fn event_types() {
        assert_eq!(event_type("konbini", NumberStatus::Paid), "konbini.paid");
        assert_eq!(event_type("payeasy", NumberStatus::Paid), "payeasy.paid");
        assert_eq!(
            event_type("konbini", NumberStatus::Confirmed),
            "konbini.confirmed"
        );
        assert_eq!(
            event_type("konbini", NumberStatus::Reversed),
            "konbini.reversed"
        );
        assert_eq!(
            event_type("payeasy", NumberStatus::Expired),
            "payment.expired"
        );
        assert_eq!(
            event_type("konbini", NumberStatus::LatePaid),
            "konbini.late_paid"
        );
    }

    #[test]
    fn bank_transfer_rules() {
        assert_eq!(
            event_type("bank_transfer", NumberStatus::Paid),
            "bank_transfer.paid"
        );
        assert_eq!(
            event_type_for(NumberMethod::BankTransfer, NumberStatus::IssueFailed),
            "payment.failed"
        );
        assert!(validate_bank_transfer_days(0).is_err());
        assert_eq!(validate_bank_transfer_days(14), Ok(14));
        assert!(validate_bank_transfer_amount(1_000_000).is_ok());
        assert_eq!(
            bank_transfer_how_to_pay_ja().len(),
            bank_transfer_how_to_pay_en().len()
        );
        assert!(NumberShape::BankTransfer.fields().is_empty());
        assert!(NumberStatus::IssueFailed.is_final());
        assert!(!NumberStatus::Issuing.is_final());
    }

    #[test]
    fn method_codes() {
        assert_eq!(Chain::parse("famima"), Some(Chain::FamilyMart));
        assert_eq!(NumberMethod::parse("payeasy"), Some(NumberMethod::Payeasy));
        assert_eq!(NumberMethod::Konbini.code(), "konbini");
    }
}
