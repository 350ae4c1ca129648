//! Card payment domain rules: parsing of shopper card input, brand and payment-option (支払区分) rules, and the card payment state machine as pure functions.
//!
//! Nothing here does I/O or reads the clock: "today" is always passed in, so
//! the same rules can run in handlers, background jobs and tests alike.

use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::domain::lifecycle::Refusal;

// ---------------------------------------------------------------------------
// Input normalisation
// ---------------------------------------------------------------------------

/// Maps the characters Japanese shoppers commonly type through an IME onto
/// ASCII. Full-width digits (`４１１１`) and full-width/katakana dashes are
/// routine on Japanese forms, and rejecting them produces avoidable errors.
fn normalize_char(c: char) -> char {
    match c {
        '０'..='９' => char::from(b'0' + (c as u32 - '０' as u32) as u8),
        '\u{3000}' => ' ',
        '－' | 'ー' | '‐' | '‑' | '‒' | '–' | '—' | '―' | '−' => '-',
        '／' => '/',
        _ => c,
    }
}

fn normalize(input: &str) -> String {
    input.trim().chars().map(normalize_char).collect()
}

/// Luhn (mod 10) check over an ASCII digit string. Non-digits make it fail.
pub fn luhn_valid(digits: &str) -> bool {
    if digits.is_empty() {
        return false;
    }
    let mut sum = 0u32;
    for (i, b) in digits.bytes().rev().enumerate() {
        if !b.is_ascii_digit() {
            return false;
        }
        let mut d = u32::from(b - b'0');
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    sum.is_multiple_of(10)
}

// ---------------------------------------------------------------------------
// Brand
// ---------------------------------------------------------------------------

/// International card brands accepted by the checkout.
///
/// Serialised with the same stable codes as [`Brand::code`] so that JSON and
/// database values agree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Brand {
    Visa,
    Mastercard,
    Jcb,
    Amex,
    Diners,
}

impl Brand {
    pub const ALL: [Brand; 5] = [
        Brand::Visa,
        Brand::Mastercard,
        Brand::Jcb,
        Brand::Amex,
        Brand::Diners,
    ];

    /// Stable machine code, safe to store in the DB.
    pub fn code(self) -> &'static str {
        match self {
            Brand::Visa => "visa",
            Brand::Mastercard => "mastercard",
            Brand::Jcb => "jcb",
            Brand::Amex => "amex",
            Brand::Diners => "diners",
        }
    }

    pub fn from_code(code: &str) -> Option<Brand> {
        Brand::ALL.into_iter().find(|b| b.code() == code)
    }

    /// Name as printed on acceptance marks (used on pages and receipts).
    pub fn display_name(self) -> &'static str {
        match self {
            Brand::Visa => "VISA",
            Brand::Mastercard => "Mastercard",
            Brand::Jcb => "JCB",
            Brand::Amex => "American Express",
            Brand::Diners => "Diners Club",
        }
    }

    /// Security code length: Amex prints a 4-digit CID on the front, the
    /// others a 3-digit CVV2/CVC2 on the back.
    pub fn cvc_len(self) -> usize {
        match self {
            Brand::Amex => 4,
            _ => 3,
        }
    }

    /// The brand's shopper-facing name for its EMV 3-D Secure programme, shown
    /// on the authentication page so shoppers recognise what they are asked for.
    pub fn three_ds_program(self) -> &'static str {
        match self {
            Brand::Visa => "Visa Secure",
            Brand::Mastercard => "Mastercard Identity Check",
            Brand::Jcb => "J/Secure",
            Brand::Amex => "American Express SafeKey",
            Brand::Diners => "ProtectBuy",
        }
    }

    /// Whether `len` is a valid PAN length for the brand. Visa 13-digit cards
    /// are no longer issued, so only 16 and 19 are accepted.
    pub fn valid_length(self, len: usize) -> bool {
        match self {
            Brand::Visa => len == 16 || len == 19,
            Brand::Mastercard => len == 16,
            Brand::Jcb => (16..=19).contains(&len),
            Brand::Amex => len == 15,
            Brand::Diners => (14..=19).contains(&len),
        }
    }

    /// Detects the brand from the leading digits (IIN ranges). Works on a
    /// partial number too, so pages can show the brand logo while typing.
    /// Returns `None` until enough digits are present to decide.
    pub fn detect(digits: &str) -> Option<Brand> {
        let prefix = |n: usize| -> Option<u32> {
            digits.get(..n).and_then(|p| {
                if p.bytes().all(|b| b.is_ascii_digit()) {
                    p.parse().ok()
                } else {
                    None
                }
            })
        };
        if digits.starts_with('4') {
            return Some(Brand::Visa);
        }
        if let Some(p2) = prefix(2) {
            match p2 {
                51..=55 => return Some(Brand::Mastercard),
                34 | 37 => return Some(Brand::Amex),
                36 | 38 | 39 => return Some(Brand::Diners),
                _ => {}
            }
        }
        if let Some(p3) = prefix(3) {
            if (300..=305).contains(&p3) {
                return Some(Brand::Diners);
            }
        }
        if let Some(p4) = prefix(4) {
            match p4 {
                2221..=2720 => return Some(Brand::Mastercard),
                3528..=3589 => return Some(Brand::Jcb),
                3095 => return Some(Brand::Diners),
                _ => {}
            }
        }
        None
    }
}

// ---------------------------------------------------------------------------
// Errors shown to the shopper
// ---------------------------------------------------------------------------

/// Validation errors for the card form. Each has a stable `code()` (for APIs
/// and logs), a `field()` (which input to highlight) and shopper messages.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CardError {
    #[error("card number is required")]
    NumberRequired,
    #[error("card number is invalid")]
    InvalidNumber,
    #[error("card brand is not supported")]
    UnsupportedBrand,
    #[error("expiry date is invalid")]
    InvalidExpiry,
    #[error("card has expired")]
    ExpiredCard,
    #[error("security code must be {expected} digits")]
    InvalidCvc { expected: usize },
    #[error("cardholder name is invalid")]
    InvalidHolder,
    #[error("payment option is invalid")]
    InvalidOption,
    #[error("payment option is not offered by this merchant")]
    OptionNotAllowed,
    #[error("payment option is not available for {}", brand.display_name())]
    OptionNotAvailableForBrand { brand: Brand },
}

