//! Payment-number connector for konbini, Pay-easy and bank transfer: the `NumberConnector` trait and a stateless sandbox that issues numbers of each chain's real shape (and 振込先 accounts).
//!
//! Sandbox outcomes (速報 / 確報 / 速報取消) are not produced here: the server's
//! sandbox control endpoint drives them by applying
//! `crate::domain::konbini::NumberAction`s to the stored payment, exactly as the
//! notification handler does for a real institution.

use async_trait::async_trait;
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::connectors::bank::SANDBOX_REFUSES_LIVE;
use crate::domain::konbini::{
    validate_amount, validate_bank_transfer_amount, validate_payeasy_amount, Chain, NumberAction,
    NumberMethod, NumberShape, CONFIRM_NO_DIGITS, CUSTOMER_NO_DIGITS, PAYEASY_CONFIRM_NO_DIGITS,
    PAYEASY_CUSTOMER_NO_DIGITS, PAYEASY_INSTITUTION_NO_DIGITS, PAYMENT_SLIP_NO_DIGITS,
    RECEPTION_NO_DIGITS,
};
use crate::domain::refund_request::AccountType;
use crate::domain::repeat::NUMBER_DIGITS as REPEAT_NUMBER_DIGITS;
use crate::domain::Mode;

type HmacSha256 = Hmac<Sha256>;

/// Where the shopper will pay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "method", content = "chain", rename_all = "snake_case")]
pub enum IssueTarget {
    Konbini(Chain),
    Payeasy,
    /// Bank transfer (銀行振込) to an account issued for this payment.
    BankTransfer,
}

impl IssueTarget {
    pub fn shape(self) -> NumberShape {
        match self {
            IssueTarget::Konbini(c) => c.shape(),
            IssueTarget::Payeasy => NumberShape::Payeasy,
            IssueTarget::BankTransfer => NumberShape::BankTransfer,
        }
    }

    pub fn method(self) -> NumberMethod {
        match self {
            IssueTarget::Konbini(_) => NumberMethod::Konbini,
            IssueTarget::Payeasy => NumberMethod::Payeasy,
            IssueTarget::BankTransfer => NumberMethod::BankTransfer,
        }
    }

