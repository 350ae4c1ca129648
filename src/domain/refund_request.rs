//! Refund requests (返金依頼) for payments the shopper paid in cash or by bank transfer (konbini,
//! Pay-easy, online banking), which no processor can send back to a card: the shop pays the
//! refund into the shopper's bank account. The rules here are pure: which payments qualify, the
//! request's states, and the Zengin-style bank account the shopper types in.

use crate::domain::payment::PaymentStatus;
use crate::domain::Method;

/// Where a refund request stands (stored as `refund_requests.status`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefundRequestStatus {
    /// Created by staff; waiting for the shopper's bank account (口座情報待ち).
    Requested,
    /// The shopper gave the account; staff pay it out (振込待ち).
    AccountReceived,
    /// Staff transferred the money (振込済). Final.
    PaidOut,
    /// Withdrawn by staff before the payout (取消済). Final.
    Cancelled,
}

impl RefundRequestStatus {
    pub fn code(self) -> &'static str {
        match self {
            RefundRequestStatus::Requested => "requested",
            RefundRequestStatus::AccountReceived => "account_received",
            RefundRequestStatus::PaidOut => "paid_out",
            RefundRequestStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            RefundRequestStatus::Requested,
            RefundRequestStatus::AccountReceived,
            RefundRequestStatus::PaidOut,
            RefundRequestStatus::Cancelled,
        ]
        .into_iter()
        .find(|x| x.code() == s)
    }

    pub fn label_ja(self) -> &'static str {
        match self {
            RefundRequestStatus::Requested => "口座情報待ち",
            RefundRequestStatus::AccountReceived => "振込待ち",
            RefundRequestStatus::PaidOut => "振込済",
            RefundRequestStatus::Cancelled => "取消済",
        }
    }

    /// The shopper may give (or correct) the account until the money is sent.
    pub fn accepts_account(self) -> bool {
        matches!(
            self,
            RefundRequestStatus::Requested | RefundRequestStatus::AccountReceived
        )
    }

    /// Staff mark it paid once an account is known.
    pub fn can_mark_paid(self) -> bool {
        self == RefundRequestStatus::AccountReceived
    }

    /// Staff withdraw it any time before the payout.
    pub fn can_cancel(self) -> bool {
        self.accepts_account()
    }

    /// Whether its amount still counts against the payment (everything but a cancelled one).
    pub fn counts(self) -> bool {
        self != RefundRequestStatus::Cancelled
    }
}

/// Whether a payment is refunded by a refund request: konbini / Pay-easy numbers and bank
/// transfers that were paid
/// (速報, 確報 or after the deadline) and completed online-banking payments. Card and carrier
/// payments are refunded through their processor instead.
pub fn qualifies(method: Method, status: PaymentStatus) -> bool {
    use crate::domain::bank::BankStatus;
    use crate::domain::konbini::NumberStatus;
    match method {
        Method::Konbini | Method::Payeasy | Method::BankTransfer => matches!(
            status.number(),
            Some(NumberStatus::Paid | NumberStatus::Confirmed | NumberStatus::LatePaid)
        ),
        Method::Banknet => status.bank() == Some(BankStatus::Paid),
        _ => false,
    }
}

/// 預金種目 of a Zengin transfer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountType {
    /// 普通 (code 1).
    Ordinary,
    /// 当座 (code 2).
    Current,
    /// 貯蓄 (code 4).
    Savings,
}

impl AccountType {
    pub const ALL: [AccountType; 3] = [
        AccountType::Ordinary,
        AccountType::Current,
        AccountType::Savings,
    ];

    pub fn code(self) -> &'static str {
        match self {
            AccountType::Ordinary => "ordinary",
            AccountType::Current => "current",
            AccountType::Savings => "savings",
        }
    }

    pub fn label_ja(self) -> &'static str {
        match self {
            AccountType::Ordinary => "普通",
            AccountType::Current => "当座",
            AccountType::Savings => "貯蓄",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        AccountType::ALL.into_iter().find(|t| t.code() == s)
    }
}

/// A shopper's bank account for the transfer, as validated from the form.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BankAccount {
    /// 金融機関コード, 4 digits.
    pub bank_code: String,
    /// 支店コード, 3 digits.
    pub branch_code: String,
    pub account_type: AccountType,
    /// 口座番号, 7 digits.
    pub number: String,
    /// 口座名義 in katakana, as typed (full-width or half-width), spaces normalised.
    pub holder: String,
}

/// A field of the account form the shopper must correct, with the sentence to show.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    pub field: &'static str,
    pub message: &'static str,
}

/// Longest 口座名義, in characters (the Zengin record's 30 half-width positions).
pub const MAX_HOLDER: usize = 30;

/// Full-width digits become ASCII; spaces and hyphens people type into numbers are dropped.
fn digits(s: &str) -> String {
    s.chars()
        .filter(|c| !matches!(c, ' ' | '\u{3000}' | '-' | 'ー' | '－'))
        .map(|c| match c {
            '０'..='９' => char::from_u32(c as u32 - '０' as u32 + '0' as u32).unwrap_or(c),
            c => c,
        })
        .collect()
}

fn is_kana(c: char) -> bool {
    // Full-width katakana (ァ..ヶ, ヴ), the long-vowel mark, half-width katakana and marks.
    matches!(c, 'ァ'..='ヶ' | 'ー' | '\u{FF66}'..='\u{FF9F}')
}

