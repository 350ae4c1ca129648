//! Wallet connector: the `WalletConnector` trait (redirect to the wallet, signed return, refund).
//! Its sandbox (a wallet page of ours: approve / decline / walk away, with signed returns) is the
//! shared redirect sandbox of `connectors::redirect`, for [`Wallet`].

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::connectors::redirect::{SandboxInstitution, SandboxRedirect};
use crate::domain::wallet::Wallet;
use crate::domain::Mode;

pub use crate::connectors::error::ConnectorError;
pub use crate::connectors::redirect::{Outcome as WalletOutcome, StartOutcome};
pub use crate::connectors::signed_return::SANDBOX_REFUSES_LIVE;

/// Start of a wallet payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartRequest {
    /// Our payment id (決済ID): the processor's idempotency key and order reference.
    pub payment_id: String,
    /// The merchant's mode: the sandbox refuses live payments (defence in depth).
    pub mode: Mode,
    pub wallet: Wallet,
    pub amount: i64,
    /// Shown on the wallet's confirmation page.
    pub item_name: String,
    /// Our return endpoint, without a query string: the connector appends signed fields.
    pub return_url: String,
}

/// A verified return. The flow still checks `payment_id`, `session_id`, `wallet` and `amount`
/// against the stored payment before applying it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalletResult {
    pub payment_id: String,
    pub session_id: String,
    pub wallet: Wallet,
    pub amount: i64,
    pub outcome: WalletOutcome,
}

/// A refund of part or all of a paid wallet payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundRequest {
    /// The payment's session at the connector (`connector_ref`).
    pub session_id: String,
    pub mode: Mode,
    pub amount: i64,
    /// Sent as the processor's idempotency key: a retry never refunds twice.
    pub idempotency_key: String,
}

/// A wallet payment as the processor holds it (the reconciliation sweep).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retrieved {
    /// Our payment id as the processor holds it.
    pub payment_id: Option<String>,
    pub wallet: Option<Wallet>,
    pub amount: i64,
    pub outcome: WalletOutcome,
    /// Set when the processor says the paid payment was refunded since.
    pub refunded: bool,
}

/// The code of a cancel asked of a connector that keeps no payments to cancel.
pub const CANCEL_UNSUPPORTED: &str = "cancel_not_supported";

#[async_trait]
pub trait WalletConnector: Send + Sync {
    /// Begin a payment: returns the wallet page to redirect to.
    async fn start(&self, req: &StartRequest) -> Result<StartOutcome, ConnectorError>;
    /// Reads the shopper's return for the payment whose session is `session_id`: the sandbox's
    /// signed result, or (a processor) the payment retrieved server-side after the signed
    /// return fields were checked.
    async fn confirm_return(
        &self,
        params: &[(String, String)],
        session_id: &str,
        now_ms: i64,
    ) -> Result<WalletResult, ConnectorError>;
    /// Refunds `amount` of a paid payment.
    async fn refund(&self, req: &RefundRequest) -> Result<(), ConnectorError>;
    /// The payment's state read server-side, for webhooks that never came (the reconciliation
    /// sweep). `None`: this connector cannot be asked (the sandbox decides only on its page).
    async fn retrieve(&self, _session_id: &str) -> Result<Option<Retrieved>, ConnectorError> {
        Ok(None)
    }
    /// Stops a payment still waiting for the shopper, so it can no longer be completed. Only
    /// asked of connectors that answer [`WalletConnector::retrieve`].
    async fn cancel(&self, _session_id: &str) -> Result<(), ConnectorError> {
        Err(ConnectorError::InvalidRequest(CANCEL_UNSUPPORTED))
    }
}

/// The three buttons of the sandbox wallet page.
pub type SandboxWalletChoice = crate::connectors::redirect::SandboxChoice;

/// Sandbox wallet: the "wallet page" is served by our own server under
/// `/sandbox/wallet/{wallet}/{session}`.
pub type SandboxWalletConnector = SandboxRedirect<Wallet>;

impl SandboxInstitution for Wallet {
    const PAGE: &'static str = "wallet";
    const TXN_PREFIX: &'static str = "sbxwallet_";
}

#[async_trait]
impl WalletConnector for SandboxRedirect<Wallet> {
    async fn start(&self, req: &StartRequest) -> Result<StartOutcome, ConnectorError> {
        self.open(
            req.mode,
            req.amount,
            &req.payment_id,
            &req.return_url,
            req.wallet,
        )
    }

    async fn confirm_return(
        &self,
        params: &[(String, String)],
        _session_id: &str,
        now_ms: i64,
    ) -> Result<WalletResult, ConnectorError> {
        let a = self.read_return(params, now_ms)?;
        Ok(WalletResult {
            payment_id: a.payment_id,
            session_id: a.session_id,
            wallet: a.institution,
            amount: a.amount,
            outcome: a.outcome,
        })
    }

    /// The sandbox moves no money: a refund of a test payment always succeeds.
    async fn refund(&self, req: &RefundRequest) -> Result<(), ConnectorError> {
        if req.mode != Mode::Test {
            return Err(ConnectorError::InvalidRequest(SANDBOX_REFUSES_LIVE));
        }
        if req.amount < 1 {
            return Err(ConnectorError::InvalidRequest("amount_not_positive"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sandbox_refuses_live() {
        let c = SandboxWalletConnector::new("https://pay.example.jp", b"wallet-secret".to_vec());
        let req = StartRequest {
            payment_id: "pay_1".into(),
            mode: Mode::Live,
            wallet: Wallet::PayPay,
            amount: 100,
            item_name: "x".into(),
            return_url: "https://pay.example.jp/r".into(),
        };
        assert!(c.start(&req).await.is_err());
        let refund = RefundRequest {
            session_id: "s".into(),
            mode: Mode::Live,
            amount: 1,
            idempotency_key: "k".into(),
        };
        assert!(c.refund(&refund).await.is_err());
    }
}