    /// Stable code: the chain code, `"payeasy"` or `"bank_transfer"`.
    pub fn code(self) -> &'static str {
        match self {
            IssueTarget::Konbini(c) => c.code(),
            IssueTarget::Payeasy => "payeasy",
            IssueTarget::BankTransfer => "bank_transfer",
        }
    }

    /// The amount check of the target's method.
    pub fn validate_amount(self, amount: i64) -> Result<(), crate::domain::konbini::LimitError> {
        match self {
            IssueTarget::Konbini(_) => validate_amount(amount),
            IssueTarget::Payeasy => validate_payeasy_amount(amount),
            IssueTarget::BankTransfer => validate_bank_transfer_amount(amount),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssueRequest {
    /// Our payment id (決済ID); also the idempotency key for issuing.
    pub payment_id: String,
    /// The merchant's mode: the sandbox refuses live payments (defence in depth).
    pub mode: Mode,
    pub target: IssueTarget,
    pub amount: i64,
    /// From `crate::domain::konbini::deadline_ms`.
    pub deadline_ms: i64,
    /// Shopper name in katakana (some institutions print it on the slip).
    pub shopper_name_kana: Option<String>,
    pub shopper_phone: Option<String>,
    /// Shopper name and email from the link: processors such as KOMOJU require them (the
    /// sandbox ignores them).
    pub shopper_name: Option<String>,
    pub shopper_email: Option<String>,
}

/// A number as issued. Which fields are set depends on the shape:
///
/// | shape | `receipt_no` | `customer_no` | `confirm_no` | `institution_no` |
/// |---|---|---|---|---|
/// | Seven-Eleven 払込票番号 | 13 digits | – | – | – |
/// | Lawson / FamilyMart / Ministop | – | 11 digits | 4 digits | – |
/// | Daily Yamazaki / Seicomart 受付番号 | 11 digits | – | – | – |
/// | Pay-easy | – | 20 digits | 6 digits | 5 digits |
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedNumber {
    pub target: IssueTarget,
    pub receipt_no: Option<String>,
    pub customer_no: Option<String>,
    pub confirm_no: Option<String>,
    pub institution_no: Option<String>,
    /// A page the shopper can open/print (e.g. Seven-Eleven's 払込票). The sandbox sets none.
    pub payment_url: Option<String>,
    pub deadline_ms: i64,
    /// The institution's reference for later queries and reconciliation.
    pub connector_ref: String,
    /// Bank transfer only: the 振込先 the shopper transfers to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<TransferAccount>,
}

/// A 振込先: the account issued for one bank-transfer payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferAccount {
    /// 銀行名, e.g. 「みずほ銀行」.
    pub bank_name: String,
    /// 支店名.
    pub branch_name: String,
    /// 預金種目 (普通 / 当座 / 貯蓄).
    pub account_type: AccountType,
    /// 口座番号 (digits).
    pub account_number: String,
    /// 口座名義 (the name the shopper's bank shows for the account).
    pub account_holder: String,
}

/// Longest bank, branch or holder name we show (characters).
pub const MAX_ACCOUNT_TEXT: usize = 64;

impl TransferAccount {
    /// Names are 1 to [`MAX_ACCOUNT_TEXT`] characters without control characters, and the
    /// account number 1 to 8 digits (Japanese account numbers are 7; a processor's may be
    /// padded differently).
    pub fn is_valid(&self) -> bool {
        let text = |s: &str| {
            let n = s.chars().count();
            (1..=MAX_ACCOUNT_TEXT).contains(&n) && !s.chars().any(char::is_control)
        };
        text(&self.bank_name)
            && text(&self.branch_name)
            && text(&self.account_holder)
            && (1..=8).contains(&self.account_number.len())
            && self.account_number.bytes().all(|b| b.is_ascii_digit())
    }
}

fn digits_ok(v: &Option<String>, n: usize) -> bool {
    v.as_ref()
        .is_some_and(|s| s.len() == n && s.bytes().all(|b| b.is_ascii_digit()))
}

impl IssuedNumber {
    /// True when exactly the fields of the target's shape are set, with the right digit counts.
    pub fn has_valid_shape(&self) -> bool {
        let set = |v: &Option<String>| v.is_some();
        self.account_ok()
            && match self.target.shape() {
                NumberShape::PaymentSlip => {
                    digits_ok(&self.receipt_no, PAYMENT_SLIP_NO_DIGITS)
                        && !set(&self.customer_no)
                        && !set(&self.confirm_no)
                        && !set(&self.institution_no)
                }
                NumberShape::CustomerAndConfirm => {
                    !set(&self.receipt_no)
                        && digits_ok(&self.customer_no, CUSTOMER_NO_DIGITS)
                        && digits_ok(&self.confirm_no, CONFIRM_NO_DIGITS)
                        && !set(&self.institution_no)
                }
                NumberShape::Reception => {
                    digits_ok(&self.receipt_no, RECEPTION_NO_DIGITS)
                        && !set(&self.customer_no)
                        && !set(&self.confirm_no)
                        && !set(&self.institution_no)
                }
                NumberShape::Payeasy => {
                    !set(&self.receipt_no)
                        && digits_ok(&self.customer_no, PAYEASY_CUSTOMER_NO_DIGITS)
                        && digits_ok(&self.confirm_no, PAYEASY_CONFIRM_NO_DIGITS)
                        && digits_ok(&self.institution_no, PAYEASY_INSTITUTION_NO_DIGITS)
                }
                NumberShape::BankTransfer => self
                    .account
                    .as_ref()
                    .is_some_and(|a| a.account_number.len() == 7),
            }
    }

    /// A bank transfer carries a valid account and no number fields; any other target carries
    /// no account.
    fn account_ok(&self) -> bool {
        match self.target {
            IssueTarget::BankTransfer => {
                self.account.as_ref().is_some_and(TransferAccount::is_valid)
                    && self.receipt_no.is_none()
                    && self.customer_no.is_none()
                    && self.confirm_no.is_none()
                    && self.institution_no.is_none()
            }
            _ => self.account.is_none(),
        }
    }

    /// The relaxed check for numbers a processor issued: exactly the fields of the target's
    /// shape are set, each 1 to 32 ASCII digits (processors' numbers do not all have the
    /// institutions' usual lengths). The sandbox's own numbers keep [`Self::has_valid_shape`].
    pub fn has_processor_shape(&self) -> bool {
        let ok = |v: &Option<String>| {
            v.as_ref().is_some_and(|s| {
                (1..=32).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
            })
        };
        let set = |v: &Option<String>| v.is_some();
        let (receipt, customer, confirm, institution) = match self.target.shape() {
            NumberShape::PaymentSlip | NumberShape::Reception => (true, false, false, false),
            NumberShape::CustomerAndConfirm => (false, true, true, false),
            NumberShape::Payeasy => (false, true, true, true),
            NumberShape::BankTransfer => return self.account_ok(),
        };
        let field = |want: bool, v: &Option<String>| if want { ok(v) } else { !set(v) };
        self.account_ok()
            && field(receipt, &self.receipt_no)
            && field(customer, &self.customer_no)
            && field(confirm, &self.confirm_no)
            && field(institution, &self.institution_no)
    }

    /// (label_ja, value) pairs in the order the shopper enters them, for the number screen.
    pub fn display_fields(&self) -> Vec<(&'static str, &str)> {
        self.target
            .shape()
            .fields()
            .iter()
            .filter_map(|f| {
                let v = match f.key {
                    "receipt_no" => &self.receipt_no,
                    "customer_no" => &self.customer_no,
                    "confirm_no" => &self.confirm_no,
                    _ => &self.institution_no,
                };
                v.as_deref().map(|v| (f.label_ja, v))
            })
            .collect()
    }
}

/// Withdrawing an unpaid number (the shopper changes store or method).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancelRequest {
    /// Our payment id; with a suffix, the idempotency key of the cancel call.
    pub payment_id: String,
    /// The merchant's mode: the sandbox refuses live payments (defence in depth).
    pub mode: Mode,
    /// The institution's reference from [`IssuedNumber::connector_ref`].
    pub connector_ref: String,
}

