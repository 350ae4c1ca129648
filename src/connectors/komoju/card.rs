//! KOMOJU cards, server to server: the card typed on our form goes from this server to KOMOJU
//! (the operator is then in PCI DSS scope as a service provider), with 3-D Secure on KOMOJU's
//! page. Built only from KOMOJU's public reference:
//!
//! - `POST /api/v1/secure_tokens` with `amount`, `currency`, `return_url` and the
//!   `credit_card` `payment_details` (`number`, `month`, `year`, `verification_value`, `name`):
//!   a token whose `verification_status` is `NEEDS_VERIFY` and whose `authentication_url` the
//!   shopper is sent to; back at `return_url`, `GET /api/v1/secure_tokens/{id}` must say `OK`
//!   (docs.komoju.com/en/api/secure_tokens "Secure Token API"; ja.doc.komoju.com/docs/3d-secure;
//!   payment details: ja.doc.komoju.com/docs/payment-details "クレジット・カード");
//! - `POST /api/v1/payments` with the token id as `payment_details` and `capture: false`:
//!   an `authorized` payment (two-step capture: ja.doc.komoju.com/docs/creating-payments-directly,
//!   `capture` manual), or an error object / a `failed` payment for a decline
//!   (ja.doc.komoju.com/docs/errors);
//! - `POST /api/v1/payments/{id}/capture`, `…/cancel` (authorized only) and `…/refund` with an
//!   `amount` (partial refunds allowed; ja.doc.komoju.com/reference/post_payments-id-refund);
//!   `GET /api/v1/payments/{id}` for the status (ja.doc.komoju.com/reference/payments-2).
//!
//! The card number and code appear in exactly one request body (the secure token's) and
//! nowhere else: not in logs, errors, our database, or the later payment request (which
//! carries only the token id). KOMOJU's public `credit_card` details have no 支払区分 field,
//! so only 一括払い is offered.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{json, Value};
use zeroize::Zeroizing;

use super::{ApiError, KomojuApi, REJECTED};
use crate::connectors::card::{
    AuthenticateOutcome, AuthenticateRequest, AuthenticatedAuthorizeRequest, AuthorizeOutcome,
    AuthorizeRequest, CardConnector, ChallengeOutcome, ConnectorError, DeclineReason,
    FoundAuthorization, RemoteStatus,
};
use crate::connectors::signed_return::percent_encode;
use crate::domain::card::{CardStatus, PaymentOption, ThreeDsResult, ThreeDsStatus};

/// The only `verification_status` that lets a token be used for a payment.
const VERIFIED: &str = "OK";

/// Our decline reason for a KOMOJU error code of a refused card payment (`None`: not a
/// decline but a request KOMOJU could not take). The codes are the scenarios of KOMOJU's test
/// cards (ja.doc.komoju.com/docs/test-cards: 残高不足, ご利用限度額を超過, セキュリティ番号が不正,
/// 期限切れのカード, クレジットカード使用不可, 無効なカード) and its generic `request_failed` (402).
pub fn decline_of(code: &str) -> Option<DeclineReason> {
    Some(match code {
        "insufficient_funds" | "exceeded_limit" => DeclineReason::InsufficientFunds,
        "card_expired" | "expired_card" => DeclineReason::ExpiredCard,
        "bad_verification_value" | "invalid_number" | "invalid_card" | "invalid_card_number" => {
            DeclineReason::InvalidNumber
        }
        "card_declined" | "request_failed" | "fraudulent" => DeclineReason::DoNotHonour,
        "gateway_timeout" | "bad_gateway" => DeclineReason::ProcessingError,
        _ => return None,
    })
}

/// Our view of a KOMOJU payment status (`None`: one we do not know).
pub fn status_of(s: &str) -> Option<CardStatus> {
    Some(match s {
        "pending" => CardStatus::Awaiting3ds,
        "authorized" => CardStatus::Authorized,
        "captured" => CardStatus::Captured,
        "refunded" => CardStatus::Refunded,
        "cancelled" | "expired" => CardStatus::Cancelled,
        "failed" => CardStatus::Failed,
        _ => return None,
    })
}

/// The card connector of one KOMOJU account.
pub struct KomojuCard {
    pub(super) api: Arc<KomojuApi>,
    pub(super) key: Zeroizing<String>,
}

