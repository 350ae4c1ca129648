//! Carrier-billing connector: the `CarrierConnector` trait, its sandbox implementation and the sandbox login rules.
//!
//! Redirect methods send the shopper away and get the result back *through the
//! shopper's browser*. Anything in that return URL could be typed by the shopper,
//! so every field is HMAC-signed by whoever produced it (the sandbox page here,
//! an adapter for a real carrier later) and verified before the status changes.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::domain::carrier::{BillingKind, Carrier, CarrierAction};
use crate::domain::Mode;

pub use crate::connectors::signed_return::*;

/// Start of a carrier payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartRequest {
    /// Our payment id (決済ID).
    pub payment_id: String,
    /// The merchant's mode: the sandbox refuses live payments (defence in depth).
    pub mode: Mode,
    pub carrier: Carrier,
    pub amount: i64,
    pub billing: BillingKind,
    /// Item name shown on the carrier page / phone bill.
    pub item_name: String,
    /// Our return endpoint; the connector appends the signed result to it. It
    /// must have no query string of its own (put ids in the path): every query
    /// parameter that comes back must be signed, so unsigned extras are refused.
    pub return_url: String,
    /// The shopper is on a feature phone (only docomo works there).
    pub feature_phone: bool,
}

/// Where to send the shopper. Store `session_id` with the payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartOutcome {
    pub session_id: String,
    /// The carrier's login page (sandbox: our own `/sandbox/carrier/{carrier}/{session}`).
    pub redirect_url: String,
}

/// What the carrier said, after the return was verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum CarrierOutcome {
    Approved {
        carrier_txn_id: String,
        /// Set for continuous billing: the reference for later monthly charges and cancellation.
        subscription_ref: Option<String>,
    },
    Declined,
    /// The shopper pressed cancel on the carrier page.
    Cancelled,
    /// Not decided yet (a processor that is asked server-side still waits for the carrier):
    /// nothing to apply; a webhook or the reconciliation sweep decides later.
    Pending,
}

impl CarrierOutcome {
    /// The domain action to apply with `crate::domain::carrier::apply` (`None`: not decided).
    pub fn action(&self) -> Option<CarrierAction> {
        match self {
            CarrierOutcome::Approved { .. } => Some(CarrierAction::Approve),
            CarrierOutcome::Declined => Some(CarrierAction::Decline),
            CarrierOutcome::Cancelled => Some(CarrierAction::ShopperCancel),
            CarrierOutcome::Pending => None,
        }
    }
}

/// A verified return. The server must still check that `payment_id`,
/// `session_id` and `amount` match its stored payment before applying it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CarrierResult {
    pub payment_id: String,
    pub session_id: String,
    pub carrier: Carrier,
    pub amount: i64,
    pub outcome: CarrierOutcome,
}

/// A payment read back from the processor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retrieved {
    /// Our payment id as the processor holds it.
    pub payment_id: Option<String>,
    pub carrier: Option<Carrier>,
    pub amount: i64,
    pub outcome: CarrierOutcome,
    /// Set when the processor says the completed charge was refunded since.
    pub refunded: bool,
}

/// What to cancel: one completed charge (refund) or a continuous-billing agreement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CancelRequest {
    Charge {
        carrier: Carrier,
        carrier_txn_id: String,
        amount: i64,
    },
    Subscription {
        carrier: Carrier,
        subscription_ref: String,
    },
}

/// A monthly charge of an active subscription (run by the server's scheduler).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContinuousChargeRequest {
    /// Our id for this month's charge; connectors use it for idempotency.
    pub charge_id: String,
    /// The merchant's mode: the sandbox refuses live payments (defence in depth).
    pub mode: Mode,
    pub carrier: Carrier,
    pub subscription_ref: String,
    pub amount: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum ContinuousChargeOutcome {
    Approved { carrier_txn_id: String },
    Declined,
}

pub use crate::connectors::error::ConnectorError;

