//! Bank-net connector: the `BankConnector` trait and its sandbox bank page (approve / decline / walk away) with signed returns.
//!
//! Signing and return verification are the shared helpers from
//! `crate::connectors::carrier`, so both redirect methods have one audited implementation.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::connectors::signed_return::{
    append_query, derived_ref, random_session_id, required, signed_query, verify_signed_params,
    ReturnError, RETURN_MAX_AGE_MS, TS_FIELD,
};
use crate::domain::bank::{Bank, BankAction};
use crate::domain::Mode;

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

/// Where to send the shopper. Store `session_id` with the payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartOutcome {
    pub session_id: String,
    /// The bank's login page (sandbox: our own `/sandbox/bank/{bank_code}/{session}`).
    pub redirect_url: String,
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

pub use crate::connectors::error::ConnectorError;

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SandboxBankChoice {
    /// 支払う: the bank debits the account; the shopper returns with `paid`.
    Approve,
    /// 支払わない: the bank declines; the shopper returns with `declined`.
    Decline,
    /// 離脱する: the shopper closes the bank page. No return at all; the payment
    /// stays `awaiting_bank` until the background job times it out.
    WalkAway,
}

impl SandboxBankChoice {
    pub fn all() -> &'static [SandboxBankChoice] {
        &[
            SandboxBankChoice::Approve,
            SandboxBankChoice::Decline,
            SandboxBankChoice::WalkAway,
        ]
    }

    /// Form value for the button.
    pub fn code(self) -> &'static str {
        match self {
            SandboxBankChoice::Approve => "approve",
            SandboxBankChoice::Decline => "decline",
            SandboxBankChoice::WalkAway => "walk_away",
        }
    }

    pub fn parse(code: &str) -> Option<SandboxBankChoice> {
        SandboxBankChoice::all()
            .iter()
            .copied()
            .find(|c| c.code() == code)
    }

    /// Button label.
    pub fn label_ja(self) -> &'static str {
        match self {
            SandboxBankChoice::Approve => "支払う（承認）",
            SandboxBankChoice::Decline => "支払わない（拒否）",
            SandboxBankChoice::WalkAway => "画面を閉じる（離脱）",
        }
    }
}

/// Everything the sandbox bank page needs to send the shopper back (from the payment row).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxBankReturn<'a> {
    pub return_url: &'a str,
    pub session_id: &'a str,
    pub payment_id: &'a str,
    pub bank: Bank,
    pub amount: i64,
    pub choice: SandboxBankChoice,
}

/// Sandbox bank: the "bank page" is served by our own server under
/// `/sandbox/bank/{bank_code}/{session}`. Stateless; all instances share `secret`.
#[derive(Clone)]
pub struct SandboxBankConnector {
    base_url: String,
    secret: Vec<u8>,
}

impl std::fmt::Debug for SandboxBankConnector {
    // Never print the signing secret into logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxBankConnector")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl SandboxBankConnector {
    /// `base_url`: our server's public origin, e.g. `https://pay.example.jp`.
    pub fn new(base_url: impl Into<String>, secret: impl Into<Vec<u8>>) -> Self {
        let base_url = base_url.into().trim_end_matches('/').to_string();
        Self {
            base_url,
            secret: secret.into(),
        }
    }

    /// Signed return URL for the page's choice; `None` for walk-away (the page
    /// just tells the shopper they left, and nothing comes back).
    pub fn sandbox_return_url(&self, r: &SandboxBankReturn<'_>, now_ms: i64) -> Option<String> {
        let result = match r.choice {
            SandboxBankChoice::Approve => "paid",
            SandboxBankChoice::Decline => "declined",
            SandboxBankChoice::WalkAway => return None,
        };
        let amount = r.amount.to_string();
        let ts = now_ms.to_string();
        let txn = derived_ref(&self.secret, "sbxbank_", r.session_id);
        let mut fields: Vec<(&str, &str)> = vec![
            ("session", r.session_id),
            ("payment_id", r.payment_id),
            ("bank", r.bank.code()),
            ("amount", &amount),
            ("result", result),
            (TS_FIELD, &ts),
        ];
        if r.choice == SandboxBankChoice::Approve {
            fields.push(("txn", &txn));
        }
        Some(append_query(
            r.return_url,
            &signed_query(&self.secret, &fields),
        ))
    }
}