impl CardError {
    /// Stable code; never change existing values, API clients match on them.
    pub fn code(&self) -> &'static str {
        match self {
            CardError::NumberRequired => "number_required",
            CardError::InvalidNumber => "invalid_number",
            CardError::UnsupportedBrand => "unsupported_brand",
            CardError::InvalidExpiry => "invalid_expiry",
            CardError::ExpiredCard => "expired_card",
            CardError::InvalidCvc { .. } => "invalid_cvc",
            CardError::InvalidHolder => "invalid_holder",
            CardError::InvalidOption => "invalid_option",
            CardError::OptionNotAllowed => "option_not_allowed",
            CardError::OptionNotAvailableForBrand { .. } => "option_not_available_for_brand",
        }
    }

    /// Form field the error belongs to: "number", "expiry", "cvc", "holder"
    /// or "option".
    pub fn field(&self) -> &'static str {
        match self {
            CardError::NumberRequired | CardError::InvalidNumber | CardError::UnsupportedBrand => {
                "number"
            }
            CardError::InvalidExpiry | CardError::ExpiredCard => "expiry",
            CardError::InvalidCvc { .. } => "cvc",
            CardError::InvalidHolder => "holder",
            CardError::InvalidOption
            | CardError::OptionNotAllowed
            | CardError::OptionNotAvailableForBrand { .. } => "option",
        }
    }

    /// Japanese message for the shopper (polite form, as on Japanese checkouts).
    pub fn message_ja(&self) -> String {
        match self {
            CardError::NumberRequired => "カード番号を入力してください。".into(),
            CardError::InvalidNumber => {
                "カード番号に誤りがあります。ご確認のうえ、再度入力してください。".into()
            }
            CardError::UnsupportedBrand => "このカードはご利用いただけません。VISA・Mastercard・JCB・American Express・Diners Clubのカードをご利用ください。".into(),
            CardError::InvalidExpiry => "有効期限を正しく入力してください（例：12/29）。".into(),
            CardError::ExpiredCard => {
                "カードの有効期限が切れています。別のカードをご利用ください。".into()
            }
            CardError::InvalidCvc { expected } => {
                format!("セキュリティコード（{expected}桁）を正しく入力してください。")
            }
            CardError::InvalidHolder => {
                "カード名義を半角ローマ字で入力してください（例：TARO YAMADA）。".into()
            }
            CardError::InvalidOption => "お支払い回数を選択してください。".into(),
            CardError::OptionNotAllowed => {
                "選択されたお支払い方法はご利用いただけません。".into()
            }
            CardError::OptionNotAvailableForBrand { brand } => format!(
                "{}のカードでは選択されたお支払い方法をご利用いただけません。一括払いなどをお選びください。",
                brand.display_name()
            ),
        }
    }

    /// English message for the shopper.
    pub fn message_en(&self) -> String {
        match self {
            CardError::NumberRequired => "Please enter your card number.".into(),
            CardError::InvalidNumber => {
                "The card number is incorrect. Please check it and try again.".into()
            }
            CardError::UnsupportedBrand => "This card cannot be used. Please use a VISA, Mastercard, JCB, American Express or Diners Club card.".into(),
            CardError::InvalidExpiry => "Please enter a valid expiry date (e.g. 12/29).".into(),
            CardError::ExpiredCard => "This card has expired. Please use another card.".into(),
            CardError::InvalidCvc { expected } => {
                format!("Please enter the {expected}-digit security code.")
            }
            CardError::InvalidHolder => {
                "Please enter the cardholder name in Latin letters (e.g. TARO YAMADA).".into()
            }
            CardError::InvalidOption => "Please choose a payment option.".into(),
            CardError::OptionNotAllowed => "The selected payment option is not available.".into(),
            CardError::OptionNotAvailableForBrand { brand } => format!(
                "The selected payment option is not available for {} cards. Please choose lump-sum payment or another option.",
                brand.display_name()
            ),
        }
    }
}

// ---------------------------------------------------------------------------
// Card number
// ---------------------------------------------------------------------------

/// A validated primary account number (PAN).
///
/// Deliberately has no `Display`/`Serialize`, and `Debug` prints only the
/// masked form: card numbers must never end up in logs, error reports or
/// JSON by accident. Use [`CardNumber::expose_digits`] only where the full
/// number must reach the acquirer.
#[derive(Clone, PartialEq, Eq)]
pub struct CardNumber {
    digits: String,
    brand: Brand,
}

impl CardNumber {
    /// Parses shopper input. Spaces and hyphens (ASCII or full-width) are
    /// ignored; the result must be 14–19 digits, of a supported brand and
    /// length, and pass the Luhn check.
    pub fn parse(input: &str) -> Result<CardNumber, CardError> {
        let normalized = normalize(input);
        let digits: String = normalized
            .chars()
            .filter(|c| *c != ' ' && *c != '-')
            .collect();
        if digits.is_empty() {
            return Err(CardError::NumberRequired);
        }
        if !digits.bytes().all(|b| b.is_ascii_digit()) || !(14..=19).contains(&digits.len()) {
            return Err(CardError::InvalidNumber);
        }
        let brand = Brand::detect(&digits).ok_or(CardError::UnsupportedBrand)?;
        if !brand.valid_length(digits.len()) || !luhn_valid(&digits) {
            return Err(CardError::InvalidNumber);
        }
        Ok(CardNumber { digits, brand })
    }

    pub fn brand(&self) -> Brand {
        self.brand
    }

    /// First six digits (BIN/IIN), allowed to be stored under PCI DSS.
    pub fn bin6(&self) -> &str {
        &self.digits[..6]
    }

    /// Last four digits, allowed to be stored and shown on receipts.
    pub fn last4(&self) -> &str {
        &self.digits[self.digits.len() - 4..]
    }

    /// First six and last four digits with the middle masked, e.g.
    /// `411111******1111` — the most PCI DSS permits displaying.
    pub fn masked(&self) -> String {
        let hidden = self.digits.len() - 10;
        format!("{}{}{}", self.bin6(), "*".repeat(hidden), self.last4())
    }

    /// The full number, for handing to an acquirer connector only. Named
    /// loudly so every use stands out in review.
    pub fn expose_digits(&self) -> &str {
        &self.digits
    }
}

impl fmt::Debug for CardNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CardNumber({})", self.masked())
    }
}

// ---------------------------------------------------------------------------
// Expiry
// ---------------------------------------------------------------------------

/// How far ahead an expiry may lie. Cards are issued for at most ~10 years;
/// anything beyond this is a typo (e.g. "2092" for "2029").
pub const MAX_EXPIRY_YEARS_AHEAD: i32 = 20;

/// Card expiry month. A card is valid through the last day of its month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Expiry {
    year: i32,
    month: u32,
}

impl Expiry {
    /// Parses month ("1"–"12", optionally zero-padded) and year (2 digits
    /// meaning 20YY, or 4 digits). `today_year`/`today_month` are the current
    /// date in the merchant's time zone (JST), passed in to keep this pure.
    pub fn parse(
        month: &str,
        year: &str,
        today_year: i32,
        today_month: u32,
    ) -> Result<Expiry, CardError> {
        let month = normalize(month);
        let year = normalize(year);
        let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !all_digits(&month) || month.len() > 2 || !all_digits(&year) {
            return Err(CardError::InvalidExpiry);
        }
        let m: u32 = month.parse().map_err(|_| CardError::InvalidExpiry)?;
        if !(1..=12).contains(&m) {
            return Err(CardError::InvalidExpiry);
        }
        let y: i32 = match year.len() {
            2 => 2000 + year.parse::<i32>().map_err(|_| CardError::InvalidExpiry)?,
            4 => year.parse().map_err(|_| CardError::InvalidExpiry)?,
            _ => return Err(CardError::InvalidExpiry),
        };
        if y > today_year + MAX_EXPIRY_YEARS_AHEAD {
            return Err(CardError::InvalidExpiry);
        }
        let expiry = Expiry { year: y, month: m };
        if expiry.is_expired(today_year, today_month) {
            return Err(CardError::ExpiredCard);
        }
        Ok(expiry)
    }