/// One interface over the three carriers' different systems.
#[async_trait]
pub trait CarrierConnector: Send + Sync {
    /// Begin a payment: returns the carrier login page to redirect to.
    async fn start(&self, req: &StartRequest) -> Result<StartOutcome, ConnectorError>;
    /// Verify the decoded query parameters of the shopper's return and read the result.
    async fn verify_return(
        &self,
        params: &[(String, String)],
        now_ms: i64,
    ) -> Result<CarrierResult, ConnectorError>;
    /// Reads the shopper's return for the payment whose session is `session_id`. The default is
    /// [`Self::verify_return`] (the signed return is the answer: the sandbox). A processor that
    /// can be asked (KOMOJU) checks its signed fields, then takes the outcome from the payment
    /// retrieved server-side, never from the browser.
    async fn confirm_return(
        &self,
        params: &[(String, String)],
        _session_id: &str,
        now_ms: i64,
    ) -> Result<CarrierResult, ConnectorError> {
        self.verify_return(params, now_ms).await
    }
    /// The payment's state read server-side, for webhooks that never came (the reconciliation
    /// sweep). `None`: this connector cannot be asked (the sandbox).
    async fn retrieve(&self, _session_id: &str) -> Result<Option<Retrieved>, ConnectorError> {
        Ok(None)
    }
    /// Refund a completed charge or stop continuous billing.
    async fn cancel(&self, req: &CancelRequest) -> Result<(), ConnectorError>;
    /// Whether this connector makes continuous-billing (継続課金) agreements.
    fn continuous(&self) -> bool {
        true
    }
    /// Charge one month of continuous billing.
    async fn charge_continuous(
        &self,
        req: &ContinuousChargeRequest,
    ) -> Result<ContinuousChargeOutcome, ConnectorError>;
}

// ---------------------------------------------------------------------------
// Sandbox
// ---------------------------------------------------------------------------

/// Result of the sandbox login form on `/sandbox/carrier/{carrier}/{session}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SandboxLogin {
    /// Password `1234`: approve and redirect back.
    Approved,
    /// Password `0000`: the carrier declines; redirect back.
    Declined,
    /// Any other password: show the form again (the shopper may retry).
    WrongPassword,
    /// Login id is not an 11-digit 070/080/090 number: show the form again.
    InvalidLoginId,
}

/// Sandbox approving password (carrier network passwords are 4 digits).
pub const SANDBOX_PASSWORD_APPROVE: &str = "1234";
/// Sandbox password that makes the carrier decline.
pub const SANDBOX_PASSWORD_DECLINE: &str = "0000";

/// Sandbox login rule: any 11-digit mobile number starting 070/080/090 (hyphens
/// and spaces ignored, since people type them) with password `1234` approves,
/// `0000` declines, anything else is a wrong password.
pub fn sandbox_login(login_id: &str, password: &str) -> SandboxLogin {
    let digits: String = login_id
        .chars()
        .filter(|c| *c != '-' && *c != ' ')
        .collect();
    let mobile = digits.len() == 11
        && digits.bytes().all(|b| b.is_ascii_digit())
        && ["070", "080", "090"].iter().any(|p| digits.starts_with(p));
    if !mobile {
        return SandboxLogin::InvalidLoginId;
    }
    match password {
        SANDBOX_PASSWORD_APPROVE => SandboxLogin::Approved,
        SANDBOX_PASSWORD_DECLINE => SandboxLogin::Declined,
        _ => SandboxLogin::WrongPassword,
    }
}

/// What the sandbox carrier page decided, for [`SandboxCarrierConnector::sandbox_return_url`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SandboxDecision {
    Approve,
    Decline,
    /// Shopper pressed キャンセル on the carrier page.
    Cancel,
}

/// Everything the sandbox page needs to send the shopper back (from the payment row).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxReturn<'a> {
    pub return_url: &'a str,
    pub session_id: &'a str,
    pub payment_id: &'a str,
    pub carrier: Carrier,
    pub amount: i64,
    pub billing: BillingKind,
    pub decision: SandboxDecision,
}

/// Sandbox carrier: the "carrier page" is served by our own server under
/// `/sandbox/carrier/{carrier}/{session}`; that page uses [`sandbox_login`] and
/// [`SandboxCarrierConnector::sandbox_return_url`].
///
/// Stateless: no memory of sessions, so any instance can verify any return and
/// restarts lose nothing. All instances must share `secret`.
#[derive(Clone)]
pub struct SandboxCarrierConnector {
    base_url: String,
    secret: Vec<u8>,
}

impl std::fmt::Debug for SandboxCarrierConnector {
    // Never print the signing secret into logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxCarrierConnector")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl SandboxCarrierConnector {
    /// `base_url`: our server's public origin, e.g. `https://pay.example.jp`.
    pub fn new(base_url: impl Into<String>, secret: impl Into<Vec<u8>>) -> Self {
        let base_url = base_url.into().trim_end_matches('/').to_string();
        Self {
            base_url,
            secret: secret.into(),
        }
    }

