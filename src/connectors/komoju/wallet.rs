//! KOMOJU wallets (PayPay, au PAY, メルペイ, 楽天ペイ, Paidy, LINE Pay) through its redirect flow,
//! built only from KOMOJU's public reference:
//!
//! - payment type slugs `paypay`, `aupay`, `merpay`, `paidy`, `linepay`
//!   (ja.doc.komoju.com/docs/supported-payment-methods) and `rakutenpay`
//!   (docs.komoju.com/ja/hosted_page/legacy, 決済(支払い)方法);
//! - `POST /api/v1/payments` with `payment_details[type]` and a `return_url`: a `pending`
//!   payment whose `payment_details.redirect_url` is the wallet's page
//!   (ja.doc.komoju.com/docs/payment-details, redirect types; docs.komoju.com/ja/api/resources/
//!   payments "Create a payment");
//! - `GET /api/v1/payments/{id}`: the status decides (`captured` paid, `failed` / `cancelled` /
//!   `expired` refused, `pending` / `authorized` still waiting; ja.doc.komoju.com/reference/
//!   payments-2 "Payment Statuses");
//! - `POST /api/v1/payments/{id}/refund` with `amount` (partial refunds allowed;
//!   ja.doc.komoju.com/reference/post_payments-id-refund);
//! - `POST /api/v1/payments/{id}/cancel`: a `pending` payment becomes `cancelled` and can no
//!   longer be completed (docs.komoju.com/en/api/resources, "Cancel a payment"), for the
//!   reconciliation sweep's abandoned payments.
//!
//! The return URL we give KOMOJU carries our payment id, wallet and amount, HMAC-signed with a
//! key derived from the account's secret key; the outcome always comes from the payment
//! retrieved server-side, never from the browser.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{json, Value};
use zeroize::Zeroizing;

use super::{redirect, ApiError, KomojuApi};
use crate::connectors::signed_return::{
    percent_encode, required, verify_signed_params, ReturnError, RETURN_MAX_AGE_MS, TS_FIELD,
};
use crate::connectors::wallet::{
    ConnectorError, RefundRequest, Retrieved, StartOutcome, StartRequest, WalletConnector,
    WalletOutcome, WalletResult,
};
use crate::domain::wallet::Wallet;

/// The fields of our signed return (anything else KOMOJU adds is dropped, never read).
const RETURN_FIELDS: [&str; 5] = ["payment_id", "wallet", "amount", TS_FIELD, "sig"];

/// KOMOJU's `payment_details[type]` of a wallet.
pub fn type_of(w: Wallet) -> &'static str {
    match w {
        Wallet::PayPay => "paypay",
        Wallet::AuPay => "aupay",
        Wallet::Merpay => "merpay",
        Wallet::RakutenPay => "rakutenpay",
        Wallet::Paidy => "paidy",
        Wallet::LinePay => "linepay",
    }
}

fn wallet_of_type(t: &str) -> Option<Wallet> {
    Wallet::ALL.into_iter().find(|w| type_of(*w) == t)
}

/// A KOMOJU payment's status as a wallet outcome (`None`: a status we do not know).
pub fn outcome_of(p: &Value) -> Option<WalletOutcome> {
    Some(match p["status"].as_str()? {
        "captured" | "refunded" => WalletOutcome::Paid {
            txn_id: p["id"].as_str()?.to_owned(),
        },
        "failed" | "cancelled" | "expired" => WalletOutcome::Declined,
        "pending" | "authorized" => WalletOutcome::Pending,
        _ => return None,
    })
}

/// The wallet connector of one KOMOJU account.
pub struct KomojuWallet {
    pub(super) api: Arc<KomojuApi>,
    pub(super) key: Zeroizing<String>,
}

impl KomojuWallet {
    /// The key our return URLs are signed with: derived from the account's secret key (its own
    /// purpose, so a carrier return can never pass as a wallet one).
    fn return_key(&self) -> Vec<u8> {
        crate::signing::hmac_bytes(self.key.as_bytes(), b"kakehashi-komoju-wallet-return").to_vec()
    }

    fn refused(e: ApiError) -> ConnectorError {
        redirect::refused(e, "wallet")
    }

    async fn payment(&self, id: &str) -> Result<Value, ConnectorError> {
        let path = format!("/api/v1/payments/{}", percent_encode(id));
        let p = self
            .api
            .call(&self.key, reqwest::Method::GET, &path, None, None)
            .await
            .map_err(Self::refused)?;
        if p["id"].as_str() != Some(id) {
            return Err(ConnectorError::Unavailable(
                "komoju answer: another payment".into(),
            ));
        }
        Ok(p)
    }
}