    /// Parses the single-field form "MM/YY" (also "MMYY", "MM/YYYY",
    /// "MM / YY" and full-width input).
    pub fn parse_mmyy(input: &str, today_year: i32, today_month: u32) -> Result<Expiry, CardError> {
        let s: String = normalize(input).chars().filter(|c| *c != ' ').collect();
        let (m, y) = match s.split_once('/').or_else(|| s.split_once('-')) {
            Some((m, y)) => (m.to_string(), y.to_string()),
            // ASCII check first: slicing at byte 2 must not split a character.
            None if s.is_ascii() && (s.len() == 4 || s.len() == 6) => {
                (s[..2].to_string(), s[2..].to_string())
            }
            None => return Err(CardError::InvalidExpiry),
        };
        Expiry::parse(&m, &y, today_year, today_month)
    }

    /// Builds an expiry without the "not expired" check, e.g. when loading a
    /// stored value. Returns `None` for an impossible month.
    pub fn new(year: i32, month: u32) -> Option<Expiry> {
        (1..=12).contains(&month).then_some(Expiry { year, month })
    }

    pub fn year(&self) -> i32 {
        self.year
    }

    pub fn month(&self) -> u32 {
        self.month
    }

    /// True once the given month is after the expiry month.
    pub fn is_expired(&self, today_year: i32, today_month: u32) -> bool {
        (self.year, self.month) < (today_year, today_month)
    }
}

impl fmt::Display for Expiry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}/{:02}", self.month, self.year.rem_euclid(100))
    }
}

// ---------------------------------------------------------------------------
// Security code
// ---------------------------------------------------------------------------

/// CVV2/CVC2/CID. Must never be stored after authorization (PCI DSS), so
/// `Debug` is redacted and there is no `Display`/`Serialize`.
#[derive(Clone, PartialEq, Eq)]
pub struct SecurityCode(String);

impl SecurityCode {
    pub fn parse(input: &str, brand: Brand) -> Result<SecurityCode, CardError> {
        let s = normalize(input);
        let expected = brand.cvc_len();
        if s.len() != expected || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(CardError::InvalidCvc { expected });
        }
        Ok(SecurityCode(s))
    }

    /// The code, for handing to an acquirer connector only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecurityCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecurityCode(***)")
    }
}

// ---------------------------------------------------------------------------
// Cardholder name
// ---------------------------------------------------------------------------

/// Cardholder name as embossed: Japanese cards print the name in romaji,
/// and acquirers (and 3-D Secure) only take ASCII here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardHolder(String);

impl CardHolder {
    /// Accepts Latin letters, spaces, `.`, `-` and `'`, 2–45 characters;
    /// normalises to upper case with single spaces (as printed on cards).
    pub fn parse(input: &str) -> Result<CardHolder, CardError> {
        let s: String = normalize(input)
            .chars()
            .map(|c| match c {
                // Full-width Latin letters are common IME output.
                'Ａ'..='Ｚ' | 'ａ'..='ｚ' => {
                    char::from_u32(c as u32 - 'Ａ' as u32 + 'A' as u32).unwrap_or(c)
                }
                _ => c,
            })
            .collect();
        let s = s.split_whitespace().collect::<Vec<_>>().join(" ");
        let ok_chars = s
            .chars()
            .all(|c| c.is_ascii_alphabetic() || matches!(c, ' ' | '.' | '-' | '\''));
        if !ok_chars || !(2..=45).contains(&s.len()) || !s.chars().any(|c| c.is_ascii_alphabetic())
        {
            return Err(CardError::InvalidHolder);
        }
        Ok(CardHolder(s.to_ascii_uppercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

// ---------------------------------------------------------------------------
// Payment options (支払区分)
// ---------------------------------------------------------------------------

/// Installment counts (分割回数) offered. These are the counts Japanese
/// acquirers commonly accept; others are rejected.
pub const INSTALLMENT_COUNTS: [u8; 9] = [3, 5, 6, 10, 12, 15, 18, 20, 24];

/// How the shopper repays the card issuer (支払区分). The merchant is paid
/// the same way in every case; the option only travels to the issuer.
///
/// `Installments(n)` is only valid for `n` in [`INSTALLMENT_COUNTS`];
/// [`PaymentOption::parse`] and [`MerchantOptions::check`] enforce this.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PaymentOption {
    /// 一括払い
    Lump,
    /// 分割払い with the number of installments.
    Installments(u8),
    /// ボーナス一括払い
    BonusLump,
    /// リボ払い
    Revolving,
}

impl PaymentOption {
    /// Every valid option in display order (一括, 分割 3..24回, ボーナス, リボ).
    pub fn all() -> Vec<PaymentOption> {
        let mut v = vec![PaymentOption::Lump];
        v.extend(
            INSTALLMENT_COUNTS
                .iter()
                .map(|n| PaymentOption::Installments(*n)),
        );
        v.push(PaymentOption::BonusLump);
        v.push(PaymentOption::Revolving);
        v
    }

    /// False for `Installments(n)` with an unsupported count.
    pub fn is_valid(self) -> bool {
        match self {
            PaymentOption::Installments(n) => INSTALLMENT_COUNTS.contains(&n),
            _ => true,
        }
    }

    /// Stable code: "lump", "inst3".."inst24", "bonus", "revo".
    pub fn code(self) -> String {
        match self {
            PaymentOption::Lump => "lump".into(),
            PaymentOption::Installments(n) => format!("inst{n}"),
            PaymentOption::BonusLump => "bonus".into(),
            PaymentOption::Revolving => "revo".into(),
        }
    }

    pub fn parse(code: &str) -> Result<PaymentOption, CardError> {
        let option = match code.trim() {
            "lump" => PaymentOption::Lump,
            "bonus" => PaymentOption::BonusLump,
            "revo" => PaymentOption::Revolving,
            other => {
                let n = other
                    .strip_prefix("inst")
                    // Reject "inst03" etc. so each option has exactly one code.
                    .filter(|n| !n.starts_with('0'))
                    .and_then(|n| n.parse::<u8>().ok())
                    .ok_or(CardError::InvalidOption)?;
                PaymentOption::Installments(n)
            }
        };
        if option.is_valid() {
            Ok(option)
        } else {
            Err(CardError::InvalidOption)
        }
    }

    pub fn label_ja(self) -> String {
        match self {
            PaymentOption::Lump => "一括払い".into(),
            PaymentOption::Installments(n) => format!("分割 {n}回"),
            PaymentOption::BonusLump => "ボーナス一括払い".into(),
            PaymentOption::Revolving => "リボ払い".into(),
        }
    }

    pub fn label_en(self) -> String {
        match self {
            PaymentOption::Lump => "Lump sum".into(),
            PaymentOption::Installments(n) => format!("{n} installments"),
            PaymentOption::BonusLump => "Bonus lump sum".into(),
            PaymentOption::Revolving => "Revolving".into(),
        }
    }

    /// Position in [`PaymentOption::all`], used to keep sets in display order.
    fn order(self) -> usize {
        match self {
            PaymentOption::Lump => 0,
            PaymentOption::Installments(n) => {
                1 + INSTALLMENT_COUNTS
                    .iter()
                    .position(|c| *c == n)
                    .unwrap_or(INSTALLMENT_COUNTS.len())
            }
            PaymentOption::BonusLump => 2 + INSTALLMENT_COUNTS.len(),
            PaymentOption::Revolving => 3 + INSTALLMENT_COUNTS.len(),
        }
    }
}

/// Whether the brand supports the option at this checkout.
///
/// Rules (reflecting Japanese practice):
/// - VISA, Mastercard and JCB cards used here are overwhelmingly issued by
///   domestic issuers, which support every 支払区分 (一括, 分割, ボーナス一括,
///   リボ); we allow all of them.
/// - American Express and Diners Club: acquirers' support for 分割 on these
///   brands is inconsistent (it depends on the issuer and the acquiring
///   contract), and a rejected installment request surfaces only at
///   authorization as a confusing decline. We therefore allow 一括,
///   ボーナス一括 and リボ only, and never offer 分割 for them.
pub fn allowed_for_brand(option: PaymentOption, brand: Brand) -> bool {
    if !option.is_valid() {
        return false;
    }
    match brand {
        Brand::Visa | Brand::Mastercard | Brand::Jcb => true,
        Brand::Amex | Brand::Diners => !matches!(option, PaymentOption::Installments(_)),
    }
}

/// The set of payment options a merchant has enabled (stored as a comma
/// string such as `"lump,inst3,bonus"`). Always kept in display order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MerchantOptions(Vec<PaymentOption>);

impl Default for MerchantOptions {
    /// 一括払い only: every acquirer contract supports it, while the other
    /// options need a separate agreement with the acquirer.
    fn default() -> Self {
        MerchantOptions(vec![PaymentOption::Lump])
    }
}

impl MerchantOptions {
    /// Parses a comma-separated list of option codes. Whitespace and empty
    /// items are ignored and duplicates collapse. An unknown code or an empty
    /// list is an error: a merchant config typo should fail loudly rather
    /// than silently hide options from shoppers.
    pub fn parse(s: &str) -> Result<MerchantOptions, CardError> {
        let mut v = Vec::new();
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let o = PaymentOption::parse(item)?;
            if !v.contains(&o) {
                v.push(o);
            }
        }
        if v.is_empty() {
            return Err(CardError::InvalidOption);
        }
        Ok(MerchantOptions::from_options(v))
    }

    /// Builds a set from options; invalid installment counts are dropped.
    pub fn from_options(options: impl IntoIterator<Item = PaymentOption>) -> MerchantOptions {
        let mut v: Vec<PaymentOption> = Vec::new();
        for o in options {
            if o.is_valid() && !v.contains(&o) {
                v.push(o);
            }
        }
        v.sort_by_key(|o| o.order());
        MerchantOptions(v)
    }

    pub fn contains(&self, option: PaymentOption) -> bool {
        self.0.contains(&option)
    }

    /// Options in display order.
    pub fn options(&self) -> &[PaymentOption] {
        &self.0
    }

    /// Options to offer in the select box for a card of `brand`.
    pub fn available_for(&self, brand: Brand) -> Vec<PaymentOption> {
        self.0
            .iter()
            .copied()
            .filter(|o| allowed_for_brand(*o, brand))
            .collect()
    }

    /// Accepts the option only if it is valid, enabled by the merchant and
    /// allowed for the brand. Checked server-side because the option arrives
    /// from a form the shopper controls.
    pub fn check(&self, option: PaymentOption, brand: Brand) -> Result<(), CardError> {
        if !option.is_valid() {
            return Err(CardError::InvalidOption);
        }
        if !self.contains(option) {
            return Err(CardError::OptionNotAllowed);
        }
        if !allowed_for_brand(option, brand) {
            return Err(CardError::OptionNotAvailableForBrand { brand });
        }
        Ok(())
    }
}

impl fmt::Display for MerchantOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let codes: Vec<String> = self.0.iter().map(|o| o.code()).collect();
        f.write_str(&codes.join(","))
    }
}