    /// The signed URL the sandbox page redirects the shopper to.
    pub fn sandbox_return_url(&self, r: &SandboxReturn<'_>, now_ms: i64) -> String {
        let amount = r.amount.to_string();
        let ts = now_ms.to_string();
        let (result, txn, sub) = match r.decision {
            SandboxDecision::Approve => {
                let txn = derived_ref(&self.secret, "sbx_", r.session_id);
                let sub = (r.billing == BillingKind::Continuous)
                    .then(|| derived_ref(&self.secret, "sbxsub_", r.session_id));
                ("approved", Some(txn), sub)
            }
            SandboxDecision::Decline => ("declined", None, None),
            SandboxDecision::Cancel => ("cancelled", None, None),
        };
        let mut fields: Vec<(&str, &str)> = vec![
            ("session", r.session_id),
            ("payment_id", r.payment_id),
            ("carrier", r.carrier.code()),
            ("amount", &amount),
            ("result", result),
            (TS_FIELD, &ts),
        ];
        if let Some(t) = &txn {
            fields.push(("txn", t));
        }
        if let Some(s) = &sub {
            fields.push(("sub", s));
        }
        append_query(r.return_url, &signed_query(&self.secret, &fields))
    }
}

#[async_trait]
impl CarrierConnector for SandboxCarrierConnector {
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
        if req.feature_phone && !req.carrier.available_on_feature_phone() {
            return Err(ConnectorError::NotAvailableOnFeaturePhone);
        }
        let session_id = random_session_id();
        let redirect_url = format!(
            "{}/sandbox/carrier/{}/{}",
            self.base_url,
            req.carrier.code(),
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
    ) -> Result<CarrierResult, ConnectorError> {
        let f = verify_signed_params(&self.secret, params, now_ms, RETURN_MAX_AGE_MS)?;
        let carrier =
            Carrier::parse(required(&f, "carrier")?).ok_or(ReturnError::InvalidField("carrier"))?;
        let amount: i64 = required(&f, "amount")?
            .parse()
            .map_err(|_| ReturnError::InvalidField("amount"))?;
        let outcome = match required(&f, "result")? {
            "approved" => CarrierOutcome::Approved {
                carrier_txn_id: required(&f, "txn")?.to_string(),
                subscription_ref: f.get("sub").cloned(),
            },
            "declined" => CarrierOutcome::Declined,
            "cancelled" => CarrierOutcome::Cancelled,
            _ => return Err(ReturnError::InvalidField("result").into()),
        };
        Ok(CarrierResult {
            payment_id: required(&f, "payment_id")?.to_string(),
            session_id: required(&f, "session")?.to_string(),
            carrier,
            amount,
            outcome,
        })
    }

    async fn cancel(&self, req: &CancelRequest) -> Result<(), ConnectorError> {
        // Nothing to undo in a stateless sandbox; only refuse references it never issued.
        match req {
            CancelRequest::Charge { carrier_txn_id, .. } if carrier_txn_id.starts_with("sbx_") => {
                Ok(())
            }
            CancelRequest::Subscription {
                subscription_ref, ..
            } if subscription_ref.starts_with("sbxsub_") => Ok(()),
            _ => Err(ConnectorError::InvalidRequest("unknown_reference")),
        }
    }

