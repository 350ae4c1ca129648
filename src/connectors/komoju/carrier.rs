//! KOMOJU carrier billing (d払い, auかんたん決済, ソフトバンクまとめて支払い) through its redirect flow,
//! built only from KOMOJU's public reference:
//!
//! - `POST /api/v1/payments` with `payment_details[type]` `docomo` / `au` / `softbank` and a
//!   `return_url`; the answer is a `pending` payment whose `payment_details.redirect_url` is the
//!   carrier's page (doc.komoju.com/docs/payment-details, "redirect" payment types;
//!   docs.komoju.com/en/api/resources/payments "Create a payment").
//! - `GET /api/v1/payments/{id}`: the status decides (`captured` paid, `failed` declined,
//!   `cancelled` / `expired` abandoned, `pending` / `authorized` still waiting; statuses as in
//!   ja.doc.komoju.com/reference/payments-2 "Payment Statuses").
//! - `POST /api/v1/payments/{id}/refund` (whole amount; ja.doc.komoju.com/reference/
//!   post_payments-id-refund) and `POST /api/v1/payments/{id}/cancel` for one not yet captured.
//!
//! KOMOJU's overview (docs.komoju.com/en/api/overview) lists Carrier Billing among the API's
//! methods, but the reference pages do not spell out its `payment_details`: the type names above
//! and the `redirect_url` answer follow KOMOJU's other redirect types and must be confirmed on a
//! KOMOJU test account before going live (docs/komoju.md says so). Anything else in an answer
//! is refused, never guessed at.
//!
//! The return URL we give KOMOJU carries our payment id, carrier and amount, HMAC-signed with a
//! key derived from the account's secret key, so a forged return is refused before KOMOJU is
//! asked; the outcome itself always comes from the payment retrieved server-side.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{json, Value};
use zeroize::Zeroizing;

use super::{redirect, ApiError, KomojuApi};
use crate::connectors::carrier::{
    percent_encode, required, verify_signed_params, CancelRequest, CarrierConnector,
    CarrierOutcome, CarrierResult, ConnectorError, ContinuousChargeOutcome,
    ContinuousChargeRequest, Retrieved, ReturnError, StartOutcome, StartRequest, RETURN_MAX_AGE_MS,
    TS_FIELD,
};
use crate::domain::carrier::{BillingKind, Carrier};

/// Code of a continuous-billing start or monthly charge: KOMOJU's carrier types are one-off.
pub const CONTINUOUS_UNSUPPORTED: &str = "komoju_continuous_unsupported";
/// The fields of our signed return (anything else KOMOJU adds is dropped, never read).
const RETURN_FIELDS: [&str; 5] = ["payment_id", "carrier", "amount", TS_FIELD, "sig"];

/// KOMOJU's `payment_details[type]` of a carrier.
pub fn type_of(c: Carrier) -> &'static str {
    match c {
        Carrier::Docomo => "docomo",
        Carrier::Au => "au",
        Carrier::Softbank => "softbank",
    }
}

fn carrier_of_type(t: &str) -> Option<Carrier> {
    Carrier::all().iter().copied().find(|c| type_of(*c) == t)
}

/// A KOMOJU payment's status as a carrier outcome (`None`: a status we do not know).
pub fn outcome_of(p: &Value) -> Option<CarrierOutcome> {
    Some(match p["status"].as_str()? {
        "captured" | "refunded" => CarrierOutcome::Approved {
            carrier_txn_id: p["id"].as_str()?.to_owned(),
            subscription_ref: None,
        },
        "failed" => CarrierOutcome::Declined,
        "cancelled" | "expired" => CarrierOutcome::Cancelled,
        "pending" | "authorized" => CarrierOutcome::Pending,
        _ => return None,
    })
}

/// The carrier connector of one KOMOJU account.
pub struct KomojuCarrier {
    pub(super) api: Arc<KomojuApi>,
    pub(super) key: Zeroizing<String>,
}

impl KomojuCarrier {
    /// The key our return URLs are signed with: derived from the account's secret key, so it is
    /// per account and never leaves this server.
    fn return_key(&self) -> Vec<u8> {
        crate::signing::hmac_bytes(self.key.as_bytes(), b"kakehashi-komoju-return").to_vec()
    }