/// Characters a Zengin name field may also hold besides katakana: spaces, digits, upper-case
/// Latin letters and （）().-/ (full-width or half-width).
fn is_name_symbol(c: char) -> bool {
    matches!(c, ' ' | '0'..='9' | 'A'..='Z' | '(' | ')' | '.' | '-' | '/'
        | '（' | '）' | '．' | '－' | '／' | '０'..='９' | 'Ａ'..='Ｚ' | '\u{FF70}')
}

impl BankAccount {
    /// Validates the form fields; every wrong field gets its sentence.
    pub fn parse(
        bank_code: &str,
        branch_code: &str,
        account_type: &str,
        number: &str,
        holder: &str,
    ) -> Result<BankAccount, Vec<FieldError>> {
        let mut errors = Vec::new();
        let bank = digits(bank_code);
        if bank.len() != 4 || !bank.bytes().all(|b| b.is_ascii_digit()) {
            errors.push(FieldError {
                field: "bank_code",
                message: "金融機関コードは4桁の数字で入力してください。",
            });
        }
        let branch = digits(branch_code);
        if branch.len() != 3 || !branch.bytes().all(|b| b.is_ascii_digit()) {
            errors.push(FieldError {
                field: "branch_code",
                message: "支店コードは3桁の数字で入力してください。",
            });
        }
        let kind = AccountType::parse(account_type.trim());
        if kind.is_none() {
            errors.push(FieldError {
                field: "account_type",
                message: "預金種目を選んでください。",
            });
        }
        let num = digits(number);
        if num.len() != 7 || !num.bytes().all(|b| b.is_ascii_digit()) {
            errors.push(FieldError {
                field: "number",
                message: "口座番号は7桁の数字で入力してください（7桁未満のときは先頭に0を付けてください）。",
            });
        }
        let name = holder
            .split([' ', '\u{3000}'])
            .filter(|w| !w.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        if name.is_empty()
            || name.chars().count() > MAX_HOLDER
            || !name.chars().any(is_kana)
            || !name.chars().all(|c| is_kana(c) || is_name_symbol(c))
        {
            errors.push(FieldError {
                field: "holder",
                message: "口座名義はカタカナ（全角または半角）30文字以内で入力してください。",
            });
        }
        match kind {
            Some(account_type) if errors.is_empty() => Ok(BankAccount {
                bank_code: bank,
                branch_code: branch,
                account_type,
                number: num,
                holder: name,
            }),
            _ => Err(errors),
        }
    }

    /// One line for staff: `0009-123 普通 1234567 ヤマダ タロウ`.
    pub fn summary_ja(&self) -> String {
        format!(
            "金融機関コード {} / 支店コード {} / {} {} / 名義 {}",
            self.bank_code,
            self.branch_code,
            self.account_type.label_ja(),
            self.number,
            self.holder
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(e: Vec<FieldError>) -> Vec<&'static str> {
        e.into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn a_valid_account_is_normalised() {
        let a = BankAccount::parse("０００９", "123", "ordinary", "012-3456", "ヤマダ　タロウ")
            .unwrap();
        assert_eq!(a.bank_code, "0009");
        assert_eq!(a.number, "0123456");
        assert_eq!(a.holder, "ヤマダ タロウ");
        let half = BankAccount::parse("0005", "001", "current", "7654321", "ﾔﾏﾀﾞ ﾀﾛｳ").unwrap();
        assert_eq!(half.account_type, AccountType::Current);
        assert!(
            BankAccount::parse("0005", "001", "savings", "7654321", "カ)ヤマダショウテン").is_ok()
        );
    }

    #[test]
    fn each_wrong_field_is_named() {
        let e = BankAccount::parse("12", "1234", "x", "123456", "山田太郎").unwrap_err();
        assert_eq!(
            fields(e),
            [
                "bank_code",
                "branch_code",
                "account_type",
                "number",
                "holder"
            ]
        );
        let e = BankAccount::parse("0009", "123", "ordinary", "12345678", "yamada").unwrap_err();
        assert_eq!(fields(e), ["number", "holder"]);
        let long = "ア".repeat(31);
        let e = BankAccount::parse("0009", "123", "ordinary", "1234567", &long).unwrap_err();
        assert_eq!(fields(e), ["holder"]);
    }

    #[test]
    fn states_move_forward_only() {
        use RefundRequestStatus::*;
        assert!(Requested.accepts_account() && AccountReceived.accepts_account());
        assert!(!PaidOut.accepts_account() && !Cancelled.accepts_account());
        assert!(!Requested.can_mark_paid() && AccountReceived.can_mark_paid());
        assert!(!PaidOut.can_cancel());
        for s in [Requested, AccountReceived, PaidOut, Cancelled] {
            assert_eq!(RefundRequestStatus::parse(s.code()), Some(s));
        }
    }

    #[test]
    fn only_paid_cash_and_bank_payments_qualify() {
        use crate::domain::bank::BankStatus;
        use crate::domain::konbini::NumberStatus;
        assert!(qualifies(Method::Konbini, NumberStatus::Paid.into()));
        assert!(qualifies(Method::Payeasy, NumberStatus::Confirmed.into()));
        assert!(!qualifies(
            Method::Konbini,
            NumberStatus::AwaitingPayment.into()
        ));
        assert!(qualifies(Method::Banknet, BankStatus::Paid.into()));
        assert!(!qualifies(Method::Card, NumberStatus::Paid.into()));
    }
}
