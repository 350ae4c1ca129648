//! Wallet connector: the `WalletConnector` trait (redirect to the wallet, signed return, refund)
//! and its sandbox wallet page (approve / decline / walk away) with signed returns.
//!
//! Signing and return verification are the shared helpers of `connectors::signed_return`, as
//! for bank net and carrier billing: a return URL is typed by the shopper's browser, so every
//! field in it is HMAC-signed and checked before anything changes.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::connectors::signed_return::{
    append_query, derived_ref, random_session_id, required, signed_query, verify_signed_params,
    ReturnError, RETURN_MAX_AGE_MS, TS_FIELD,
};
use crate::domain::wallet::{Wallet, WalletAction};
use crate::domain::Mode;

pub use crate::connectors::error::ConnectorError;
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

/// Where to send the shopper. Store `session_id` with the payment (`connector_ref`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartOutcome {
    pub session_id: String,
    /// The wallet's page (sandbox: our own `/sandbox/wallet/{wallet}/{session}`).
    pub redirect_url: String,
}

/// What the wallet said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum WalletOutcome {
    Paid {
        txn_id: String,
    },
    Declined,
    /// Not decided yet (a processor asked server-side still waits): a webhook or the timeout
    /// decides later.
    Pending,
}

impl WalletOutcome {
    /// The domain action to apply (`None`: not decided).
    pub fn action(&self) -> Option<WalletAction> {
        match self {
            WalletOutcome::Paid { .. } => Some(WalletAction::Approve),
            WalletOutcome::Declined => Some(WalletAction::Decline),
            WalletOutcome::Pending => None,
        }
    }
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
}

/// The three buttons of the sandbox wallet page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SandboxWalletChoice {
    /// 支払う: the wallet pays; the shopper returns with `paid`.
    Approve,
    /// 支払わない: the wallet declines; the shopper returns with `declined`.
    Decline,
    /// 離脱する: the shopper closes the wallet. Nothing comes back; the payment waits until the
    /// background job times it out.
    WalkAway,
}

impl SandboxWalletChoice {
    pub const ALL: [SandboxWalletChoice; 3] = [
        SandboxWalletChoice::Approve,
        SandboxWalletChoice::Decline,
        SandboxWalletChoice::WalkAway,
    ];

    pub fn code(self) -> &'static str {
        match self {
            SandboxWalletChoice::Approve => "approve",
            SandboxWalletChoice::Decline => "decline",
            SandboxWalletChoice::WalkAway => "walk_away",
        }
    }

    pub fn parse(code: &str) -> Option<SandboxWalletChoice> {
        SandboxWalletChoice::ALL
            .into_iter()
            .find(|c| c.code() == code)
    }

    pub fn label_ja(self) -> &'static str {
        match self {
            SandboxWalletChoice::Approve => "支払う（承認）",
            SandboxWalletChoice::Decline => "支払わない（拒否）",
            SandboxWalletChoice::WalkAway => "画面を閉じる（離脱）",
        }
    }
}

/// What the sandbox wallet page needs to send the shopper back (from the payment row).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxWalletReturn<'a> {
    pub return_url: &'a str,
    pub session_id: &'a str,
    pub payment_id: &'a str,
    pub wallet: Wallet,
    pub amount: i64,
    pub choice: SandboxWalletChoice,
}

/// Sandbox wallet: the "wallet page" is served by our own server under
/// `/sandbox/wallet/{wallet}/{session}`. Stateless; all instances share `secret`.
#[derive(Clone)]
pub struct SandboxWalletConnector {
    base_url: String,
    secret: Vec<u8>,
}

impl std::fmt::Debug for SandboxWalletConnector {
    // Never print the signing secret into logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxWalletConnector")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl SandboxWalletConnector {
    /// `base_url`: our server's public origin, e.g. `https://pay.example.jp`.
    pub fn new(base_url: impl Into<String>, secret: impl Into<Vec<u8>>) -> Self {
        Self {
            base_url: base_url.into().trim_end_matches('/').to_string(),
            secret: secret.into(),
        }
    }

    /// Signed return URL for the page's choice; `None` for walk-away.
    pub fn sandbox_return_url(&self, r: &SandboxWalletReturn<'_>, now_ms: i64) -> Option<String> {
        let result = match r.choice {
            SandboxWalletChoice::Approve => "paid",
            SandboxWalletChoice::Decline => "declined",
            SandboxWalletChoice::WalkAway => return None,
        };
        let amount = r.amount.to_string();
        let ts = now_ms.to_string();
        let txn = derived_ref(&self.secret, "sbxwallet_", r.session_id);
        let mut fields: Vec<(&str, &str)> = vec![
            ("session", r.session_id),
            ("payment_id", r.payment_id),
            ("wallet", r.wallet.code()),
            ("amount", &amount),
            ("result", result),
            (TS_FIELD, &ts),
        ];
        if r.choice == SandboxWalletChoice::Approve {
            fields.push(("txn", &txn));
        }
        Some(append_query(
            r.return_url,
            &signed_query(&self.secret, &fields),
        ))
    }
}