pub use crate::connectors::error::ConnectorError;

/// Registering a reusable payment number (スマートピット リピート): one bill the customer pays
/// at any chain again and again until it is retired or `valid_until_ms` passes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepeatRequest {
    /// Our repeat number id; also the idempotency key.
    pub repeat_id: String,
    /// The merchant's mode: the sandbox refuses live merchants (defence in depth).
    pub mode: Mode,
    /// Fixed amount per payment, or `None` when it is decided at the store.
    pub amount: Option<i64>,
    pub valid_until_ms: i64,
}

/// A registered reusable number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepeatNumber {
    /// The number the customer gives at the store
    /// ([`crate::domain::repeat::NUMBER_DIGITS`] digits).
    pub number: String,
    /// The institution's reference for its payment notices.
    pub connector_ref: String,
}

/// Code of [`NumberConnector::register_repeat`] for an institution without reusable numbers.
pub const REPEAT_UNSUPPORTED: &str = "repeat_numbers_unsupported";

#[async_trait]
pub trait NumberConnector: Send + Sync {
    /// Whether the institution would take this request as made (the shopper details it needs,
    /// its amount limits), checked before anything is written so a request refused for its
    /// own sake stores nothing. No network call.
    fn precheck(&self, _req: &IssueRequest) -> Result<(), ConnectorError> {
        Ok(())
    }
    /// Whether this institution issues numbers for `target` at all (Stripe serves four
    /// chains only); the shopper is offered only those.
    fn serves(&self, _target: IssueTarget) -> bool {
        true
    }
    /// Issue a payment number for a konbini chain or Pay-easy, or a 振込先 for a bank transfer.
    /// Idempotent per `payment_id`: asked again, the institution answers with the same number.
    async fn issue(&self, req: &IssueRequest) -> Result<IssuedNumber, ConnectorError>;
    /// Events the institution knows for this number, oldest first (速報, 確報, 速報取消),
    /// for reconciling missed notifications. Apply each with
    /// `crate::domain::konbini::apply`, treating `duplicate` as already done.
    async fn query(&self, number: &IssuedNumber) -> Result<Vec<NumberAction>, ConnectorError>;
    /// Withdraw an unpaid number so it can no longer be paid. Idempotent: a number already
    /// cancelled is `Ok`; one paid meanwhile is [`ConnectorError::NotCancellable`].
    async fn cancel(&self, req: &CancelRequest) -> Result<(), ConnectorError>;
    /// Register a reusable payment number. No processor connector offers one today, so the
    /// default refuses with [`REPEAT_UNSUPPORTED`]; only the sandbox registers them.
    async fn register_repeat(&self, _req: &RepeatRequest) -> Result<RepeatNumber, ConnectorError> {
        Err(ConnectorError::InvalidRequest(REPEAT_UNSUPPORTED))
    }
}