    fn refused(e: ApiError) -> ConnectorError {
        redirect::refused(e, "carrier")
    }

    async fn payment(&self, id: &str) -> Result<Value, ConnectorError> {
        let path = format!("/api/v1/payments/{}", percent_encode(id));
        self.api
            .call(&self.key, reqwest::Method::GET, &path, None, None)
            .await
            .map_err(Self::refused)
    }

    async fn action(
        &self,
        id: &str,
        action: &str,
        key: &str,
        body: Value,
    ) -> Result<(), ConnectorError> {
        let path = format!("/api/v1/payments/{}/{action}", percent_encode(id));
        self.api
            .call(
                &self.key,
                reqwest::Method::POST,
                &path,
                Some(key),
                Some(&body),
            )
            .await
            .map(|_| ())
            .map_err(Self::refused)
    }
}

#[async_trait]
impl CarrierConnector for KomojuCarrier {
    async fn start(&self, req: &StartRequest) -> Result<StartOutcome, ConnectorError> {
        if req.payment_id.is_empty() {
            return Err(ConnectorError::InvalidRequest("payment_id_missing"));
        }
        if req.amount < 1 {
            return Err(ConnectorError::InvalidRequest("amount_not_positive"));
        }
        if req.return_url.contains('?') {
            return Err(ConnectorError::InvalidRequest("return_url_has_query"));
        }
        // Our feature-phone rule holds whoever serves the carrier: only d払い works there.
        if req.feature_phone && !req.carrier.available_on_feature_phone() {
            return Err(ConnectorError::NotAvailableOnFeaturePhone);
        }
        if req.billing == BillingKind::Continuous {
            return Err(ConnectorError::InvalidRequest(CONTINUOUS_UNSUPPORTED));
        }
        let created = redirect::create(
            &self.api,
            &self.key,
            &self.return_key(),
            &redirect::NewPayment {
                payment_id: &req.payment_id,
                amount: req.amount,
                return_url: &req.return_url,
                paid_with: ("carrier", req.carrier.code()),
                komoju_type: type_of(req.carrier),
            },
            "carrier",
        )
        .await?;
        Ok(StartOutcome {
            session_id: created.id,
            redirect_url: created.redirect_url,
        })
    }

    /// A KOMOJU return is never read alone: see [`CarrierConnector::confirm_return`].
    async fn verify_return(
        &self,
        _params: &[(String, String)],
        _now_ms: i64,
    ) -> Result<CarrierResult, ConnectorError> {
        Err(ReturnError::MissingField("session").into())
    }

    async fn confirm_return(
        &self,
        params: &[(String, String)],
        session_id: &str,
        now_ms: i64,
    ) -> Result<CarrierResult, ConnectorError> {
        let ours: Vec<(String, String)> = params
            .iter()
            .filter(|(k, _)| RETURN_FIELDS.contains(&k.as_str()))
            .cloned()
            .collect();
        let f = verify_signed_params(&self.return_key(), &ours, now_ms, RETURN_MAX_AGE_MS)?;
        let carrier =
            Carrier::parse(required(&f, "carrier")?).ok_or(ReturnError::InvalidField("carrier"))?;
        let payment_id = required(&f, "payment_id")?.to_owned();
        let r = self
            .retrieve(session_id)
            .await?
            .ok_or(ConnectorError::Unavailable("komoju: no payment".into()))?;
        if r.payment_id.as_deref() != Some(payment_id.as_str()) || r.carrier != Some(carrier) {
            return Err(ReturnError::InvalidField("payment_id").into());
        }
        Ok(CarrierResult {
            payment_id,
            session_id: session_id.to_owned(),
            carrier,
            amount: r.amount,
            outcome: r.outcome,
        })
    }

