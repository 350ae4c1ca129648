//! Konbini (コンビニ決済) through a Stripe account: Stripe's `konbini` payment method, one
//! PaymentIntent per payment number, served as our [`NumberConnector`].
//!
//! - Issue: `POST /v1/payment_intents` with `payment_method_types[]=konbini`,
//!   `payment_method_data[type]=konbini` and the shopper's name and email (Stripe requires
//!   both), `payment_method_options[konbini][expires_at]` (our deadline, 23:59:59 JST of the
//!   last day), `[product_description]`, `[confirmation_number]` (the shopper's phone, as
//!   Stripe recommends), `confirm=true`, and `Idempotency-Key: kakehashi-konbini-<payment id>`.
//!   Stripe answers `requires_action` with `next_action.konbini_display_details`: per store
//!   (`familymart`, `lawson`, `ministop`, `seicomart`) a `payment_code` and a
//!   `confirmation_number`, `expires_at` and a `hosted_voucher_url`
//!   (https://docs.stripe.com/payments/konbini/accept-a-payment,
//!   https://docs.stripe.com/api/payment_intents/object#payment_intent_object-next_action-konbini_display_details).
//! - Paid: the PaymentIntent `succeeded` (event `payment_intent.succeeded`), read back by
//!   [`NumberConnector::query`]; an unpaid one is `canceled` by Stripe once it expires.
//! - Withdraw: `POST /v1/payment_intents/{id}/cancel` (a konbini PaymentIntent can be cancelled
//!   while it waits for payment).
//!
//! Stripe serves four chains only: Seven-Eleven and Daily Yamazaki are not offered.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use super::StripeConnector;
use crate::connectors::konbini::{
    CancelRequest, ConnectorError, IssueRequest, IssueTarget, IssuedNumber, NumberConnector,
};
use crate::domain::konbini::{validate_amount, Chain, NumberAction, NumberShape};

/// Connector error codes (stable; documented in docs/stripe.md).
pub const EMAIL_REQUIRED: &str = "stripe_email_required";
pub const NAME_REQUIRED: &str = "stripe_name_required";
pub const CHAIN_NOT_SERVED: &str = "stripe_chain_not_served";
pub const AMOUNT_TOO_SMALL: &str = "stripe_amount_too_small";
pub const REJECTED: &str = "stripe_rejected";

/// Stripe takes konbini payments from 120 yen (and up to 300,000, as our own limit).
pub const MIN_AMOUNT: i64 = 120;
/// Stripe shows at most 22 characters of the product description at the store.
const DESCRIPTION_CHARS: usize = 22;

/// Stripe's key of a chain in `konbini_display_details.stores`; `None`: not served by Stripe.
pub fn store_of(c: Chain) -> Option<&'static str> {
    match c {
        Chain::FamilyMart => Some("familymart"),
        Chain::Lawson => Some("lawson"),
        Chain::Ministop => Some("ministop"),
        Chain::Seicomart => Some("seicomart"),
        Chain::SevenEleven | Chain::DailyYamazaki => None,
    }
}

/// The konbini connector of one Stripe account.
pub struct StripeKonbini {
    api: Arc<StripeConnector>,
}

impl StripeKonbini {
    pub(super) fn new(api: Arc<StripeConnector>) -> StripeKonbini {
        StripeKonbini { api }
    }

    fn chain_of(target: IssueTarget) -> Result<(Chain, &'static str), ConnectorError> {
        match target {
            IssueTarget::Konbini(c) => store_of(c)
                .map(|s| (c, s))
                .ok_or(ConnectorError::InvalidRequest(CHAIN_NOT_SERVED)),
            IssueTarget::Payeasy | IssueTarget::BankTransfer => {
                Err(ConnectorError::InvalidRequest(CHAIN_NOT_SERVED))
            }
        }
    }