/// Code of [`NumberConnector::cancel`] for an institution that takes no cancellations.
pub const CANCEL_UNSUPPORTED: &str = "number_cancel_unsupported";
/// Code of [`NumberConnector::cancel`] for a number the institution says is paid already.
pub const ALREADY_PAID: &str = "number_already_paid";

/// Sandbox 収納機関番号: a fixed, obviously-test value (a real one identifies the collecting company).
pub const SANDBOX_PAYEASY_INSTITUTION_NO: &str = "99999";
/// Sandbox 振込先 bank: obviously not a real bank.
pub const SANDBOX_BANK_NAME: &str = "カケハシテスト銀行";
/// Sandbox 口座名義.
pub const SANDBOX_ACCOUNT_HOLDER: &str = "カケハシテスト（サンドボックス）";

/// Sandbox issuer. Numbers are HMAC-derived from (key, target, payment id): random-
/// looking, correctly shaped, and the same for a retried issue of the same payment,
/// with no stored state — any instance, before or after a restart, gives the same
/// answer if it has the same key. The long numbers (払込票番号, お客様番号, 受付番号)
/// end in a Luhn check digit, see [`luhn_valid`] (sandbox only; real numbers differ).
///
/// Sandbox outcomes are driven by the server's sandbox control endpoint, never by
/// this connector; [`NumberConnector::query`] therefore reports nothing.
#[derive(Clone)]
pub struct SandboxNumberConnector {
    key: Vec<u8>,
}

impl std::fmt::Debug for SandboxNumberConnector {
    // The key is a secret shared by instances; keep it out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxNumberConnector")
            .finish_non_exhaustive()
    }
}

impl Default for SandboxNumberConnector {
    fn default() -> Self {
        Self::new()
    }
}

impl SandboxNumberConnector {
    /// Random key from the thread RNG: fine for one instance / tests. With several
    /// instances use [`SandboxNumberConnector::with_seed`] so retries agree.
    pub fn new() -> Self {
        let mut key = vec![0u8; 32];
        rand::thread_rng().fill_bytes(&mut key);
        Self { key }
    }

    /// Deterministic issuer (e.g. seeded from a server secret).
    pub fn with_seed(seed: &[u8]) -> Self {
        Self { key: seed.to_vec() }
    }

    /// `n` decimal digits derived from (key, label, target, payment id). Bytes are
    /// used only below 250 so every digit is equally likely.
    fn digits(&self, label: &str, target: IssueTarget, payment_id: &str, n: usize) -> String {
        let mut out = String::with_capacity(n);
        let mut counter: u32 = 0;
        while out.len() < n {
            let mut mac =
                HmacSha256::new_from_slice(&self.key).expect("HMAC accepts any key length");
            mac.update(label.as_bytes());
            mac.update(b"\0");
            mac.update(target.code().as_bytes());
            mac.update(b"\0");
            mac.update(payment_id.as_bytes());
            mac.update(&counter.to_be_bytes());
            for b in mac.finalize().into_bytes() {
                if b < 250 && out.len() < n {
                    out.push(char::from(b'0' + b % 10));
                }
            }
            counter += 1;
        }
        out
    }