// ---------------------------------------------------------------------------
// EMV 3-D Secure result
// ---------------------------------------------------------------------------

/// EMV 3DS `transStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ThreeDsStatus {
    /// Y: authenticated.
    #[serde(rename = "Y")]
    Authenticated,
    /// A: attempted (issuer/ACS not participating; proof of attempt).
    #[serde(rename = "A")]
    Attempted,
    /// C: challenge required.
    #[serde(rename = "C")]
    Challenge,
    /// N: not authenticated / failed.
    #[serde(rename = "N")]
    Failed,
    /// U: authentication could not be performed (technical problem).
    #[serde(rename = "U")]
    Unavailable,
    /// R: issuer rejected authentication and asks not to authorize.
    #[serde(rename = "R")]
    Rejected,
}

impl ThreeDsStatus {
    pub const ALL: [ThreeDsStatus; 6] = [
        ThreeDsStatus::Authenticated,
        ThreeDsStatus::Attempted,
        ThreeDsStatus::Challenge,
        ThreeDsStatus::Failed,
        ThreeDsStatus::Unavailable,
        ThreeDsStatus::Rejected,
    ];

    pub fn code(self) -> &'static str {
        match self {
            ThreeDsStatus::Authenticated => "Y",
            ThreeDsStatus::Attempted => "A",
            ThreeDsStatus::Challenge => "C",
            ThreeDsStatus::Failed => "N",
            ThreeDsStatus::Unavailable => "U",
            ThreeDsStatus::Rejected => "R",
        }
    }

    pub fn from_code(code: &str) -> Option<ThreeDsStatus> {
        ThreeDsStatus::ALL.into_iter().find(|s| s.code() == code)
    }

    /// Only Y and A may proceed to authorization. Japan's card security
    /// guidelines (クレジットカード・セキュリティガイドライン) make EMV 3DS
    /// mandatory for EC merchants from 2025, so U (unavailable) is *not*
    /// waved through: without authentication the merchant keeps the
    /// fraud liability and breaches the guideline.
    pub fn allows_authorization(self) -> bool {
        matches!(
            self,
            ThreeDsStatus::Authenticated | ThreeDsStatus::Attempted
        )
    }
}

/// Outcome of 3-D Secure for one payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreeDsResult {
    pub status: ThreeDsStatus,
    /// Electronic Commerce Indicator, e.g. "05"/"06" (Visa, JCB, Amex,
    /// Diners) or "02"/"01" (Mastercard). Passed on to authorization.
    pub eci: Option<String>,
}

impl ThreeDsResult {
    pub fn allows_authorization(&self) -> bool {
        self.status.allows_authorization()
    }
}

// ---------------------------------------------------------------------------
// Payment state machine
// ---------------------------------------------------------------------------

/// Status of a card payment, stored in the DB by [`CardStatus::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CardStatus {
    #[serde(rename = "awaiting_3ds")]
    Awaiting3ds,
    #[serde(rename = "challenge")]
    Challenge,
    #[serde(rename = "authorized")]
    Authorized,
    #[serde(rename = "captured")]
    Captured,
    #[serde(rename = "cancelled")]
    Cancelled,
    #[serde(rename = "refunded")]
    Refunded,
    #[serde(rename = "failed")]
    Failed,
    #[serde(rename = "expired")]
    Expired,
}