    async fn charge_continuous(
        &self,
        req: &ContinuousChargeRequest,
    ) -> Result<ContinuousChargeOutcome, ConnectorError> {
        if req.mode != Mode::Test {
            return Err(ConnectorError::InvalidRequest(SANDBOX_REFUSES_LIVE));
        }
        if !req.subscription_ref.starts_with("sbxsub_") {
            return Err(ConnectorError::InvalidRequest("unknown_reference"));
        }
        if req.amount < 1 {
            return Err(ConnectorError::InvalidRequest("amount_not_positive"));
        }
        // Monthly charges always succeed in the sandbox; the limit is checked by the server.
        Ok(ContinuousChargeOutcome::Approved {
            carrier_txn_id: derived_ref(&self.secret, "sbx_", &req.charge_id),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"test-secret";

    fn parse_query(url: &str) -> Vec<(String, String)> {
        // Test-only decoder for the values we produce (hex/alnum plus %XX).
        let q = url.split_once('?').map(|(_, q)| q).unwrap_or("");
        let q = q.split('#').next().unwrap_or("");
        q.split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (decode(k), decode(v))
            })
            .collect()
    }

    fn decode(s: &str) -> String {
        let b = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'%' && i + 3 <= b.len() {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                i += 3;
            } else {
                out.push(b[i]);
                i += 1;
            }
        }
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn sign_and_verify() {
        let f = [("b", "2"), ("a", "1")];
        let sig = sign_return(SECRET, &f);
        assert_eq!(sig.len(), 64);
        // Order of fields does not matter.
        assert!(verify_return(SECRET, &[("a", "1"), ("b", "2")], &sig));
        assert!(!verify_return(SECRET, &[("a", "1"), ("b", "3")], &sig));
        assert!(!verify_return(b"other", &f, &sig));
        assert!(!verify_return(SECRET, &f, &sig[..32]));
        assert!(!verify_return(SECRET, &f, "zz"));
        assert_eq!(canonical_string(&f), "a=1\nb=2\n");
    }

    #[test]
    fn canonical_string_is_injective() {
        let one = [("a", "1\nb=2")];
        let two = [("a", "1"), ("b", "2")];
        assert_ne!(canonical_string(&one), canonical_string(&two));
        assert_ne!(sign_return(SECRET, &one), sign_return(SECRET, &two));
    }

    #[test]
    fn login_rules() {
        assert_eq!(sandbox_login("09012345678", "1234"), SandboxLogin::Approved);
        assert_eq!(
            sandbox_login("080-1234-5678", "1234"),
            SandboxLogin::Approved
        );
        assert_eq!(sandbox_login("07012345678", "0000"), SandboxLogin::Declined);
        assert_eq!(
            sandbox_login("07012345678", "9999"),
            SandboxLogin::WrongPassword
        );
        assert_eq!(
            sandbox_login("07012345678", ""),
            SandboxLogin::WrongPassword
        );
        assert_eq!(
            sandbox_login("0312345678", "1234"),
            SandboxLogin::InvalidLoginId
        );
        assert_eq!(
            sandbox_login("06012345678", "1234"),
            SandboxLogin::InvalidLoginId
        );
        assert_eq!(
            sandbox_login("0901234567a", "1234"),
            SandboxLogin::InvalidLoginId
        );
    }

    #[test]
    fn append_query_keeps_query_and_fragment() {
        assert_eq!(append_query("https://x/r", "a=1"), "https://x/r?a=1");
        assert_eq!(
            append_query("https://x/r?p=9", "a=1"),
            "https://x/r?p=9&a=1"
        );
        assert_eq!(
            append_query("https://x/r#top", "a=1"),
            "https://x/r?a=1#top"
        );
        assert_eq!(percent_encode("a b&é"), "a%20b%26%C3%A9");
    }

    fn sample(decision: SandboxDecision, billing: BillingKind) -> SandboxReturn<'static> {
        SandboxReturn {
            return_url: "https://pay.example.jp/return/carrier",
            session_id: "abc123",
            payment_id: "pay_1 &2",
            carrier: Carrier::Docomo,
            amount: 1200,
            billing,
            decision,
        }
    }

    #[tokio::test]
    async fn start_rules() {
        let c = SandboxCarrierConnector::new("https://pay.example.jp/", SECRET);
        let mut req = StartRequest {
            payment_id: "p1".into(),
            mode: Mode::Test,
            carrier: Carrier::Au,
            amount: 500,
            billing: BillingKind::OneOff,
            item_name: "テスト".into(),
            return_url: "https://pay.example.jp/return".into(),
            feature_phone: false,
        };
        let out = c.start(&req).await.unwrap();
        assert_eq!(
            out.redirect_url,
            format!(
                "https://pay.example.jp/sandbox/carrier/au/{}",
                out.session_id
            )
        );
        assert_eq!(out.session_id.len(), 32);
        req.feature_phone = true;
        assert_eq!(
            c.start(&req).await.unwrap_err().code(),
            "carrier_not_available_on_feature_phone"
        );
        req.carrier = Carrier::Docomo;
        assert!(c.start(&req).await.is_ok());
        req.return_url = "https://pay.example.jp/return?a=1".into();
        assert_eq!(
            c.start(&req).await.unwrap_err().code(),
            "return_url_has_query"
        );
        req.amount = 0;
        assert_eq!(
            c.start(&req).await.unwrap_err().code(),
            "amount_not_positive"
        );
    }

