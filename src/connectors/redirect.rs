//! The one-step redirect methods' shared connector pieces (bank net, wallets): the shopper is
//! sent to the institution's page and comes back with an answer. Here: the answer's shape, and
//! the sandbox that stands in for the institution's page (`/sandbox/{page}/{code}/{session}`),
//! one implementation for every such method, parameterised by its [`SandboxInstitution`].
//!
//! Signing and verification are the audited helpers of `connectors::signed_return`: a return
//! URL is typed by the shopper's browser, so every field in it is signed and checked.

use std::marker::PhantomData;

use serde::{Deserialize, Serialize};

use crate::connectors::error::ConnectorError;
use crate::connectors::signed_return::{
    append_query, derived_ref, random_session_id, required, signed_query, verify_signed_params,
    ReturnError, RETURN_MAX_AGE_MS, SANDBOX_REFUSES_LIVE, TS_FIELD,
};
use crate::domain::redirect::Institution;
use crate::domain::Mode;

/// Where to send the shopper. Store `session_id` with the payment (`connector_ref`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartOutcome {
    pub session_id: String,
    /// The institution's page (sandbox: our own `/sandbox/{page}/{code}/{session}`).
    pub redirect_url: String,
}

/// What the institution said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Outcome {
    Paid {
        txn_id: String,
    },
    Declined,
    /// Not decided yet (a processor asked server-side still waits): a webhook, the
    /// reconciliation sweep or the timeout decides later.
    Pending,
}

/// An institution with a sandbox page: the path segment of that page, which is also the name of
/// the signed return field naming the institution, and the prefix of its transaction references.
pub trait SandboxInstitution: Institution {
    /// `bank` or `wallet`.
    const PAGE: &'static str;
    /// Prefix of the sandbox's transaction reference (`sbxbank_`, `sbxwallet_`).
    const TXN_PREFIX: &'static str;
}

/// The three buttons of a sandbox institution page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SandboxChoice {
    /// 支払う: the institution pays; the shopper returns with `paid`.
    Approve,
    /// 支払わない: the institution declines; the shopper returns with `declined`.
    Decline,
    /// 離脱する: the shopper closes the page. Nothing comes back; the payment waits until the
    /// background job times it out.
    WalkAway,
}

impl SandboxChoice {
    pub const ALL: [SandboxChoice; 3] = [
        SandboxChoice::Approve,
        SandboxChoice::Decline,
        SandboxChoice::WalkAway,
    ];

    /// Form value of the button.
    pub fn code(self) -> &'static str {
        match self {
            SandboxChoice::Approve => "approve",
            SandboxChoice::Decline => "decline",
            SandboxChoice::WalkAway => "walk_away",
        }
    }

    pub fn parse(code: &str) -> Option<SandboxChoice> {
        SandboxChoice::ALL.into_iter().find(|c| c.code() == code)
    }

    /// Button label.
    pub fn label_ja(self) -> &'static str {
        match self {
            SandboxChoice::Approve => "支払う（承認）",
            SandboxChoice::Decline => "支払わない（拒否）",
            SandboxChoice::WalkAway => "画面を閉じる（離脱）",
        }
    }
}

/// What a sandbox page needs to send the shopper back (from the payment row).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxReturn<'a, I> {
    pub return_url: &'a str,
    pub session_id: &'a str,
    pub payment_id: &'a str,
    pub institution: I,
    pub amount: i64,
    pub choice: SandboxChoice,
}

/// A verified sandbox return. The flow still checks every field against the stored payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedAnswer<I> {
    pub payment_id: String,
    pub session_id: String,
    pub institution: I,
    pub amount: i64,
    /// `Paid` or `Declined`: the sandbox always decides.
    pub outcome: Outcome,
}