    /// The create request's form, or why it cannot be made.
    fn form(req: &IssueRequest) -> Result<Vec<(&'static str, String)>, ConnectorError> {
        let email = req
            .shopper_email
            .as_deref()
            .map(str::trim)
            .filter(|e| e.contains('@'))
            .ok_or(ConnectorError::InvalidRequest(EMAIL_REQUIRED))?;
        let name = req
            .shopper_name
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .ok_or(ConnectorError::InvalidRequest(NAME_REQUIRED))?;
        let mut form = vec![
            ("amount", req.amount.to_string()),
            ("currency", "jpy".to_owned()),
            ("payment_method_types[]", "konbini".to_owned()),
            ("payment_method_data[type]", "konbini".to_owned()),
            (
                "payment_method_data[billing_details][name]",
                name.to_owned(),
            ),
            (
                "payment_method_data[billing_details][email]",
                email.to_owned(),
            ),
            // Our deadline exactly (Stripe then shows and enforces the same day and time).
            (
                "payment_method_options[konbini][expires_at]",
                (req.deadline_ms / 1000).to_string(),
            ),
            (
                "payment_method_options[konbini][product_description]",
                req.payment_id.chars().take(DESCRIPTION_CHARS).collect(),
            ),
            ("confirm", "true".to_owned()),
            (super::META_PAYMENT_ID_FIELD, req.payment_id.clone()),
        ];
        // Stripe: "10 to 11 digit numeric-only … We recommend to use the customer's phone
        // number". Without one, Stripe picks the confirmation number itself.
        let phone: String = req
            .shopper_phone
            .as_deref()
            .unwrap_or("")
            .chars()
            .filter(char::is_ascii_digit)
            .collect();
        if (10..=11).contains(&phone.len()) && phone.bytes().any(|b| b != b'0') {
            form.push((
                "payment_method_options[konbini][confirmation_number]",
                phone,
            ));
        }
        Ok(form)
    }

    /// Reads Stripe's PaymentIntent into our number, refusing anything that does not fit.
    fn number_of(&self, req: &IssueRequest, pi: &Value) -> Result<IssuedNumber, ConnectorError> {
        let bad =
            |what: &str| ConnectorError::Unavailable(format!("stripe konbini answer: {what}"));
        let (chain, store) = Self::chain_of(req.target)?;
        let id = pi["id"].as_str().unwrap_or_default();
        StripeConnector::check_id(id, "pi_").map_err(|_| bad("no PaymentIntent id"))?;
        if pi["amount"].as_i64() != Some(req.amount) || pi["currency"].as_str() != Some("jpy") {
            return Err(bad("amount or currency differs"));
        }
        if pi["metadata"][super::META_PAYMENT_ID].as_str() != Some(req.payment_id.as_str()) {
            return Err(bad("another payment's PaymentIntent"));
        }
        let next = &pi["next_action"];
        if pi["status"].as_str() != Some("requires_action")
            || next["type"].as_str() != Some("konbini_display_details")
        {
            return Err(bad("not waiting for a konbini payment"));
        }
        let d = &next["konbini_display_details"];
        let s = &d["stores"][store];
        let field = |k: &str| s[k].as_str().map(str::trim).map(str::to_owned);
        let mut n = IssuedNumber {
            target: req.target,
            receipt_no: None,
            customer_no: None,
            confirm_no: None,
            institution_no: None,
            payment_url: d["hosted_voucher_url"]
                .as_str()
                .filter(|u| self.link_ok(u))
                .map(str::to_owned),
            deadline_ms: d["expires_at"]
                .as_i64()
                .map(|s| s * 1000)
                .unwrap_or(req.deadline_ms),
            connector_ref: id.to_owned(),
            account: None,
        };
        match chain.shape() {
            // Lawson / Ministop: お客様番号 + 確認番号; FamilyMart: 第1番号 + 第2番号.
            NumberShape::CustomerAndConfirm => {
                n.customer_no = field("payment_code");
                n.confirm_no = field("confirmation_number");
            }
            // Seicomart: 受付番号 (its second number is the shopper's phone number).
            _ => n.receipt_no = field("payment_code"),
        }
        if !n.has_processor_shape() {
            return Err(bad("number does not have the shape of its store"));
        }
        Ok(n)
    }