#[async_trait]
impl WalletConnector for SandboxWalletConnector {
    async fn start(&self, req: &StartRequest) -> Result<StartOutcome, ConnectorError> {
        if req.mode != Mode::Test {
            return Err(ConnectorError::InvalidRequest(SANDBOX_REFUSES_LIVE));
        }
        if req.amount < 1 {
            return Err(ConnectorError::InvalidRequest("amount_not_positive"));
        }
        if req.payment_id.is_empty() {
            return Err(ConnectorError::InvalidRequest("payment_id_missing"));
        }
        if req.return_url.contains('?') {
            return Err(ConnectorError::InvalidRequest("return_url_has_query"));
        }
        let session_id = random_session_id();
        let redirect_url = format!(
            "{}/sandbox/wallet/{}/{}",
            self.base_url,
            req.wallet.code(),
            session_id
        );
        Ok(StartOutcome {
            session_id,
            redirect_url,
        })
    }

    async fn confirm_return(
        &self,
        params: &[(String, String)],
        _session_id: &str,
        now_ms: i64,
    ) -> Result<WalletResult, ConnectorError> {
        let f = verify_signed_params(&self.secret, params, now_ms, RETURN_MAX_AGE_MS)?;
        let wallet =
            Wallet::parse(required(&f, "wallet")?).ok_or(ReturnError::InvalidField("wallet"))?;
        let amount: i64 = required(&f, "amount")?
            .parse()
            .map_err(|_| ReturnError::InvalidField("amount"))?;
        let outcome = match required(&f, "result")? {
            "paid" => WalletOutcome::Paid {
                txn_id: required(&f, "txn")?.to_string(),
            },
            "declined" => WalletOutcome::Declined,
            _ => return Err(ReturnError::InvalidField("result").into()),
        };
        Ok(WalletResult {
            payment_id: required(&f, "payment_id")?.to_string(),
            session_id: required(&f, "session")?.to_string(),
            wallet,
            amount,
            outcome,
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

    const SECRET: &[u8] = b"wallet-secret";

    fn params(url: &str) -> Vec<(String, String)> {
        let q = url.split_once('?').map(|(_, q)| q).unwrap_or("");
        q.split('&')
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn ret(choice: SandboxWalletChoice) -> SandboxWalletReturn<'static> {
        SandboxWalletReturn {
            return_url: "https://pay.example.jp/return/wallet",
            session_id: "s1",
            payment_id: "pay_9",
            wallet: Wallet::PayPay,
            amount: 5_000,
            choice,
        }
    }

    #[tokio::test]
    async fn choices_round_trip_and_tampering_fails() {
        let c = SandboxWalletConnector::new("https://pay.example.jp", SECRET);
        let url = c
            .sandbox_return_url(&ret(SandboxWalletChoice::Approve), 10)
            .unwrap();
        let r = c.confirm_return(&params(&url), "s1", 20).await.unwrap();
        assert_eq!((r.wallet, r.amount), (Wallet::PayPay, 5_000));
        assert_eq!(r.outcome.action(), Some(WalletAction::Approve));
        let url = c
            .sandbox_return_url(&ret(SandboxWalletChoice::Decline), 10)
            .unwrap();
        let r = c.confirm_return(&params(&url), "s1", 20).await.unwrap();
        assert_eq!(r.outcome, WalletOutcome::Declined);
        assert_eq!(
            c.sandbox_return_url(&ret(SandboxWalletChoice::WalkAway), 10),
            None
        );
        let url = c
            .sandbox_return_url(&ret(SandboxWalletChoice::Approve), 10)
            .unwrap();
        let p: Vec<_> = params(&url)
            .into_iter()
            .map(|(k, v)| {
                if k == "amount" {
                    (k, "1".into())
                } else {
                    (k, v)
                }
            })
            .collect();
        assert_eq!(
            c.confirm_return(&p, "s1", 20).await.unwrap_err().code(),
            "return_bad_signature"
        );
    }

    #[tokio::test]
    async fn sandbox_refuses_live() {
        let c = SandboxWalletConnector::new("https://pay.example.jp", SECRET);
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