    /// `n` digits whose last digit is a Luhn check digit.
    fn checked(&self, label: &str, target: IssueTarget, payment_id: &str, n: usize) -> String {
        let mut s = self.digits(label, target, payment_id, n - 1);
        s.push(luhn_check_digit(&s));
        s
    }
}

/// Luhn check digit for a string of ASCII digits.
pub fn luhn_check_digit(body: &str) -> char {
    let sum: u32 = body
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 0 {
                let x = d * 2;
                if x > 9 {
                    x - 9
                } else {
                    x
                }
            } else {
                d
            }
        })
        .sum();
    char::from(b'0' + ((10 - sum % 10) % 10) as u8)
}

/// True when `s` is all digits and its last digit is the Luhn check digit: lets the
/// sandbox control endpoint catch typos in sandbox numbers.
pub fn luhn_valid(s: &str) -> bool {
    if s.len() < 2 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let (body, last) = s.split_at(s.len() - 1);
    last.starts_with(luhn_check_digit(body))
}

#[async_trait]
impl NumberConnector for SandboxNumberConnector {
    async fn issue(&self, req: &IssueRequest) -> Result<IssuedNumber, ConnectorError> {
        if req.mode != Mode::Test {
            return Err(ConnectorError::InvalidRequest(SANDBOX_REFUSES_LIVE));
        }
        if req.payment_id.is_empty() {
            return Err(ConnectorError::InvalidRequest("payment_id_missing"));
        }
        req.target
            .validate_amount(req.amount)
            .map_err(|e| ConnectorError::InvalidRequest(e.code()))?;

        let t = req.target;
        let pid = req.payment_id.as_str();
        let mut n = IssuedNumber {
            target: t,
            receipt_no: None,
            customer_no: None,
            confirm_no: None,
            institution_no: None,
            payment_url: None,
            deadline_ms: req.deadline_ms,
            connector_ref: format!("sbxnum_{}", self.digits("ref", t, pid, 16)),
            account: None,
        };
        match t.shape() {
            NumberShape::PaymentSlip => {
                n.receipt_no = Some(self.checked("receipt", t, pid, PAYMENT_SLIP_NO_DIGITS));
            }
            NumberShape::CustomerAndConfirm => {
                n.customer_no = Some(self.checked("customer", t, pid, CUSTOMER_NO_DIGITS));
                n.confirm_no = Some(self.digits("confirm", t, pid, CONFIRM_NO_DIGITS));
            }
            NumberShape::Reception => {
                n.receipt_no = Some(self.checked("receipt", t, pid, RECEPTION_NO_DIGITS));
            }
            NumberShape::Payeasy => {
                n.institution_no = Some(SANDBOX_PAYEASY_INSTITUTION_NO.to_string());
                n.customer_no = Some(self.checked("customer", t, pid, PAYEASY_CUSTOMER_NO_DIGITS));
                n.confirm_no = Some(self.digits("confirm", t, pid, PAYEASY_CONFIRM_NO_DIGITS));
            }
            NumberShape::BankTransfer => {
                // One obviously-test account per payment (a virtual account, as processors
                // issue): the branch is derived too, so two orders never share an account.
                let branch = self.digits("branch", t, pid, 3);
                n.account = Some(TransferAccount {
                    bank_name: SANDBOX_BANK_NAME.to_owned(),
                    branch_name: format!("テスト{branch}支店"),
                    account_type: AccountType::Ordinary,
                    account_number: self.checked("account", t, pid, 7),
                    account_holder: SANDBOX_ACCOUNT_HOLDER.to_owned(),
                });
            }
        }
        Ok(n)
    }

    async fn query(&self, _number: &IssuedNumber) -> Result<Vec<NumberAction>, ConnectorError> {
        // Stateless: the sandbox institution has no record of payments. The
        // server's own stored status (set via the sandbox control endpoint) is the truth.
        Ok(Vec::new())
    }

    async fn cancel(&self, req: &CancelRequest) -> Result<(), ConnectorError> {
        if req.mode != Mode::Test {
            return Err(ConnectorError::InvalidRequest(SANDBOX_REFUSES_LIVE));
        }
        // Stateless: whether the number is still unpaid is the stored status, which the flow
        // checks (and changes conditionally) when it records the cancellation.
        Ok(())
    }