    /// Stripe's voucher page is shown to the shopper as a link: https only (or the configured
    /// API host itself, for a local contract fake).
    fn link_ok(&self, url: &str) -> bool {
        let api = self.api.api.as_str().trim_end_matches('/');
        url.len() <= 512
            && (url.starts_with("https://") || url.starts_with(&format!("{api}/")))
            && !url
                .chars()
                .any(|c| c.is_whitespace() || c == '"' || c == '<' || c == '>')
    }

    async fn retrieve(&self, id: &str) -> Result<Value, ConnectorError> {
        StripeConnector::check_id(id, "pi_")?;
        // The charge (its `created` is when the shopper paid) comes as an id unless expanded.
        self.api
            .get(
                &format!("/v1/payment_intents/{id}"),
                &[("expand[]", "latest_charge")],
            )
            .await
    }
}

/// What a retrieved konbini PaymentIntent means for our number: paid (`succeeded`, at its
/// charge's time), expired or withdrawn (`canceled`: Stripe cancels an unpaid one once it
/// expires, so a cancellation at or after `expires_at` is the expiry), else nothing yet.
pub fn actions_of(pi: &Value, now_ms: i64) -> Vec<NumberAction> {
    match pi["status"].as_str() {
        Some("succeeded") => {
            let at = pi["latest_charge"]["created"]
                .as_i64()
                .or_else(|| pi["created"].as_i64())
                .map_or(now_ms, |s| s * 1000);
            vec![NumberAction::Paid { at_ms: at }]
        }
        Some("canceled") => {
            let expires = pi["next_action"]["konbini_display_details"]["expires_at"]
                .as_i64()
                .or_else(|| pi["payment_method_options"]["konbini"]["expires_at"].as_i64());
            let canceled = pi["canceled_at"].as_i64();
            match (expires, canceled) {
                (Some(e), Some(c)) if c >= e => vec![NumberAction::Expire {
                    now_ms: (c * 1000).max(e * 1000 + 1),
                }],
                _ => vec![NumberAction::Cancel],
            }
        }
        _ => Vec::new(),
    }
}

#[async_trait]
impl NumberConnector for StripeKonbini {
    fn serves(&self, target: IssueTarget) -> bool {
        Self::chain_of(target).is_ok()
    }

    fn precheck(&self, req: &IssueRequest) -> Result<(), ConnectorError> {
        Self::chain_of(req.target)?;
        validate_amount(req.amount).map_err(|e| ConnectorError::InvalidRequest(e.code()))?;
        if req.amount < MIN_AMOUNT {
            return Err(ConnectorError::InvalidRequest(AMOUNT_TOO_SMALL));
        }
        // The shopper details Stripe requires (an e-mail): refused here, nothing is stored.
        Self::form(req).map(|_| ())
    }

    async fn issue(&self, req: &IssueRequest) -> Result<IssuedNumber, ConnectorError> {
        if req.payment_id.is_empty() {
            return Err(ConnectorError::InvalidRequest("payment_id_missing"));
        }
        self.precheck(req)?;
        let form = Self::form(req)?;
        let key = format!("kakehashi-konbini-{}", req.payment_id);
        let pi = self
            .api
            .post("/v1/payment_intents", &form, &key)
            .await
            .map_err(|e| match e {
                ConnectorError::Unavailable(_) | ConnectorError::Timeout => e,
                other => {
                    tracing::warn!(error = %other, payment = %req.payment_id, "Stripe refused the konbini payment");
                    ConnectorError::InvalidRequest(REJECTED)
                }
            })?;
        self.number_of(req, &pi)
    }

    async fn query(&self, number: &IssuedNumber) -> Result<Vec<NumberAction>, ConnectorError> {
        let pi = self.retrieve(&number.connector_ref).await?;
        // Connectors hold no app clock; a payment without a time is dated now.
        Ok(actions_of(&pi, crate::util::now_ms()))
    }