impl CardStatus {
    pub fn code(self) -> &'static str {
        match self {
            CardStatus::Awaiting3ds => "awaiting_3ds",
            CardStatus::Challenge => "challenge",
            CardStatus::Authorized => "authorized",
            CardStatus::Captured => "captured",
            CardStatus::Cancelled => "cancelled",
            CardStatus::Refunded => "refunded",
            CardStatus::Failed => "failed",
            CardStatus::Expired => "expired",
        }
    }

    /// Label for the merchant console.
    pub fn label_ja(self) -> &'static str {
        match self {
            CardStatus::Awaiting3ds | CardStatus::Challenge => "認証中",
            CardStatus::Authorized => "オーソリOK",
            CardStatus::Captured => "売上済",
            CardStatus::Cancelled => "取消済",
            CardStatus::Refunded => "返金済",
            CardStatus::Failed => "失敗",
            CardStatus::Expired => "期限切れ",
        }
    }

    pub fn label_en(self) -> &'static str {
        match self {
            CardStatus::Awaiting3ds | CardStatus::Challenge => "Authenticating",
            CardStatus::Authorized => "Authorized",
            CardStatus::Captured => "Captured",
            CardStatus::Cancelled => "Cancelled",
            CardStatus::Refunded => "Refunded",
            CardStatus::Failed => "Failed",
            CardStatus::Expired => "Expired",
        }
    }

    /// No action leaves these states.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            CardStatus::Cancelled | CardStatus::Refunded | CardStatus::Failed | CardStatus::Expired
        )
    }
}

crate::domain::lifecycle::impl_status!(
    CardStatus,
    [
        CardStatus::Awaiting3ds,
        CardStatus::Challenge,
        CardStatus::Authorized,
        CardStatus::Captured,
        CardStatus::Cancelled,
        CardStatus::Refunded,
        CardStatus::Failed,
        CardStatus::Expired,
    ],
    forbidden = "invalid_transition"
);

/// A card payment's state; amounts are yen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardPayment {
    pub status: CardStatus,
    /// Order amount the shopper is asked to pay.
    pub amount: i64,
    pub authorized_amount: i64,
    pub captured_amount: i64,
    /// Sum of all refunds so far.
    pub refunded_amount: i64,
}

impl CardPayment {
    /// A new payment waiting for 3-D Secure.
    pub fn new(amount: i64) -> CardPayment {
        CardPayment {
            status: CardStatus::Awaiting3ds,
            amount,
            authorized_amount: 0,
            captured_amount: 0,
            refunded_amount: 0,
        }
    }

    /// Amount still refundable (captured minus refunded).
    pub fn refundable(&self) -> i64 {
        if self.status == CardStatus::Captured {
            self.captured_amount - self.refunded_amount
        } else {
            0
        }
    }
}

/// Events that move a card payment between states.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CardAction {
    /// The issuer asked for a challenge: awaiting_3ds → challenge.
    ChallengeRequired,
    /// 3-D Secure succeeded. There is no separate "authenticated" status —
    /// the server authorizes right after — so this only confirms the payment
    /// is still in a 認証中 state (awaiting_3ds/challenge) and leaves it there.
    Authenticated,
    /// The acquirer approved authorization (オーソリ). Carries the 3DS
    /// outcome so authorization without successful authentication (Y/A)
    /// cannot be recorded: awaiting_3ds/challenge → authorized.
    Authorized {
        amount: i64,
        three_ds: ThreeDsResult,
    },
    /// 売上確定 (capture): authorized → captured, 0 < amount ≤ authorized.
    Capture { amount: i64 },
    /// 取消 before or after capture (before any refund): → cancelled.
    Cancel,
    /// 返金: only from captured; fully refunded → refunded, otherwise stays
    /// captured with the refunded total increased.
    Refund { amount: i64 },
    /// The authorization lapsed without capture: authorized → expired.
    Lapse,
    /// 3DS failed, was abandoned or authorization was declined:
    /// awaiting_3ds/challenge → failed.
    Fail,
}

impl CardAction {
    /// Stable name for logs and error messages.
    pub fn name(&self) -> &'static str {
        match self {
            CardAction::ChallengeRequired => "challenge_required",
            CardAction::Authenticated => "authenticated",
            CardAction::Authorized { .. } => "authorized",
            CardAction::Capture { .. } => "capture",
            CardAction::Cancel => "cancel",
            CardAction::Refund { .. } => "refund",
            CardAction::Lapse => "lapse",
            CardAction::Fail => "fail",
        }
    }
}

/// Why [`apply`] refused an action (the shared shape; an impossible action is
/// `invalid_transition`, as the card actions API has always answered).
pub type TransitionError = crate::domain::lifecycle::TransitionError<CardStatus>;

/// Applies an action, returning the new state or why it is not allowed.
/// The status check comes first, so a wrong-state action always reports
/// `invalid_transition` whatever its amount.
pub fn apply(p: &CardPayment, a: &CardAction) -> Result<CardPayment, TransitionError> {
    use CardStatus as S;
    let invalid = || TransitionError::Forbidden {
        from: p.status,
        action: a.name(),
    };
    let in_3ds = matches!(p.status, S::Awaiting3ds | S::Challenge);
    let mut next = p.clone();
    match a {
        CardAction::ChallengeRequired => {
            if p.status != S::Awaiting3ds {
                return Err(invalid());
            }
            next.status = S::Challenge;
        }
        CardAction::Authenticated => {
            if !in_3ds {
                return Err(invalid());
            }
        }
        CardAction::Authorized { amount, three_ds } => {
            if !in_3ds {
                return Err(invalid());
            }
            if !three_ds.allows_authorization() {
                return Err(TransitionError::Refused(Refusal::AuthenticationRequired));
            }
            // Partial authorization is tolerated, over-authorization is not.
            if *amount <= 0 || *amount > p.amount {
                return Err(TransitionError::Refused(Refusal::InvalidAmount));
            }
            next.status = S::Authorized;
            next.authorized_amount = *amount;
        }
        CardAction::Capture { amount } => {
            if p.status != S::Authorized {
                return Err(invalid());
            }
            if *amount <= 0 {
                return Err(TransitionError::Refused(Refusal::InvalidAmount));
            }
            if *amount > p.authorized_amount {
                return Err(TransitionError::Refused(Refusal::AmountExceedsAuthorized));
            }
            next.status = S::Captured;
            next.captured_amount = *amount;
        }
        CardAction::Cancel => {
            // After a partial refund the remaining balance must be refunded,
            // not cancelled: a cancel would void money already returned.
            let cancellable =
                p.status == S::Authorized || (p.status == S::Captured && p.refunded_amount == 0);
            if !cancellable {
                return Err(invalid());
            }
            next.status = S::Cancelled;
        }
        CardAction::Refund { amount } => {
            if p.status != S::Captured {
                return Err(invalid());
            }
            if *amount <= 0 {
                return Err(TransitionError::Refused(Refusal::InvalidAmount));
            }
            let total = p.refunded_amount + *amount;
            if total > p.captured_amount {
                return Err(TransitionError::Refused(Refusal::AmountExceedsCaptured));
            }
            next.refunded_amount = total;
            if total == p.captured_amount {
                next.status = S::Refunded;
            }
        }
        CardAction::Lapse => {
            if p.status != S::Authorized {
                return Err(invalid());
            }
            next.status = S::Expired;
        }
        CardAction::Fail => {
            if !in_3ds {
                return Err(invalid());
            }
            next.status = S::Failed;
        }
    }
    Ok(next)
}