    async fn register_repeat(&self, req: &RepeatRequest) -> Result<RepeatNumber, ConnectorError> {
        if req.mode != Mode::Test {
            return Err(ConnectorError::InvalidRequest(SANDBOX_REFUSES_LIVE));
        }
        if let Some(a) = req.amount {
            validate_amount(a).map_err(|e| ConnectorError::InvalidRequest(e.code()))?;
        }
        // Any chain takes the same number: derived under a label no single-use number uses.
        let t = IssueTarget::Konbini(crate::domain::konbini::Chain::SevenEleven);
        Ok(RepeatNumber {
            number: self.checked("repeat", t, &req.repeat_id, REPEAT_NUMBER_DIGITS),
            connector_ref: format!(
                "sbxrep_{}",
                self.digits("repeat-ref", t, &req.repeat_id, 16)
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(target: IssueTarget, amount: i64) -> IssueRequest {
        IssueRequest {
            payment_id: "pay_123".into(),
            mode: Mode::Test,
            target,
            amount,
            deadline_ms: 1_000,
            shopper_name_kana: Some("ヤマダ タロウ".into()),
            shopper_phone: None,
            shopper_name: None,
            shopper_email: None,
        }
    }

    #[tokio::test]
    async fn every_target_gets_its_shape() {
        let c = SandboxNumberConnector::new();
        let mut targets: Vec<IssueTarget> = Chain::all()
            .iter()
            .map(|c| IssueTarget::Konbini(*c))
            .collect();
        targets.push(IssueTarget::Payeasy);
        targets.push(IssueTarget::BankTransfer);
        for t in targets {
            let n = c.issue(&req(t, 1000)).await.unwrap();
            assert!(n.has_valid_shape(), "{t:?}: {n:?}");
            assert_eq!(n.deadline_ms, 1_000);
            assert_eq!(n.display_fields().len(), t.shape().fields().len());
            assert_eq!(n.account.is_some(), t == IssueTarget::BankTransfer);
        }
        let bt = c
            .issue(&req(IssueTarget::BankTransfer, 1_500_000))
            .await
            .unwrap();
        let a = bt.account.as_ref().unwrap();
        assert_eq!(a.account_number.len(), 7);
        assert!(luhn_valid(&a.account_number));
        assert_eq!(a.bank_name, SANDBOX_BANK_NAME);
        // A bank transfer with a number field, or a konbini number with an account, is refused.
        let mut wrong = bt.clone();
        wrong.receipt_no = Some("1".into());
        assert!(!wrong.has_processor_shape() && !wrong.has_valid_shape());
        let mut wrong = bt.clone();
        wrong.account.as_mut().unwrap().account_number = "12-4".into();
        assert!(!wrong.has_processor_shape());
    }

    #[tokio::test]
    async fn seven_eleven_and_lawson_fields() {
        let c = SandboxNumberConnector::with_seed(b"seed");
        let n = c
            .issue(&req(IssueTarget::Konbini(Chain::SevenEleven), 500))
            .await
            .unwrap();
        let r = n.receipt_no.as_deref().unwrap();
        assert_eq!(r.len(), 13);
        assert!(luhn_valid(r));
        let n = c
            .issue(&req(IssueTarget::Konbini(Chain::Lawson), 500))
            .await
            .unwrap();
        assert_eq!(n.customer_no.as_deref().unwrap().len(), 11);
        assert_eq!(n.confirm_no.as_deref().unwrap().len(), 4);
        assert_eq!(n.display_fields()[0].0, "お客様番号");
        let n = c.issue(&req(IssueTarget::Payeasy, 999_999)).await.unwrap();
        assert_eq!(
            n.institution_no.as_deref(),
            Some(SANDBOX_PAYEASY_INSTITUTION_NO)
        );
        assert_eq!(n.display_fields()[0].0, "収納機関番号");
    }

    #[tokio::test]
    async fn stateless_and_idempotent_with_same_seed() {
        let a = SandboxNumberConnector::with_seed(b"shared");
        let b = SandboxNumberConnector::with_seed(b"shared");
        let r = req(IssueTarget::Konbini(Chain::FamilyMart), 100);
        assert_eq!(a.issue(&r).await.unwrap(), b.issue(&r).await.unwrap());
        let mut other = r.clone();
        other.payment_id = "pay_124".into();
        assert_ne!(
            a.issue(&r).await.unwrap().customer_no,
            a.issue(&other).await.unwrap().customer_no
        );
        assert!(a
            .query(&a.issue(&r).await.unwrap())
            .await
            .unwrap()
            .is_empty());
    }

    #[tokio::test]
    async fn limits_enforced() {
        let c = SandboxNumberConnector::new();
        let k = IssueTarget::Konbini(Chain::Seicomart);
        assert_eq!(
            c.issue(&req(k, 300_001)).await.unwrap_err().code(),
            "amount_too_large"
        );
        assert_eq!(
            c.issue(&req(k, 0)).await.unwrap_err().code(),
            "amount_not_positive"
        );
        assert!(c.issue(&req(IssueTarget::Payeasy, 300_001)).await.is_ok());
        assert!(c
            .issue(&req(IssueTarget::Payeasy, 1_000_000))
            .await
            .is_err());
        let mut r = req(k, 1);
        r.payment_id.clear();
        assert_eq!(c.issue(&r).await.unwrap_err().code(), "payment_id_missing");
    }

    #[tokio::test]
    async fn sandbox_registers_repeat_numbers_for_test_mode_only() {
        let c = SandboxNumberConnector::with_seed(b"seed");
        let mut r = RepeatRequest {
            repeat_id: "rpn_1".into(),
            mode: Mode::Test,
            amount: Some(1000),
            valid_until_ms: 1,
        };
        let n = c.register_repeat(&r).await.unwrap();
        assert_eq!(n.number.len(), REPEAT_NUMBER_DIGITS);
        assert!(luhn_valid(&n.number));
        assert_eq!(c.register_repeat(&r).await.unwrap(), n, "idempotent");
        r.amount = Some(300_001);
        assert_eq!(
            c.register_repeat(&r).await.unwrap_err().code(),
            "amount_too_large"
        );
        r.amount = None;
        r.mode = Mode::Live;
        assert_eq!(
            c.register_repeat(&r).await.unwrap_err().code(),
            SANDBOX_REFUSES_LIVE
        );
    }

    #[tokio::test]
    async fn sandbox_cancels_test_numbers_only() {
        let c = SandboxNumberConnector::new();
        let mut r = CancelRequest {
            payment_id: "pay_1".into(),
            mode: Mode::Test,
            connector_ref: "sbxnum_1".into(),
        };
        assert_eq!(c.cancel(&r).await, Ok(()));
        r.mode = Mode::Live;
        assert!(c.cancel(&r).await.is_err());
    }

    #[test]
    fn luhn() {
        assert_eq!(luhn_check_digit("7992739871"), '3');
        assert!(luhn_valid("79927398713"));
        assert!(!luhn_valid("79927398714"));
        assert!(!luhn_valid("7"));
        assert!(!luhn_valid("79927a98713"));
    }

    #[test]
    fn shape_check_rejects_wrong_fields() {
        let n = IssuedNumber {
            target: IssueTarget::Konbini(Chain::SevenEleven),
            receipt_no: Some("123".into()),
            customer_no: None,
            confirm_no: None,
            institution_no: None,
            payment_url: None,
            deadline_ms: 0,
            connector_ref: "x".into(),
            account: None,
        };
        assert!(!n.has_valid_shape());
        // Processor-issued numbers: any digit count, but still exactly the shape's fields.
        assert!(n.has_processor_shape());
        let mut m = n.clone();
        m.receipt_no = Some("12a".into());
        assert!(!m.has_processor_shape());
        m.receipt_no = None;
        assert!(!m.has_processor_shape());
        let mut m = n.clone();
        m.confirm_no = Some("1".into());
        assert!(!m.has_processor_shape());
    }
}