#[async_trait]
impl WalletConnector for KomojuWallet {
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
        let created = redirect::create(
            &self.api,
            &self.key,
            &self.return_key(),
            &redirect::NewPayment {
                payment_id: &req.payment_id,
                amount: req.amount,
                return_url: &req.return_url,
                paid_with: ("wallet", req.wallet.code()),
                komoju_type: type_of(req.wallet),
            },
            "wallet",
        )
        .await?;
        Ok(StartOutcome {
            session_id: created.id,
            redirect_url: created.redirect_url,
        })
    }

    async fn confirm_return(
        &self,
        params: &[(String, String)],
        session_id: &str,
        now_ms: i64,
    ) -> Result<WalletResult, ConnectorError> {
        let ours: Vec<(String, String)> = params
            .iter()
            .filter(|(k, _)| RETURN_FIELDS.contains(&k.as_str()))
            .cloned()
            .collect();
        let f = verify_signed_params(&self.return_key(), &ours, now_ms, RETURN_MAX_AGE_MS)?;
        let wallet =
            Wallet::parse(required(&f, "wallet")?).ok_or(ReturnError::InvalidField("wallet"))?;
        let payment_id = required(&f, "payment_id")?.to_owned();
        let p = self.payment(session_id).await?;
        let outcome = outcome_of(&p)
            .ok_or_else(|| ConnectorError::Unavailable("komoju answer: unknown status".into()))?;
        if p["external_order_num"].as_str() != Some(payment_id.as_str())
            || p["payment_details"]["type"]
                .as_str()
                .and_then(wallet_of_type)
                != Some(wallet)
        {
            return Err(ReturnError::InvalidField("payment_id").into());
        }
        Ok(WalletResult {
            payment_id,
            session_id: session_id.to_owned(),
            wallet,
            amount: p["amount"].as_i64().unwrap_or(-1),
            outcome,
        })
    }

    async fn retrieve(&self, session_id: &str) -> Result<Option<Retrieved>, ConnectorError> {
        let p = self.payment(session_id).await?;
        let outcome = outcome_of(&p)
            .ok_or_else(|| ConnectorError::Unavailable("komoju answer: unknown status".into()))?;
        Ok(Some(Retrieved {
            payment_id: p["external_order_num"].as_str().map(str::to_owned),
            wallet: p["payment_details"]["type"]
                .as_str()
                .and_then(wallet_of_type),
            amount: p["amount"].as_i64().unwrap_or(-1),
            outcome,
            refunded: p["status"].as_str() == Some("refunded"),
        }))
    }

    /// Cancels a payment still waiting for the shopper; one KOMOJU already reports cancelled or
    /// expired needs nothing, so a retry is harmless. A captured one is refused: the sweep then
    /// records it as paid.
    async fn cancel(&self, session_id: &str) -> Result<(), ConnectorError> {
        let p = self.payment(session_id).await?;
        match p["status"].as_str() {
            Some("pending" | "authorized") => {
                let path = format!("/api/v1/payments/{}/cancel", percent_encode(session_id));
                self.api
                    .call(
                        &self.key,
                        reqwest::Method::POST,
                        &path,
                        Some(&format!("cancel-{session_id}")),
                        Some(&json!({})),
                    )
                    .await
                    .map(|_| ())
                    .map_err(Self::refused)
            }
            Some("cancelled" | "expired" | "failed") => Ok(()),
            _ => Err(ConnectorError::InvalidState(
                "komoju payment is no longer waiting".into(),
            )),
        }
    }

    /// Refunds `amount` of a captured payment, with our idempotency key: KOMOJU answers a
    /// repeated key as it did the first time, so a retry after a lost answer refunds once.
    async fn refund(&self, req: &RefundRequest) -> Result<(), ConnectorError> {
        if req.amount < 1 {
            return Err(ConnectorError::InvalidRequest("amount_not_positive"));
        }
        let path = format!(
            "/api/v1/payments/{}/refund",
            percent_encode(&req.session_id)
        );
        self.api
            .call(
                &self.key,
                reqwest::Method::POST,
                &path,
                Some(&req.idempotency_key),
                Some(&json!({ "amount": req.amount })),
            )
            .await
            .map(|_| ())
            .map_err(Self::refused)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_outcomes_and_types_round_trip() {
        let p = |s: &str| json!({"id": "kp_1", "status": s});
        assert_eq!(
            outcome_of(&p("captured")),
            Some(WalletOutcome::Paid {
                txn_id: "kp_1".into()
            })
        );
        assert_eq!(outcome_of(&p("failed")), Some(WalletOutcome::Declined));
        assert_eq!(outcome_of(&p("expired")), Some(WalletOutcome::Declined));
        assert_eq!(outcome_of(&p("pending")), Some(WalletOutcome::Pending));
        assert_eq!(outcome_of(&p("weird")), None);
        for w in Wallet::ALL {
            assert_eq!(wallet_of_type(type_of(w)), Some(w));
        }
    }
}