#[async_trait]
impl BankConnector for SandboxBankConnector {
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
            "{}/sandbox/bank/{}/{}",
            self.base_url,
            req.bank.code(),
            session_id
        );
        Ok(StartOutcome {
            session_id,
            redirect_url,
        })
    }

    async fn verify_return(
        &self,
        params: &[(String, String)],
        now_ms: i64,
    ) -> Result<BankResult, ConnectorError> {
        let f = verify_signed_params(&self.secret, params, now_ms, RETURN_MAX_AGE_MS)?;
        let bank = Bank::parse(required(&f, "bank")?).ok_or(ReturnError::InvalidField("bank"))?;
        let amount: i64 = required(&f, "amount")?
            .parse()
            .map_err(|_| ReturnError::InvalidField("amount"))?;
        let outcome = match required(&f, "result")? {
            "paid" => BankOutcome::Paid {
                bank_txn_id: required(&f, "txn")?.to_string(),
            },
            "declined" => BankOutcome::Declined,
            _ => return Err(ReturnError::InvalidField("result").into()),
        };
        Ok(BankResult {
            payment_id: required(&f, "payment_id")?.to_string(),
            session_id: required(&f, "session")?.to_string(),
            bank,
            amount,
            outcome,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"bank-secret";

    /// Our values are unreserved characters only, so splitting is enough here.
    fn params(url: &str) -> Vec<(String, String)> {
        let q = url.split_once('?').map(|(_, q)| q).unwrap_or("");
        q.split('&')
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn ret(choice: SandboxBankChoice) -> SandboxBankReturn<'static> {
        SandboxBankReturn {
            return_url: "https://pay.example.jp/return/bank",
            session_id: "s1",
            payment_id: "pay_9",
            bank: Bank::Rakuten,
            amount: 5_000,
            choice,
        }
    }

    #[tokio::test]
    async fn start_builds_sandbox_url() {
        let c = SandboxBankConnector::new("https://pay.example.jp", SECRET);
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

    #[tokio::test]
    async fn choices_round_trip() {
        let c = SandboxBankConnector::new("https://pay.example.jp", SECRET);
        let url = c
            .sandbox_return_url(&ret(SandboxBankChoice::Approve), 10)
            .unwrap();
        let r = c.verify_return(&params(&url), 20).await.unwrap();
        assert_eq!(r.bank, Bank::Rakuten);
        assert_eq!(r.amount, 5_000);
        assert_eq!(r.outcome.action(), BankAction::Approve);

        let url = c
            .sandbox_return_url(&ret(SandboxBankChoice::Decline), 10)
            .unwrap();
        let r = c.verify_return(&params(&url), 20).await.unwrap();
        assert_eq!(r.outcome, BankOutcome::Declined);

        assert_eq!(
            c.sandbox_return_url(&ret(SandboxBankChoice::WalkAway), 10),
            None
        );
        for ch in SandboxBankChoice::all() {
            assert_eq!(SandboxBankChoice::parse(ch.code()), Some(*ch));
        }
    }

    #[tokio::test]
    async fn tampered_amount_is_rejected() {
        let c = SandboxBankConnector::new("https://pay.example.jp", SECRET);
        let url = c
            .sandbox_return_url(&ret(SandboxBankChoice::Approve), 10)
            .unwrap();
        let p: Vec<_> = params(&url)
            .into_iter()
            .map(|(k, v)| {
                if k == "amount" {
                    (k, "1".to_string())
                } else {
                    (k, v)
                }
            })
            .collect();
        assert_eq!(
            c.verify_return(&p, 20).await.unwrap_err().code(),
            "return_bad_signature"
        );
    }
}
