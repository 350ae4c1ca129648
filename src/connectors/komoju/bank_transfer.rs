//! KOMOJU bank transfer (銀行振込, `payment_details[type]` = `bank_transfer`): the request's
//! shopper details and the 振込先 read from KOMOJU's answer.
//!
//! From KOMOJU's public reference: `bank_transfer` is one of the `payment_details` types of
//! `POST /api/v1/payments` (docs.komoju.com/en/api/resources/payments; ja.doc.komoju.com
//! "決済の詳細": the shopper's contact details for a bank transfer go in `payment_details`),
//! and the payment waits as `pending` / `authorized` until the transfer arrives, then becomes
//! `captured` (webhook `payment.captured`). The reference does not list the answer's account
//! fields; we read `bank_name`, `account_branch_name`, `account_type`, `account_number` and
//! `account_name` (and `instructions_url`), and refuse any answer without all of them, so a
//! shopper is never shown half an account (docs/komoju.md §1 "Check before going live").

use serde_json::{json, Value};

use crate::connectors::konbini::{ConnectorError, IssueRequest, TransferAccount};
use crate::domain::refund_request::AccountType;

use super::{split_name, NAME_REQUIRED, PHONE_REQUIRED};

/// The `payment_details` of a bank-transfer create request: like Pay-easy's, KOMOJU needs the
/// shopper's e-mail, phone and name in kanji and katakana (the name on the transfer).
pub(super) fn details(
    req: &IssueRequest,
    email: &str,
    phone: Option<String>,
) -> Result<Value, ConnectorError> {
    let phone = phone.ok_or(ConnectorError::InvalidRequest(PHONE_REQUIRED))?;
    let (family, given) = req
        .shopper_name
        .as_deref()
        .and_then(split_name)
        .ok_or(ConnectorError::InvalidRequest(NAME_REQUIRED))?;
    let (family_kana, given_kana) = req
        .shopper_name_kana
        .as_deref()
        .and_then(split_name)
        .ok_or(ConnectorError::InvalidRequest(NAME_REQUIRED))?;
    Ok(json!({
        "type": "bank_transfer",
        "email": email,
        "phone": phone,
        "family_name": family,
        "given_name": given,
        "family_name_kana": family_kana,
        "given_name_kana": given_kana,
    }))
}

/// KOMOJU's account type, in Japanese or English.
fn account_type(s: &str) -> Option<AccountType> {
    match s.trim() {
        "普通" | "普通預金" | "ordinary" | "futsu" => Some(AccountType::Ordinary),
        "当座" | "当座預金" | "current" | "checking" | "toza" => Some(AccountType::Current),
        "貯蓄" | "貯蓄預金" | "savings" => Some(AccountType::Savings),
        _ => None,
    }
}

/// The 振込先 in the answer's `payment_details`, or `None` when any part is missing or not of
/// its shape.
pub(super) fn account_of(d: &Value) -> Option<TransferAccount> {
    if d["type"].as_str() != Some("bank_transfer") {
        return None;
    }
    let text = |k: &str| d[k].as_str().map(str::trim).map(str::to_owned);
    let a = TransferAccount {
        bank_name: text("bank_name")?,
        branch_name: text("account_branch_name")?,
        account_type: account_type(d["account_type"].as_str()?)?,
        account_number: text("account_number")?,
        account_holder: text("account_name")?,
    };
    a.is_valid().then_some(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer() -> Value {
        json!({
            "type": "bank_transfer",
            "bank_name": "みずほ銀行",
            "account_branch_name": "ペイ支店",
            "account_type": "普通",
            "account_number": "1234567",
            "account_name": "カ）コモジュ",
            "instructions_url": "https://komoju.com/ja/instructions/kp_1",
        })
    }

    #[test]
    fn accounts_are_read_whole_or_refused() {
        let a = account_of(&answer()).unwrap();
        assert_eq!(a.account_type, AccountType::Ordinary);
        assert_eq!(a.branch_name, "ペイ支店");
        for (k, v) in [
            ("type", json!("pay_easy")),
            ("bank_name", Value::Null),
            ("account_branch_name", json!("")),
            ("account_type", json!("unknown")),
            ("account_number", json!("12-34567")),
            ("account_name", json!("a\u{7}b")),
        ] {
            let mut d = answer();
            d[k] = v;
            assert_eq!(account_of(&d), None, "{k}");
        }
    }

    #[test]
    fn the_request_needs_phone_and_names() {
        let mut req = IssueRequest {
            payment_id: "pay_1".into(),
            mode: crate::domain::Mode::Live,
            target: crate::connectors::konbini::IssueTarget::BankTransfer,
            amount: 120_000,
            deadline_ms: 0,
            shopper_name_kana: Some("ヤマダ タロウ".into()),
            shopper_phone: None,
            shopper_name: Some("山田 太郎".into()),
            shopper_email: Some("a@example.jp".into()),
        };
        assert_eq!(
            details(&req, "a@example.jp", None).unwrap_err().code(),
            PHONE_REQUIRED
        );
        let d = details(&req, "a@example.jp", Some("0312345678".into())).unwrap();
        assert_eq!(d["type"], "bank_transfer");
        assert_eq!(d["family_name_kana"], "ヤマダ");
        req.shopper_name = None;
        assert_eq!(
            details(&req, "a@example.jp", Some("0312345678".into()))
                .unwrap_err()
                .code(),
            NAME_REQUIRED
        );
    }
}