    async fn retrieve(&self, session_id: &str) -> Result<Option<Retrieved>, ConnectorError> {
        let p = self.payment(session_id).await?;
        if p["id"].as_str() != Some(session_id) {
            return Err(ConnectorError::Unavailable(
                "komoju answer: another payment".into(),
            ));
        }
        let outcome = outcome_of(&p)
            .ok_or_else(|| ConnectorError::Unavailable("komoju answer: unknown status".into()))?;
        Ok(Some(Retrieved {
            payment_id: p["external_order_num"].as_str().map(str::to_owned),
            carrier: p["payment_details"]["type"]
                .as_str()
                .and_then(carrier_of_type),
            amount: p["amount"].as_i64().unwrap_or(-1),
            outcome,
            refunded: p["status"].as_str() == Some("refunded"),
        }))
    }

    /// Undoes a charge: a captured one is refunded whole, one still waiting is cancelled, one
    /// already refunded, cancelled, expired or failed needs nothing (so a retry is harmless).
    async fn cancel(&self, req: &CancelRequest) -> Result<(), ConnectorError> {
        let CancelRequest::Charge {
            carrier_txn_id,
            amount,
            ..
        } = req
        else {
            return Err(ConnectorError::InvalidRequest(CONTINUOUS_UNSUPPORTED));
        };
        let p = self.payment(carrier_txn_id).await?;
        match p["status"].as_str() {
            Some("captured") => {
                self.action(
                    carrier_txn_id,
                    "refund",
                    &format!("refund-{carrier_txn_id}"),
                    json!({ "amount": amount }),
                )
                .await
            }
            Some("pending" | "authorized") => {
                self.action(
                    carrier_txn_id,
                    "cancel",
                    &format!("cancel-{carrier_txn_id}"),
                    json!({}),
                )
                .await
            }
            Some("refunded" | "cancelled" | "expired" | "failed") => Ok(()),
            _ => Err(ConnectorError::Unavailable(
                "komoju answer: unknown status".into(),
            )),
        }
    }

    fn continuous(&self) -> bool {
        false
    }

    async fn charge_continuous(
        &self,
        _req: &ContinuousChargeRequest,
    ) -> Result<ContinuousChargeOutcome, ConnectorError> {
        Err(ConnectorError::InvalidRequest(CONTINUOUS_UNSUPPORTED))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_outcomes() {
        let p = |s: &str| json!({"id": "kp_1", "status": s});
        assert_eq!(
            outcome_of(&p("captured")),
            Some(CarrierOutcome::Approved {
                carrier_txn_id: "kp_1".into(),
                subscription_ref: None
            })
        );
        assert_eq!(outcome_of(&p("failed")), Some(CarrierOutcome::Declined));
        assert_eq!(outcome_of(&p("expired")), Some(CarrierOutcome::Cancelled));
        assert_eq!(outcome_of(&p("pending")), Some(CarrierOutcome::Pending));
        assert_eq!(outcome_of(&p("weird")), None);
        for c in Carrier::all() {
            assert_eq!(carrier_of_type(type_of(*c)), Some(*c));
        }
    }

    /// Our feature-phone rule and the one-off-only rule hold before KOMOJU is called (the API
    /// base here is unreachable: a call would fail with `carrier_unavailable`).
    #[tokio::test]
    async fn rules_hold_before_komoju_is_called() {
        let c = KomojuCarrier {
            api: Arc::new(KomojuApi::new("http://127.0.0.1:9", true).unwrap()),
            key: Zeroizing::new("sk".into()),
        };
        let mut req = StartRequest {
            payment_id: "pay_1".into(),
            mode: crate::domain::Mode::Live,
            carrier: Carrier::Au,
            amount: 1000,
            billing: BillingKind::OneOff,
            item_name: "x".into(),
            return_url: "https://pay.example.jp/pay/t/au/return/pay_1".into(),
            feature_phone: true,
        };
        let e = c.start(&req).await.unwrap_err();
        assert_eq!(e, ConnectorError::NotAvailableOnFeaturePhone);
        req.feature_phone = false;
        req.billing = BillingKind::Continuous;
        assert_eq!(
            c.start(&req).await.unwrap_err().code(),
            CONTINUOUS_UNSUPPORTED
        );
        req.billing = BillingKind::OneOff;
        assert_eq!(c.start(&req).await.unwrap_err().code(), "unavailable");
    }
}
