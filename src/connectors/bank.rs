//! Bank-net connector: the `BankConnector` trait. Its sandbox (a bank page of ours: approve /
//! decline / walk away, with signed returns) is the shared redirect sandbox of
//! `connectors::redirect`, for [`Bank`].

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::connectors::redirect::{SandboxInstitution, SandboxRedirect};
use crate::domain::bank::{Bank, BankAction};
use crate::domain::Mode;

pub use crate::connectors::error::ConnectorError;
pub use crate::connectors::redirect::{Outcome, StartOutcome};
pub use crate::connectors::signed_return::SANDBOX_REFUSES_LIVE;

/// Start of a bank-net payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartRequest {
    /// Our payment id (決済ID).
    pub payment_id: String,
    /// The merchant's mode: the sandbox refuses live payments (defence in depth).
    pub mode: Mode,
    pub bank: Bank,
    pub amount: i64,
    /// Shown on the bank's confirmation page.
    pub item_name: String,
    /// Our return endpoint; the connector appends the signed result to it. No
    /// query string of its own: every returned parameter must be signed.
    pub return_url: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum BankOutcome {
    Paid { bank_txn_id: String },
    Declined,
}

impl BankOutcome {
    /// The domain action to apply with `crate::domain::bank::apply`.
    pub fn action(&self) -> BankAction {
        match self {
            BankOutcome::Paid { .. } => BankAction::Approve,
            BankOutcome::Declined => BankAction::Decline,
        }
    }
}

impl From<BankOutcome> for Outcome {
    fn from(o: BankOutcome) -> Self {
        match o {
            BankOutcome::Paid { bank_txn_id } => Outcome::Paid {
                txn_id: bank_txn_id,
            },
            BankOutcome::Declined => Outcome::Declined,
        }
    }
}

/// A verified return. The server must still check `payment_id`, `session_id`
/// and `amount` against its stored payment before applying it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BankResult {
    pub payment_id: String,
    pub session_id: String,
    pub bank: Bank,
    pub amount: i64,
    pub outcome: BankOutcome,
}

#[async_trait]
pub trait BankConnector: Send + Sync {
    /// Begin a payment: returns the bank page to redirect to.
    async fn start(&self, req: &StartRequest) -> Result<StartOutcome, ConnectorError>;
    /// Verify the decoded query parameters of the shopper's return and read the result.
    async fn verify_return(
        &self,
        params: &[(String, String)],
        now_ms: i64,
    ) -> Result<BankResult, ConnectorError>;
}

/// The three buttons of the sandbox bank page.
pub type SandboxBankChoice = crate::connectors::redirect::SandboxChoice;

/// Sandbox bank: the "bank page" is served by our own server under
/// `/sandbox/bank/{bank_code}/{session}`.
pub type SandboxBankConnector = SandboxRedirect<Bank>;

impl SandboxInstitution for Bank {
    const PAGE: &'static str = "bank";
    const TXN_PREFIX: &'static str = "sbxbank_";
}

#[async_trait]
impl BankConnector for SandboxRedirect<Bank> {
    async fn start(&self, req: &StartRequest) -> Result<StartOutcome, ConnectorError> {
        self.open(
            req.mode,
            req.amount,
            &req.payment_id,
            &req.return_url,
            req.bank,
        )
    }

    async fn verify_return(
        &self,
        params: &[(String, String)],
        now_ms: i64,
    ) -> Result<BankResult, ConnectorError> {
        let a = self.read_return(params, now_ms)?;
        let outcome = match a.outcome {
            Outcome::Paid { txn_id } => BankOutcome::Paid {
                bank_txn_id: txn_id,
            },
            // The sandbox always decides; anything else is a malformed return.
            Outcome::Declined | Outcome::Pending => BankOutcome::Declined,
        };
        Ok(BankResult {
            payment_id: a.payment_id,
            session_id: a.session_id,
            bank: a.institution,
            amount: a.amount,
            outcome,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn start_builds_sandbox_url() {
        let c = SandboxBankConnector::new("https://pay.example.jp", b"bank-secret".to_vec());
        let out = c
            .start(&StartRequest {
                payment_id: "pay_9".into(),
                mode: Mode::Test,
                bank: Bank::JapanPost,
                amount: 100,
                item_name: "x".into(),
                return_url: "https://pay.example.jp/return/bank".into(),
            })
            .await
            .unwrap();
        assert_eq!(
            out.redirect_url,
            format!(
                "https://pay.example.jp/sandbox/bank/9900/{}",
                out.session_id
            )
        );
    }
}