    #[tokio::test]
    async fn signed_round_trip() {
        let c = SandboxCarrierConnector::new("https://pay.example.jp", SECRET);
        let url = c.sandbox_return_url(
            &sample(SandboxDecision::Approve, BillingKind::Continuous),
            1_000,
        );
        let params = parse_query(&url);
        let r = c.verify_return(&params, 2_000).await.unwrap();
        assert_eq!(r.payment_id, "pay_1 &2");
        assert_eq!(r.amount, 1200);
        assert_eq!(r.outcome.action(), Some(CarrierAction::Approve));
        match &r.outcome {
            CarrierOutcome::Approved {
                carrier_txn_id,
                subscription_ref,
            } => {
                assert!(carrier_txn_id.starts_with("sbx_"));
                assert!(subscription_ref.as_deref().unwrap().starts_with("sbxsub_"));
            }
            o => panic!("unexpected {o:?}"),
        }
        assert!(url.starts_with("https://pay.example.jp/return/carrier?session=abc123&"));
        // An unsigned extra parameter is refused, even one we would otherwise ignore.
        let mut extra = params.clone();
        extra.push(("x".into(), "1".into()));
        assert_eq!(
            c.verify_return(&extra, 2_000).await.unwrap_err().code(),
            "return_bad_signature"
        );

        for (d, want) in [
            (SandboxDecision::Decline, CarrierOutcome::Declined),
            (SandboxDecision::Cancel, CarrierOutcome::Cancelled),
        ] {
            let url = c.sandbox_return_url(&sample(d, BillingKind::OneOff), 1_000);
            let p = parse_query(&url);
            assert_eq!(c.verify_return(&p, 1_000).await.unwrap().outcome, want);
        }
    }

    #[tokio::test]
    async fn forged_or_stale_returns_fail() {
        let c = SandboxCarrierConnector::new("https://pay.example.jp", SECRET);
        let url = c.sandbox_return_url(&sample(SandboxDecision::Decline, BillingKind::OneOff), 0);
        let params = parse_query(&url);

        // Shopper edits the result.
        let mut forged = params.clone();
        for (k, v) in forged.iter_mut() {
            if k == "result" {
                *v = "approved".into();
            }
        }
        forged.push(("txn".into(), "sbx_fake".into()));
        assert_eq!(
            c.verify_return(&forged, 0).await.unwrap_err().code(),
            "return_bad_signature"
        );
        // Duplicate field.
        let mut dup = params.clone();
        dup.push(("result".into(), "approved".into()));
        assert_eq!(
            c.verify_return(&dup, 0).await.unwrap_err().code(),
            "return_duplicate_field"
        );
        // No signature.
        let nosig: Vec<_> = params.iter().filter(|(k, _)| k != "sig").cloned().collect();
        assert_eq!(
            c.verify_return(&nosig, 0).await.unwrap_err().code(),
            "return_signature_missing"
        );
        // Too old, or from the future.
        assert_eq!(
            c.verify_return(&params, RETURN_MAX_AGE_MS + 1)
                .await
                .unwrap_err()
                .code(),
            "return_expired"
        );
        assert!(c.verify_return(&params, RETURN_MAX_AGE_MS).await.is_ok());
        assert_eq!(
            c.verify_return(&params, -RETURN_CLOCK_SKEW_MS - 1)
                .await
                .unwrap_err()
                .code(),
            "return_invalid_field"
        );
        // Another instance with another secret.
        let other = SandboxCarrierConnector::new("https://pay.example.jp", b"x".to_vec());
        assert!(other.verify_return(&params, 0).await.is_err());
    }

    #[tokio::test]
    async fn cancel_and_continuous() {
        let c = SandboxCarrierConnector::new("https://pay.example.jp", SECRET);
        let ok = c
            .charge_continuous(&ContinuousChargeRequest {
                charge_id: "ch_1".into(),
                mode: Mode::Test,
                carrier: Carrier::Softbank,
                subscription_ref: "sbxsub_1".into(),
                amount: 980,
            })
            .await
            .unwrap();
        assert!(matches!(ok, ContinuousChargeOutcome::Approved { .. }));
        assert!(c
            .cancel(&CancelRequest::Subscription {
                carrier: Carrier::Softbank,
                subscription_ref: "sbxsub_1".into()
            })
            .await
            .is_ok());
        assert!(c
            .cancel(&CancelRequest::Charge {
                carrier: Carrier::Au,
                carrier_txn_id: "real_123".into(),
                amount: 1
            })
            .await
            .is_err());
        assert!(!format!("{c:?}").contains("test-secret"));
    }
}