    async fn cancel(&self, req: &CancelRequest) -> Result<(), ConnectorError> {
        StripeConnector::check_id(&req.connector_ref, "pi_")?;
        let key = format!("kakehashi-konbini-cancel-{}", req.payment_id);
        let path = format!("/v1/payment_intents/{}/cancel", req.connector_ref);
        let refused = match self.api.post(&path, &[], &key).await {
            Ok(_) => return Ok(()),
            Err(e @ (ConnectorError::Unavailable(_) | ConnectorError::Timeout)) => return Err(e),
            Err(e) => e,
        };
        // Refused: only a PaymentIntent no longer waiting. Read it back to tell "cancelled
        // already" (a retry after a lost answer) from "paid meanwhile" (keep the number).
        let pi = self.retrieve(&req.connector_ref).await?;
        match pi["status"].as_str() {
            Some("canceled") => Ok(()),
            Some("succeeded" | "processing") => Err(ConnectorError::NotCancellable),
            other => {
                tracing::warn!(error = %refused, state = ?other, payment = %req.payment_id, "Stripe refused to cancel a konbini payment");
                Err(ConnectorError::InvalidRequest(REJECTED))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn stripe_serves_four_chains() {
        let served: Vec<Chain> = Chain::all()
            .iter()
            .copied()
            .filter(|c| store_of(*c).is_some())
            .collect();
        assert_eq!(
            served,
            [
                Chain::Lawson,
                Chain::FamilyMart,
                Chain::Ministop,
                Chain::Seicomart
            ]
        );
    }

    #[test]
    fn intents_map_to_number_actions() {
        let paid = json!({"status": "succeeded", "created": 10, "latest_charge": {"created": 20}});
        assert_eq!(
            actions_of(&paid, 5),
            vec![NumberAction::Paid { at_ms: 20_000 }]
        );
        let waiting = json!({"status": "requires_action"});
        assert!(actions_of(&waiting, 5).is_empty());
        let details = json!({"type": "konbini_display_details",
            "konbini_display_details": {"expires_at": 100}});
        let expired = json!({"status": "canceled", "canceled_at": 100, "next_action": details});
        assert_eq!(
            actions_of(&expired, 5),
            vec![NumberAction::Expire { now_ms: 100_001 }]
        );
        let withdrawn = json!({"status": "canceled", "canceled_at": 99, "next_action": details});
        assert_eq!(actions_of(&withdrawn, 5), vec![NumberAction::Cancel]);
    }

    #[test]
    fn requests_need_name_and_email_and_send_the_phone() {
        let mut req = IssueRequest {
            payment_id: "pay_1".into(),
            mode: crate::domain::Mode::Live,
            target: IssueTarget::Konbini(Chain::Lawson),
            amount: 1200,
            deadline_ms: 1_700_000_000_000,
            shopper_name_kana: None,
            shopper_phone: Some("090-1234-5678".into()),
            shopper_name: Some("山田 太郎".into()),
            shopper_email: None,
        };
        assert_eq!(
            StripeKonbini::form(&req).unwrap_err(),
            ConnectorError::InvalidRequest(EMAIL_REQUIRED)
        );
        req.shopper_email = Some("taro@example.jp".into());
        let f = StripeKonbini::form(&req).unwrap();
        let get = |k: &str| f.iter().find(|(n, _)| *n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("payment_method_types[]"), Some("konbini"));
        assert_eq!(
            get("payment_method_options[konbini][expires_at]"),
            Some("1700000000")
        );
        assert_eq!(
            get("payment_method_options[konbini][confirmation_number]"),
            Some("09012345678")
        );
        assert_eq!(get("metadata[kakehashi_payment_id]"), Some("pay_1"));
        req.shopper_name = None;
        assert_eq!(
            StripeKonbini::form(&req).unwrap_err(),
            ConnectorError::InvalidRequest(NAME_REQUIRED)
        );
        assert_eq!(
            StripeKonbini::chain_of(IssueTarget::Konbini(Chain::SevenEleven)).unwrap_err(),
            ConnectorError::InvalidRequest(CHAIN_NOT_SERVED)
        );
    }
}