/// Checks shared by every sandbox start: test mode only, a positive amount, a payment id, and a
/// return URL without a query string (every returned parameter must be signed).
pub fn check_sandbox_start(
    mode: Mode,
    amount: i64,
    payment_id: &str,
    return_url: &str,
) -> Result<(), ConnectorError> {
    if mode != Mode::Test {
        return Err(ConnectorError::InvalidRequest(SANDBOX_REFUSES_LIVE));
    }
    if amount < 1 {
        return Err(ConnectorError::InvalidRequest("amount_not_positive"));
    }
    if payment_id.is_empty() {
        return Err(ConnectorError::InvalidRequest("payment_id_missing"));
    }
    if return_url.contains('?') {
        return Err(ConnectorError::InvalidRequest("return_url_has_query"));
    }
    Ok(())
}

/// The sandbox of a redirect method: its "institution page" is served by our own server under
/// `/sandbox/{page}/{code}/{session}`. Stateless; all instances share `secret`.
#[derive(Clone)]
pub struct SandboxRedirect<I> {
    base_url: String,
    secret: Vec<u8>,
    _institution: PhantomData<fn() -> I>,
}

impl<I: SandboxInstitution> std::fmt::Debug for SandboxRedirect<I> {
    // Never print the signing secret into logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxRedirect")
            .field("page", &I::PAGE)
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl<I: SandboxInstitution> SandboxRedirect<I> {
    /// `base_url`: our server's public origin, e.g. `https://pay.example.jp`.
    pub fn new(base_url: impl Into<String>, secret: impl Into<Vec<u8>>) -> Self {
        Self {
            base_url: base_url.into().trim_end_matches('/').to_string(),
            secret: secret.into(),
            _institution: PhantomData,
        }
    }

    /// A new session and the sandbox page to send the shopper to.
    pub fn open(
        &self,
        mode: Mode,
        amount: i64,
        payment_id: &str,
        return_url: &str,
        institution: I,
    ) -> Result<StartOutcome, ConnectorError> {
        check_sandbox_start(mode, amount, payment_id, return_url)?;
        let session_id = random_session_id();
        let redirect_url = format!(
            "{}/sandbox/{}/{}/{}",
            self.base_url,
            I::PAGE,
            institution.code(),
            session_id
        );
        Ok(StartOutcome {
            session_id,
            redirect_url,
        })
    }

    /// Signed return URL for the page's choice; `None` for walk-away (the page just tells the
    /// shopper they left, and nothing comes back).
    pub fn sandbox_return_url(&self, r: &SandboxReturn<'_, I>, now_ms: i64) -> Option<String> {
        let result = match r.choice {
            SandboxChoice::Approve => "paid",
            SandboxChoice::Decline => "declined",
            SandboxChoice::WalkAway => return None,
        };
        let amount = r.amount.to_string();
        let ts = now_ms.to_string();
        let txn = derived_ref(&self.secret, I::TXN_PREFIX, r.session_id);
        let mut fields: Vec<(&str, &str)> = vec![
            ("session", r.session_id),
            ("payment_id", r.payment_id),
            (I::PAGE, r.institution.code()),
            ("amount", &amount),
            ("result", result),
            (TS_FIELD, &ts),
        ];
        if r.choice == SandboxChoice::Approve {
            fields.push(("txn", &txn));
        }
        Some(append_query(
            r.return_url,
            &signed_query(&self.secret, &fields),
        ))
    }

    /// Verifies the decoded query parameters of a return and reads the answer.
    pub fn read_return(
        &self,
        params: &[(String, String)],
        now_ms: i64,
    ) -> Result<SignedAnswer<I>, ConnectorError> {
        let f = verify_signed_params(&self.secret, params, now_ms, RETURN_MAX_AGE_MS)?;
        let institution =
            I::parse(required(&f, I::PAGE)?).ok_or(ReturnError::InvalidField(I::PAGE))?;
        let amount: i64 = required(&f, "amount")?
            .parse()
            .map_err(|_| ReturnError::InvalidField("amount"))?;
        let outcome = match required(&f, "result")? {
            "paid" => Outcome::Paid {
                txn_id: required(&f, "txn")?.to_string(),
            },
            "declined" => Outcome::Declined,
            _ => return Err(ReturnError::InvalidField("result").into()),
        };
        Ok(SignedAnswer {
            payment_id: required(&f, "payment_id")?.to_string(),
            session_id: required(&f, "session")?.to_string(),
            institution,
            amount,
            outcome,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::bank::Bank;
    use crate::domain::wallet::Wallet;

    const SECRET: &[u8] = b"redirect-secret";

    /// Our values are unreserved characters only, so splitting is enough here.
    fn params(url: &str) -> Vec<(String, String)> {
        let q = url.split_once('?').map(|(_, q)| q).unwrap_or("");
        q.split('&')
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn ret<I>(institution: I, choice: SandboxChoice) -> SandboxReturn<'static, I> {
        SandboxReturn {
            return_url: "https://pay.example.jp/return/x",
            session_id: "s1",
            payment_id: "pay_9",
            institution,
            amount: 5_000,
            choice,
        }
    }

    /// Every sandbox institution: the page URL, the three choices and a tampered amount.
    fn round_trip<I: SandboxInstitution + std::fmt::Debug>(institution: I) {
        let c = SandboxRedirect::<I>::new("https://pay.example.jp/", SECRET);
        let out = c
            .open(
                Mode::Test,
                100,
                "pay_9",
                "https://pay.example.jp/r",
                institution,
            )
            .unwrap();
        assert_eq!(
            out.redirect_url,
            format!(
                "https://pay.example.jp/sandbox/{}/{}/{}",
                I::PAGE,
                institution.code(),
                out.session_id
            )
        );
        let url = c
            .sandbox_return_url(&ret(institution, SandboxChoice::Approve), 10)
            .unwrap();
        let a = c.read_return(&params(&url), 20).unwrap();
        assert_eq!((a.institution, a.amount), (institution, 5_000));
        assert!(
            matches!(a.outcome, Outcome::Paid { ref txn_id } if txn_id.starts_with(I::TXN_PREFIX))
        );
        let url = c
            .sandbox_return_url(&ret(institution, SandboxChoice::Decline), 10)
            .unwrap();
        assert_eq!(
            c.read_return(&params(&url), 20).unwrap().outcome,
            Outcome::Declined
        );
        assert_eq!(
            c.sandbox_return_url(&ret(institution, SandboxChoice::WalkAway), 10),
            None
        );
        let url = c
            .sandbox_return_url(&ret(institution, SandboxChoice::Approve), 10)
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
            c.read_return(&p, 20).unwrap_err().code(),
            "return_bad_signature"
        );
    }

    #[test]
    fn banks_and_wallets_round_trip() {
        round_trip(Bank::Rakuten);
        round_trip(Wallet::PayPay);
        for ch in SandboxChoice::ALL {
            assert_eq!(SandboxChoice::parse(ch.code()), Some(ch));
        }
    }

    #[test]
    fn sandbox_start_refuses_bad_requests() {
        let c = SandboxRedirect::<Bank>::new("https://pay.example.jp", SECRET);
        let r = "https://pay.example.jp/r";
        let code = |res: Result<StartOutcome, ConnectorError>| res.unwrap_err().code();
        assert_eq!(
            code(c.open(Mode::Live, 100, "p", r, Bank::Mufg)),
            SANDBOX_REFUSES_LIVE
        );
        assert_eq!(
            code(c.open(Mode::Test, 0, "p", r, Bank::Mufg)),
            "amount_not_positive"
        );
        assert_eq!(
            code(c.open(Mode::Test, 1, "", r, Bank::Mufg)),
            "payment_id_missing"
        );
        assert_eq!(
            code(c.open(Mode::Test, 1, "p", "https://x/r?a=1", Bank::Mufg)),
            "return_url_has_query"
        );
    }
}