fn bad(what: &str) -> ConnectorError {
    ConnectorError::Unavailable(format!("komoju answer: {what}"))
}

/// A KOMOJU id we put in a path: short, and only the characters its ids have.
fn id_ok(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl KomojuCard {
    fn refused(e: ApiError) -> ConnectorError {
        match e {
            ApiError::Unavailable(m) => ConnectorError::Unavailable(m),
            ApiError::Refused { status, code } => {
                tracing::warn!(status, code = %code, "komoju refused a card request");
                ConnectorError::Rejected(format!("{REJECTED}: {code}"))
            }
        }
    }

    async fn payment(&self, id: &str) -> Result<Value, ConnectorError> {
        if !id_ok(id) {
            return Err(ConnectorError::UnknownTransaction);
        }
        let path = format!("/api/v1/payments/{}", percent_encode(id));
        let p = self
            .api
            .call(&self.key, reqwest::Method::GET, &path, None, None)
            .await
            .map_err(|e| match e {
                ApiError::Refused { status: 404, .. } => ConnectorError::UnknownTransaction,
                e => Self::refused(e),
            })?;
        if p["id"].as_str() != Some(id) {
            return Err(bad("another payment"));
        }
        Ok(p)
    }

    async fn post(
        &self,
        id: &str,
        action: &str,
        key: &str,
        body: Option<&Value>,
    ) -> Result<Value, ConnectorError> {
        let path = format!("/api/v1/payments/{}/{action}", percent_encode(id));
        self.api
            .call(&self.key, reqwest::Method::POST, &path, Some(key), body)
            .await
            .map_err(Self::refused)
    }

    /// KOMOJU's authentication page: https, or the configured API host (a local fake).
    fn page_ok(&self, url: &str) -> bool {
        url.len() <= 2048
            && (url.starts_with("https://") || url.starts_with(&format!("{}/", self.api.base)))
            && !url
                .chars()
                .any(|c| c.is_whitespace() || c == '"' || c == '<')
    }

    /// An approved authorization as our outcome: KOMOJU's payment id is the token for capture,
    /// cancel and refund. KOMOJU's public payment object carries no 承認番号, so none is shown.
    fn approved(p: &Value, amount: i64) -> Result<AuthorizeOutcome, ConnectorError> {
        let id = p["id"].as_str().filter(|s| id_ok(s)).ok_or(bad("no id"))?;
        if p["amount"].as_i64() != Some(amount) {
            return Err(bad("another amount"));
        }
        Ok(AuthorizeOutcome::Approved {
            token: id.to_owned(),
            approval_code: String::new(),
        })
    }
}

#[async_trait]
impl CardConnector for KomojuCard {
    /// Creates the secure token with the card: the only request that carries it.
    async fn authenticate(
        &self,
        req: &AuthenticateRequest,
    ) -> Result<AuthenticateOutcome, ConnectorError> {
        if req.amount < 1 {
            return Err(ConnectorError::InvalidRequest("amount_not_positive"));
        }
        if req.return_url.is_empty() {
            return Err(ConnectorError::InvalidRequest("return_url_missing"));
        }
        let mut details = json!({
            "type": "credit_card",
            "number": req.card.expose_digits(),
            "month": format!("{:02}", req.expiry.month()),
            "year": format!("{}", req.expiry.year()),
            "verification_value": req.cvc.expose(),
        });
        if let Some(h) = &req.holder {
            details["name"] = json!(h.as_str());
        }
        let body = json!({
            "amount": req.amount,
            "currency": "JPY",
            "return_url": req.return_url,
            "payment_details": details,
        });
        let t = self
            .api
            .call(
                &self.key,
                reqwest::Method::POST,
                "/api/v1/secure_tokens",
                Some(&format!("{}:3ds", req.payment_id)),
                Some(&body),
            )
            .await;
        drop(body);
        let t = match t {
            Ok(t) => t,
            // A card KOMOJU refuses outright (an invalid number, say) fails authentication;
            // the code alone is logged.
            Err(ApiError::Refused { status, code }) if status == 402 || status == 422 => {
                tracing::warn!(status, code = %code, "komoju refused a card at 3-D Secure");
                return Ok(AuthenticateOutcome::Frictionless(ThreeDsResult {
                    status: ThreeDsStatus::Rejected,
                    eci: None,
                }));
            }
            Err(e) => return Err(Self::refused(e)),
        };
        let id = t["id"]
            .as_str()
            .or_else(|| t["secure_token"].as_str())
            .filter(|s| id_ok(s))
            .ok_or(bad("no secure token"))?;
        match t["verification_status"].as_str() {
            Some("NEEDS_VERIFY" | VERIFIED) => {
                let url = t["authentication_url"]
                    .as_str()
                    .filter(|u| self.page_ok(u))
                    .ok_or(bad("no usable authentication_url"))?;
                Ok(AuthenticateOutcome::Challenge {
                    challenge_id: id.to_owned(),
                    acs_url: Some(url.to_owned()),
                })
            }
            // ERRORED, SKIPPED, …: not authenticated; never authorized.
            Some(other) => {
                tracing::info!(status = other, "komoju secure token not verifiable");
                Ok(AuthenticateOutcome::Frictionless(ThreeDsResult {
                    status: ThreeDsStatus::Unavailable,
                    eci: None,
                }))
            }
            None => Err(bad("no verification_status")),
        }
    }

    /// Reads the token back after the shopper's return: `OK` is authenticated, anything else
    /// (still `NEEDS_VERIFY`: the shopper came back without finishing) is not. The one-time
    /// code was typed on KOMOJU's page, never here.
    async fn complete_challenge(
        &self,
        challenge_id: &str,
        _otp: &str,
    ) -> Result<ChallengeOutcome, ConnectorError> {
        if !id_ok(challenge_id) {
            return Err(ConnectorError::InvalidRequest("challenge_id_invalid"));
        }
        let path = format!("/api/v1/secure_tokens/{}", percent_encode(challenge_id));
        let t = self
            .api
            .call(&self.key, reqwest::Method::GET, &path, None, None)
            .await
            .map_err(Self::refused)?;
        if t["id"].as_str() != Some(challenge_id) {
            return Err(bad("another secure token"));
        }
        let status = if t["verification_status"].as_str() == Some(VERIFIED) {
            ThreeDsStatus::Authenticated
        } else {
            ThreeDsStatus::Failed
        };
        Ok(ChallengeOutcome::Completed(ThreeDsResult {
            status,
            eci: None,
        }))
    }

    /// Never used: every KOMOJU card is authenticated on KOMOJU's page first, and the card is
    /// not sent a second time.
    async fn authorize(&self, _req: &AuthorizeRequest) -> Result<AuthorizeOutcome, ConnectorError> {
        Err(ConnectorError::InvalidRequest("komoju_card_needs_3ds"))
    }

    async fn authorize_authenticated(
        &self,
        req: &AuthenticatedAuthorizeRequest,
    ) -> Result<AuthorizeOutcome, ConnectorError> {
        if !req.three_ds.allows_authorization() {
            return Err(ConnectorError::InvalidRequest("three_ds_not_authenticated"));
        }
        if req.option != PaymentOption::Lump {
            return Err(ConnectorError::InvalidRequest("komoju_lump_sum_only"));
        }
        if req.amount < 1 || !id_ok(&req.challenge_id) {
            return Err(ConnectorError::InvalidRequest("invalid_request"));
        }
        let body = json!({
            "amount": req.amount,
            "currency": "JPY",
            "external_order_num": req.payment_id,
            "capture": false,
            "payment_details": req.challenge_id,
        });
        let p = match self
            .api
            .call(
                &self.key,
                reqwest::Method::POST,
                "/api/v1/payments",
                Some(&req.payment_id),
                Some(&body),
            )
            .await
        {
            Ok(p) => p,
            Err(ApiError::Refused { status, code }) => {
                tracing::warn!(status, code = %code, payment = %req.payment_id, "komoju declined a card payment");
                return match decline_of(&code) {
                    Some(reason) => Ok(AuthorizeOutcome::Declined { reason }),
                    None => Err(ConnectorError::Rejected(format!("{REJECTED}: {code}"))),
                };
            }
            Err(e) => return Err(Self::refused(e)),
        };
        match p["status"].as_str() {
            Some("authorized") => Self::approved(&p, req.amount),
            Some("failed") => Ok(AuthorizeOutcome::Declined {
                reason: DeclineReason::DoNotHonour,
            }),
            _ => Err(bad("card payment neither authorized nor failed")),
        }
    }

    fn takes_installments(&self) -> bool {
        false
    }

    /// 売上確定 of the whole authorization (KOMOJU's public capture call takes no amount).
    async fn capture(&self, token: &str, amount: i64, key: &str) -> Result<(), ConnectorError> {
        let p = self.payment(token).await?;
        let authorized = p["amount"].as_i64().unwrap_or(0);
        match p["status"].as_str() {
            // A retry after a lost answer: done already.
            Some("captured") if amount == authorized => return Ok(()),
            Some("authorized") => {}
            Some(s) => return Err(ConnectorError::InvalidState(format!("komoju status {s}"))),
            None => return Err(bad("no status")),
        }
        if amount != authorized {
            return Err(ConnectorError::InvalidRequest(
                "komoju_partial_capture_unsupported",
            ));
        }
        let p = self.post(token, "capture", key, None).await?;
        match p["status"].as_str() {
            Some("captured") => Ok(()),
            _ => Err(bad("capture not confirmed")),
        }
    }

    /// 取消: an authorization is cancelled at KOMOJU; a captured sale (nothing refunded yet) is
    /// refunded whole, which is how KOMOJU takes a captured card payment back.
    async fn cancel(&self, token: &str, key: &str) -> Result<(), ConnectorError> {
        let p = self.payment(token).await?;
        match p["status"].as_str() {
            Some("cancelled") => Ok(()),
            Some("authorized") => self.post(token, "cancel", key, None).await.map(|_| ()),
            Some("captured") if p["amount_refunded"].as_i64().unwrap_or(0) == 0 => {
                let amount = p["amount"].as_i64().unwrap_or(0);
                self.post(token, "refund", key, Some(&json!({ "amount": amount })))
                    .await
                    .map(|_| ())
            }
            Some("refunded") if p["amount_refunded"].as_i64() == p["amount"].as_i64() => Ok(()),
            Some(s) => Err(ConnectorError::InvalidState(format!("komoju status {s}"))),
            None => Err(bad("no status")),
        }
    }

    async fn refund(&self, token: &str, amount: i64, key: &str) -> Result<(), ConnectorError> {
        if amount < 1 {
            return Err(ConnectorError::InvalidRequest("amount_not_positive"));
        }
        if !id_ok(token) {
            return Err(ConnectorError::UnknownTransaction);
        }
        self.post(token, "refund", key, Some(&json!({ "amount": amount })))
            .await
            .map(|_| ())
    }

    async fn query(&self, token: &str) -> Result<RemoteStatus, ConnectorError> {
        let p = self.payment(token).await?;
        let status = p["status"]
            .as_str()
            .and_then(status_of)
            .ok_or(bad("unknown status"))?;
        let amount = p["amount"].as_i64().unwrap_or(0);
        let captured = matches!(status, CardStatus::Captured | CardStatus::Refunded);
        Ok(RemoteStatus {
            status,
            authorized_amount: amount,
            captured_amount: if captured { amount } else { 0 },
            refunded_amount: p["amount_refunded"].as_i64().unwrap_or(0),
        })
    }

    /// KOMOJU's public reference has no look-up of a payment by our order number, so an
    /// authorization whose answer was lost (the server stopped between KOMOJU's answer and our
    /// commit) cannot be found: reconciliation fails our payment after the hold time, and the
    /// uncaptured authorization lapses at the issuer (no money moves; docs/komoju.md §4f).
    async fn find_authorization(
        &self,
        _payment_id: &str,
    ) -> Result<Option<FoundAuthorization>, ConnectorError> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decline_codes_and_statuses_map() {
        assert_eq!(
            decline_of("insufficient_funds"),
            Some(DeclineReason::InsufficientFunds)
        );
        assert_eq!(decline_of("card_expired"), Some(DeclineReason::ExpiredCard));
        assert_eq!(decline_of("missing_parameter"), None);
        assert_eq!(status_of("authorized"), Some(CardStatus::Authorized));
        assert_eq!(status_of("expired"), Some(CardStatus::Cancelled));
        assert_eq!(status_of("weird"), None);
        assert!(id_ok("tok_abc-1") && !id_ok("a/b") && !id_ok(""));
    }
}
