//! What the one-step redirect methods (bank net, wallets) have in common in the domain: an
//! institution the shopper is sent to (a bank, a wallet brand) and the steps that move a waiting
//! payment (the institution approves or declines, or nobody answers in time). Each method keeps
//! its own status machine; these steps map onto its actions.

use crate::domain::bank::{Bank, BankAction};
use crate::domain::wallet::{Wallet, WalletAction};

/// A bank or wallet brand: stored as `payments.institution` by its code.
pub trait Institution: Copy + Eq + Send + Sync + 'static {
    fn code(self) -> &'static str;
    fn parse(code: &str) -> Option<Self>;
    fn name_ja(self) -> &'static str;
    fn name_en(self) -> &'static str;
}

impl Institution for Bank {
    fn code(self) -> &'static str {
        Bank::code(self)
    }
    fn parse(code: &str) -> Option<Self> {
        Bank::parse(code)
    }
    fn name_ja(self) -> &'static str {
        Bank::name_ja(self)
    }
    fn name_en(self) -> &'static str {
        Bank::name_en(self)
    }
}

impl Institution for Wallet {
    fn code(self) -> &'static str {
        Wallet::code(self)
    }
    fn parse(code: &str) -> Option<Self> {
        Wallet::parse(code)
    }
    fn name_ja(self) -> &'static str {
        Wallet::name_ja(self)
    }
    fn name_en(self) -> &'static str {
        Wallet::name_en(self)
    }
}

/// A step of a waiting redirect payment, in every method's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The institution took the money (verified return, processor webhook or retrieval).
    Approve,
    /// The institution refused, or the shopper cancelled on its page.
    Decline,
    /// Background job; the method's machine allows it only once its timeout has passed.
    TimeOut { now_ms: i64 },
}

impl From<Step> for BankAction {
    fn from(s: Step) -> Self {
        match s {
            Step::Approve => BankAction::Approve,
            Step::Decline => BankAction::Decline,
            Step::TimeOut { now_ms } => BankAction::TimeOut { now_ms },
        }
    }
}

impl From<Step> for WalletAction {
    fn from(s: Step) -> Self {
        match s {
            Step::Approve => WalletAction::Approve,
            Step::Decline => WalletAction::Decline,
            Step::TimeOut { now_ms } => WalletAction::TimeOut { now_ms },
        }
    }
}