/// Actions that are valid from `status` for some amount — e.g. to decide
/// which buttons the console shows.
pub fn allowed_actions(status: CardStatus) -> &'static [&'static str] {
    match status {
        CardStatus::Awaiting3ds => &["challenge_required", "authenticated", "authorized", "fail"],
        CardStatus::Challenge => &["authenticated", "authorized", "fail"],
        CardStatus::Authorized => &["capture", "cancel", "lapse"],
        // Cancel is only valid while nothing has been refunded yet.
        CardStatus::Captured => &["cancel", "refund"],
        _ => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::lifecycle::Status;

    // ---- card number ----

    #[test]
    fn luhn() {
        assert!(luhn_valid("4111111111111111"));
        assert!(!luhn_valid("4111111111111112"));
        assert!(!luhn_valid(""));
        assert!(!luhn_valid("41a1"));
    }

    #[test]
    fn parses_brands() {
        let cases = [
            ("4111 1111 1111 1111", Brand::Visa),
            ("4111-1111-1111-1111", Brand::Visa),
            ("4000000000000000006", Brand::Visa),
            ("5555555555554444", Brand::Mastercard),
            ("2221000000000009", Brand::Mastercard),
            ("2720990000000007", Brand::Mastercard),
            ("3530111333300000", Brand::Jcb),
            ("3589000000000003", Brand::Jcb),
            ("378282246310005", Brand::Amex),
            ("340000000000009", Brand::Amex),
            ("36227206271667", Brand::Diners),
            ("30569309025904", Brand::Diners),
            ("3095000000000000", Brand::Diners),
            ("38520000023237", Brand::Diners),
        ];
        for (n, b) in cases {
            let c = CardNumber::parse(n).unwrap_or_else(|e| panic!("{n}: {e}"));
            assert_eq!(c.brand(), b, "{n}");
        }
    }

    #[test]
    fn full_width_input() {
        let c = CardNumber::parse("４１１１　１１１１－１１１１ー１１１１").unwrap();
        assert_eq!(c.expose_digits(), "4111111111111111");
    }

    #[test]
    fn number_errors() {
        assert_eq!(CardNumber::parse(" "), Err(CardError::NumberRequired));
        assert_eq!(
            CardNumber::parse("4111 1111 1111 111a"),
            Err(CardError::InvalidNumber)
        );
        // Luhn failure.
        assert_eq!(
            CardNumber::parse("4111111111111112"),
            Err(CardError::InvalidNumber)
        );
        // Too short overall (13-digit Visa).
        assert_eq!(
            CardNumber::parse("4222222222222"),
            Err(CardError::InvalidNumber)
        );
        // Wrong length for brand: 15-digit Visa, 16-digit Amex.
        assert_eq!(
            CardNumber::parse("411111111111116"),
            Err(CardError::InvalidNumber)
        );
        assert_eq!(
            CardNumber::parse("3782822463100052"),
            Err(CardError::InvalidNumber)
        );
        // UnionPay (62) and Discover (6011) are not accepted.
        assert_eq!(
            CardNumber::parse("6200000000000005"),
            Err(CardError::UnsupportedBrand)
        );
        assert_eq!(
            CardNumber::parse("6011111111111117"),
            Err(CardError::UnsupportedBrand)
        );
        // Outside JCB/Mastercard ranges.
        assert_eq!(
            CardNumber::parse("3527000000000008"),
            Err(CardError::UnsupportedBrand)
        );
        assert_eq!(
            CardNumber::parse("2220990000000002"),
            Err(CardError::UnsupportedBrand)
        );
    }

    #[test]
    fn masking_and_debug() {
        let c = CardNumber::parse("4111111111111111").unwrap();
        assert_eq!(c.bin6(), "411111");
        assert_eq!(c.last4(), "1111");
        assert_eq!(c.masked(), "411111******1111");
        let dbg = format!("{c:?}");
        assert_eq!(dbg, "CardNumber(411111******1111)");
        assert!(!dbg.contains("4111111111111111"));
        let diners = CardNumber::parse("36227206271667").unwrap();
        assert_eq!(diners.masked(), "362272****1667");
        let amex = CardNumber::parse("378282246310005").unwrap();
        assert_eq!(amex.masked(), "378282*****0005");
    }

    #[test]
    fn brand_codes_roundtrip() {
        for b in Brand::ALL {
            assert_eq!(Brand::from_code(b.code()), Some(b));
        }
        assert_eq!(Brand::from_code("discover"), None);
        assert_eq!(Brand::Amex.cvc_len(), 4);
        assert_eq!(Brand::Jcb.cvc_len(), 3);
        assert_eq!(Brand::Amex.display_name(), "American Express");
        assert_eq!(Brand::Diners.display_name(), "Diners Club");
        assert_eq!(Brand::detect("4"), Some(Brand::Visa));
        assert_eq!(Brand::detect("3"), None);
        assert_eq!(Brand::detect("35"), None);
        assert_eq!(Brand::detect("3540"), Some(Brand::Jcb));
    }

    // ---- expiry ----

    #[test]
    fn expiry_parse() {
        let e = Expiry::parse("12", "29", 2025, 6).unwrap();
        assert_eq!((e.year(), e.month()), (2029, 12));
        assert_eq!(e.to_string(), "12/29");
        let e = Expiry::parse("3", "2030", 2025, 6).unwrap();
        assert_eq!(e.to_string(), "03/30");
        // Valid through the end of the current month.
        assert!(Expiry::parse("06", "25", 2025, 6).is_ok());
        assert_eq!(
            Expiry::parse("05", "25", 2025, 6),
            Err(CardError::ExpiredCard)
        );
        assert_eq!(
            Expiry::parse("12", "24", 2025, 1),
            Err(CardError::ExpiredCard)
        );
        for (m, y) in [
            ("0", "29"),
            ("13", "29"),
            ("ab", "29"),
            ("12", "2"),
            ("12", "029"),
            ("12", ""),
            ("123", "29"),
            ("12", "2099"),
        ] {
            assert_eq!(
                Expiry::parse(m, y, 2025, 6),
                Err(CardError::InvalidExpiry),
                "{m}/{y}"
            );
        }
    }

    #[test]
    fn expiry_mmyy() {
        for s in ["12/29", "1229", "12/2029", "12 / 29", "１２／２９", "12-29"] {
            let e = Expiry::parse_mmyy(s, 2025, 6).unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(e.to_string(), "12/29");
        }
        assert_eq!(
            Expiry::parse_mmyy("1/1/29", 2025, 6),
            Err(CardError::InvalidExpiry)
        );
        // Multi-byte garbage must be rejected, not panic.
        for s in ["ああ", "éé/29", "12/ああ", "1あ29"] {
            assert_eq!(
                Expiry::parse_mmyy(s, 2025, 6),
                Err(CardError::InvalidExpiry),
                "{s}"
            );
        }
        assert_eq!(
            Expiry::parse_mmyy("129", 2025, 6),
            Err(CardError::InvalidExpiry)
        );
        assert_eq!(
            Expiry::parse_mmyy("01/25", 2025, 6),
            Err(CardError::ExpiredCard)
        );
    }

    // ---- cvc / holder ----

    #[test]
    fn security_code() {
        assert!(SecurityCode::parse("123", Brand::Visa).is_ok());
        assert!(SecurityCode::parse("１２３", Brand::Jcb).is_ok());
        assert_eq!(
            SecurityCode::parse("1234", Brand::Visa),
            Err(CardError::InvalidCvc { expected: 3 })
        );
        assert_eq!(
            SecurityCode::parse("123", Brand::Amex),
            Err(CardError::InvalidCvc { expected: 4 })
        );
        assert!(SecurityCode::parse("1234", Brand::Amex).is_ok());
        assert!(SecurityCode::parse("12a", Brand::Visa).is_err());
        let c = SecurityCode::parse("987", Brand::Visa).unwrap();
        assert_eq!(c.expose(), "987");
        assert!(!format!("{c:?}").contains("987"));
    }

    #[test]
    fn holder() {
        let h = CardHolder::parse("  taro   yamada ").unwrap();
        assert_eq!(h.as_str(), "TARO YAMADA");
        assert_eq!(
            CardHolder::parse("ＴＡＲＯ ＹＡＭＡＤＡ").unwrap().as_str(),
            "TARO YAMADA"
        );
        assert_eq!(CardHolder::parse("山田太郎"), Err(CardError::InvalidHolder));
        assert_eq!(CardHolder::parse("A"), Err(CardError::InvalidHolder));
        assert_eq!(CardHolder::parse("--"), Err(CardError::InvalidHolder));
    }

    #[test]
    fn error_metadata() {
        let all = [
            CardError::NumberRequired,
            CardError::InvalidNumber,
            CardError::UnsupportedBrand,
            CardError::InvalidExpiry,
            CardError::ExpiredCard,
            CardError::InvalidCvc { expected: 3 },
            CardError::InvalidHolder,
            CardError::InvalidOption,
            CardError::OptionNotAllowed,
            CardError::OptionNotAvailableForBrand { brand: Brand::Amex },
        ];
        let mut codes = std::collections::HashSet::new();
        for e in &all {
            assert!(codes.insert(e.code()), "duplicate code {}", e.code());
            assert!(["number", "expiry", "cvc", "holder", "option"].contains(&e.field()));
            assert!(!e.message_ja().is_empty());
            assert!(!e.message_en().is_empty());
        }
        assert_eq!(CardError::ExpiredCard.field(), "expiry");
        assert!(CardError::InvalidCvc { expected: 4 }
            .message_ja()
            .contains("4桁"));
    }

    // ---- payment options ----

    #[test]
    fn option_codes_roundtrip() {
        let all = PaymentOption::all();
        assert_eq!(all.len(), 12);
        for o in &all {
            assert_eq!(PaymentOption::parse(&o.code()), Ok(*o));
        }
        assert_eq!(PaymentOption::Installments(3).code(), "inst3");
        assert_eq!(PaymentOption::Installments(24).code(), "inst24");
        for bad in ["inst7", "inst03", "inst", "inst-3", "LUMP", "", "instx"] {
            assert_eq!(
                PaymentOption::parse(bad),
                Err(CardError::InvalidOption),
                "{bad}"
            );
        }
        assert_eq!(PaymentOption::Lump.label_ja(), "一括払い");
        assert_eq!(PaymentOption::Installments(3).label_ja(), "分割 3回");
        assert_eq!(PaymentOption::BonusLump.label_ja(), "ボーナス一括払い");
        assert_eq!(PaymentOption::Revolving.label_ja(), "リボ払い");
        assert_eq!(
            PaymentOption::Installments(12).label_en(),
            "12 installments"
        );
    }

    #[test]
    fn brand_rules() {
        for o in PaymentOption::all() {
            for b in [Brand::Visa, Brand::Mastercard, Brand::Jcb] {
                assert!(allowed_for_brand(o, b));
            }
            let inst = matches!(o, PaymentOption::Installments(_));
            for b in [Brand::Amex, Brand::Diners] {
                assert_eq!(allowed_for_brand(o, b), !inst, "{o:?} {b:?}");
            }
        }
        assert!(!allowed_for_brand(
            PaymentOption::Installments(7),
            Brand::Visa
        ));
    }

    #[test]
    fn merchant_options() {
        let m = MerchantOptions::parse(" bonus, lump,inst3,,inst3 ").unwrap();
        assert_eq!(m.to_string(), "lump,inst3,bonus");
        assert!(m.contains(PaymentOption::Lump));
        assert!(!m.contains(PaymentOption::Revolving));
        assert_eq!(MerchantOptions::parse(""), Err(CardError::InvalidOption));
        assert_eq!(
            MerchantOptions::parse("lump,inst7"),
            Err(CardError::InvalidOption)
        );
        assert_eq!(MerchantOptions::default().to_string(), "lump");
        let full = MerchantOptions::from_options(PaymentOption::all());
        assert_eq!(
            full.to_string(),
            "lump,inst3,inst5,inst6,inst10,inst12,inst15,inst18,inst20,inst24,bonus,revo"
        );
        assert_eq!(MerchantOptions::parse(&full.to_string()), Ok(full.clone()));

        assert_eq!(m.check(PaymentOption::Lump, Brand::Amex), Ok(()));
        assert_eq!(m.check(PaymentOption::Installments(3), Brand::Jcb), Ok(()));
        assert_eq!(
            m.check(PaymentOption::Revolving, Brand::Visa),
            Err(CardError::OptionNotAllowed)
        );
        assert_eq!(
            m.check(PaymentOption::Installments(3), Brand::Diners),
            Err(CardError::OptionNotAvailableForBrand {
                brand: Brand::Diners
            })
        );
        assert_eq!(
            m.check(PaymentOption::Installments(4), Brand::Visa),
            Err(CardError::InvalidOption)
        );
        assert_eq!(
            m.available_for(Brand::Amex),
            vec![PaymentOption::Lump, PaymentOption::BonusLump]
        );
    }

    // ---- 3DS ----

    #[test]
    fn three_ds_codes() {
        for s in ThreeDsStatus::ALL {
            assert_eq!(ThreeDsStatus::from_code(s.code()), Some(s));
        }
        let ok: Vec<_> = ThreeDsStatus::ALL
            .into_iter()
            .filter(|s| s.allows_authorization())
            .map(|s| s.code())
            .collect();
        assert_eq!(ok, ["Y", "A"]);
    }

    // ---- state machine ----

    #[test]
    fn status_codes() {
        for s in <CardStatus as Status>::ALL.iter().copied() {
            assert_eq!(CardStatus::parse(s.code()), Some(s));
        }
        assert_eq!(CardStatus::parse("AUTHORIZED"), None);
        assert_eq!(CardStatus::Awaiting3ds.label_ja(), "認証中");
        assert_eq!(CardStatus::Challenge.label_ja(), "認証中");
        assert_eq!(CardStatus::Authorized.label_ja(), "オーソリOK");
        assert_eq!(CardStatus::Captured.label_ja(), "売上済");
        assert_eq!(CardStatus::Cancelled.label_ja(), "取消済");
        assert_eq!(CardStatus::Refunded.label_ja(), "返金済");
        assert_eq!(CardStatus::Failed.label_ja(), "失敗");
        assert_eq!(CardStatus::Expired.label_ja(), "期限切れ");
    }

    fn y() -> ThreeDsResult {
        ThreeDsResult {
            status: ThreeDsStatus::Authenticated,
            eci: Some("05".into()),
        }
    }

    /// A representative payment in each status: order 10,000 yen,
    /// authorized 10,000, captured 8,000.
    fn payment_in(status: CardStatus) -> CardPayment {
        let mut p = CardPayment::new(10_000);
        p.status = status;
        if matches!(
            status,
            CardStatus::Authorized
                | CardStatus::Captured
                | CardStatus::Cancelled
                | CardStatus::Refunded
                | CardStatus::Expired
        ) {
            p.authorized_amount = 10_000;
        }
        if matches!(status, CardStatus::Captured | CardStatus::Refunded) {
            p.captured_amount = 8_000;
        }
        if status == CardStatus::Refunded {
            p.refunded_amount = 8_000;
        }
        p
    }

    fn actions() -> Vec<CardAction> {
        vec![
            CardAction::ChallengeRequired,
            CardAction::Authenticated,
            CardAction::Authorized {
                amount: 10_000,
                three_ds: y(),
            },
            CardAction::Capture { amount: 8_000 },
            CardAction::Cancel,
            CardAction::Refund { amount: 3_000 },
            CardAction::Lapse,
            CardAction::Fail,
        ]
    }

    /// Expected resulting status for every (status, action) pair with valid
    /// amounts; `None` = `invalid_transition`.
    fn expected(status: CardStatus, action: &str) -> Option<CardStatus> {
        use CardStatus as S;
        match (status, action) {
            (S::Awaiting3ds, "challenge_required") => Some(S::Challenge),
            (S::Awaiting3ds | S::Challenge, "authenticated") => Some(status),
            (S::Awaiting3ds | S::Challenge, "authorized") => Some(S::Authorized),
            (S::Awaiting3ds | S::Challenge, "fail") => Some(S::Failed),
            (S::Authorized, "capture") => Some(S::Captured),
            (S::Authorized | S::Captured, "cancel") => Some(S::Cancelled),
            (S::Authorized, "lapse") => Some(S::Expired),
            // Partial refund (3,000 of 8,000) keeps it captured.
            (S::Captured, "refund") => Some(S::Captured),
            _ => None,
        }
    }

    #[test]
    fn transition_table_all_pairs() {
        let mut allowed = 0;
        for status in <CardStatus as Status>::ALL.iter().copied() {
            let p = payment_in(status);
            for a in actions() {
                let got = apply(&p, &a);
                match expected(status, a.name()) {
                    Some(to) => {
                        allowed += 1;
                        let next = got.unwrap_or_else(|e| {
                            panic!("{} + {} should be allowed: {e}", status.code(), a.name())
                        });
                        assert_eq!(next.status, to, "{} + {}", status.code(), a.name());
                        assert_eq!(next.amount, p.amount);
                        assert!(
                            allowed_actions(status).contains(&a.name()),
                            "allowed_actions({}) lacks {}",
                            status.code(),
                            a.name()
                        );
                    }
                    None => {
                        let e = got.expect_err(&format!(
                            "{} + {} should be rejected",
                            status.code(),
                            a.name()
                        ));
                        assert_eq!(e.code(), "invalid_transition");
                        assert!(!allowed_actions(status).contains(&a.name()));
                    }
                }
            }
        }
        assert_eq!(allowed, 12);
        for s in <CardStatus as Status>::ALL.iter().copied() {
            assert_eq!(s.is_final(), allowed_actions(s).is_empty());
        }
    }

    #[test]
    fn amounts_recorded() {
        let p = CardPayment::new(10_000);
        let p = apply(&p, &CardAction::ChallengeRequired).unwrap();
        let p = apply(&p, &CardAction::Authenticated).unwrap();
        assert_eq!(p.status, CardStatus::Challenge);
        let p = apply(
            &p,
            &CardAction::Authorized {
                amount: 10_000,
                three_ds: y(),
            },
        )
        .unwrap();
        assert_eq!(p.authorized_amount, 10_000);
        let p = apply(&p, &CardAction::Capture { amount: 9_000 }).unwrap();
        assert_eq!((p.status, p.captured_amount), (CardStatus::Captured, 9_000));
        assert_eq!(p.refundable(), 9_000);
        let p = apply(&p, &CardAction::Refund { amount: 4_000 }).unwrap();
        assert_eq!((p.status, p.refunded_amount), (CardStatus::Captured, 4_000));
        assert_eq!(p.refundable(), 5_000);
        // Cancel is no longer possible once anything was refunded.
        assert_eq!(
            apply(&p, &CardAction::Cancel).unwrap_err().code(),
            "invalid_transition"
        );
        assert_eq!(
            apply(&p, &CardAction::Refund { amount: 5_001 }),
            Err(TransitionError::Refused(Refusal::AmountExceedsCaptured))
        );
        let p = apply(&p, &CardAction::Refund { amount: 5_000 }).unwrap();
        assert_eq!((p.status, p.refunded_amount), (CardStatus::Refunded, 9_000));
        assert_eq!(p.refundable(), 0);
    }

    #[test]
    fn amount_errors() {
        let auth = payment_in(CardStatus::Authorized);
        assert_eq!(
            apply(&auth, &CardAction::Capture { amount: 10_001 }),
            Err(TransitionError::Refused(Refusal::AmountExceedsAuthorized))
        );
        assert_eq!(
            apply(&auth, &CardAction::Capture { amount: 0 }),
            Err(TransitionError::Refused(Refusal::InvalidAmount))
        );
        assert_eq!(
            apply(&auth, &CardAction::Capture { amount: -1 }),
            Err(TransitionError::Refused(Refusal::InvalidAmount))
        );
        assert!(apply(&auth, &CardAction::Capture { amount: 10_000 }).is_ok());

        let cap = payment_in(CardStatus::Captured);
        assert_eq!(
            apply(&cap, &CardAction::Refund { amount: 0 }),
            Err(TransitionError::Refused(Refusal::InvalidAmount))
        );
        assert_eq!(
            apply(&cap, &CardAction::Refund { amount: 8_001 }),
            Err(TransitionError::Refused(Refusal::AmountExceedsCaptured))
        );
        assert_eq!(
            apply(&cap, &CardAction::Refund { amount: 8_000 })
                .unwrap()
                .status,
            CardStatus::Refunded
        );

        let new = CardPayment::new(10_000);
        for amount in [0, -5, 10_001] {
            assert_eq!(
                apply(
                    &new,
                    &CardAction::Authorized {
                        amount,
                        three_ds: y()
                    }
                ),
                Err(TransitionError::Refused(Refusal::InvalidAmount))
            );
        }
        // Wrong state wins over a bad amount.
        assert_eq!(
            apply(&new, &CardAction::Capture { amount: -1 })
                .unwrap_err()
                .code(),
            "invalid_transition"
        );
    }

    #[test]
    fn authorization_requires_successful_3ds() {
        let new = CardPayment::new(5_000);
        for s in ThreeDsStatus::ALL {
            let r = apply(
                &new,
                &CardAction::Authorized {
                    amount: 5_000,
                    three_ds: ThreeDsResult {
                        status: s,
                        eci: None,
                    },
                },
            );
            if s.allows_authorization() {
                assert_eq!(r.unwrap().status, CardStatus::Authorized);
            } else {
                assert_eq!(
                    r,
                    Err(TransitionError::Refused(Refusal::AuthenticationRequired)),
                    "{s:?}"
                );
                assert_eq!(
                    TransitionError::Refused(Refusal::AuthenticationRequired).code(),
                    "authentication_required"
                );
            }
        }
    }

    #[test]
    fn transition_error_codes() {
        let e = TransitionError::Forbidden {
            from: CardStatus::Failed,
            action: "capture",
        };
        assert_eq!(e.code(), "invalid_transition");
        assert_eq!(e.to_string(), "capture is not allowed from status failed");
        assert_eq!(
            TransitionError::Refused(Refusal::AmountExceedsAuthorized).code(),
            "amount_exceeds_authorized"
        );
        assert_eq!(
            TransitionError::Refused(Refusal::AmountExceedsCaptured).code(),
            "amount_exceeds_captured"
        );
        assert_eq!(
            TransitionError::Refused(Refusal::InvalidAmount).code(),
            "invalid_amount"
        );
    }
}
