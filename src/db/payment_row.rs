//! A stored payment row, decoded into domain types (its own module so that modules the
//! payment writes reach, such as shopper messages, can name it without an import circle).

use serde_json::{json, Value};

use crate::domain::payment::PaymentStatus;
use crate::domain::processor::ConnectorId;
use crate::domain::{BadCode, Method};

/// A stored payment. `method` and `status` decode into domain types; a row whose codes are not
/// ours fails to load (loudly) rather than being read as something else.
#[derive(Clone, Debug, serde::Serialize)]
pub struct PaymentRow {
    pub id: String,
    pub merchant_id: String,
    pub checkout_id: String,
    pub order_id: String,
    pub method: Method,
    pub institution: Option<String>,
    pub status: PaymentStatus,
    pub amount: i64,
    pub captured_amount: i64,
    pub refunded_amount: i64,
    pub fee: i64,
    pub deadline_at: Option<i64>,
    pub paid_at: Option<i64>,
    pub connector_ref: Option<String>,
    pub details: String,
    pub attempts: i64,
    pub created_at: i64,
    pub updated_at: i64,
    /// `sandbox` or the processor account that served the payment.
    pub connector: String,
}

/// The row as stored; [`PaymentRow`] is decoded from it.
#[derive(sqlx::FromRow)]
pub struct StoredPayment {
    id: String,
    merchant_id: String,
    checkout_id: String,
    order_id: String,
    method: String,
    institution: Option<String>,
    status: String,
    amount: i64,
    captured_amount: i64,
    refunded_amount: i64,
    fee: i64,
    deadline_at: Option<i64>,
    paid_at: Option<i64>,
    connector_ref: Option<String>,
    details: String,
    attempts: i64,
    created_at: i64,
    updated_at: i64,
    connector: String,
}

impl<'r, R: sqlx::Row> sqlx::FromRow<'r, R> for PaymentRow
where
    StoredPayment: sqlx::FromRow<'r, R>,
{
    fn from_row(row: &'r R) -> Result<Self, sqlx::Error> {
        let s = StoredPayment::from_row(row)?;
        let bad = |kind: &'static str, value: &str| {
            sqlx::Error::Decode(Box::new(BadCode {
                kind,
                value: value.to_owned(),
            }))
        };
        let method = Method::parse(&s.method).ok_or_else(|| bad("payment method", &s.method))?;
        let status = PaymentStatus::decode(method, &s.status)
            .ok_or_else(|| bad("payment status", &s.status))?;
        Ok(PaymentRow {
            id: s.id,
            merchant_id: s.merchant_id,
            checkout_id: s.checkout_id,
            order_id: s.order_id,
            method,
            institution: s.institution,
            status,
            amount: s.amount,
            captured_amount: s.captured_amount,
            refunded_amount: s.refunded_amount,
            fee: s.fee,
            deadline_at: s.deadline_at,
            paid_at: s.paid_at,
            connector_ref: s.connector_ref,
            details: s.details,
            attempts: s.attempts,
            created_at: s.created_at,
            updated_at: s.updated_at,
            connector: s.connector,
        })
    }
}

impl PaymentRow {
    pub fn details_json(&self) -> Value {
        serde_json::from_str(&self.details).unwrap_or_else(|_| json!({}))
    }

    /// The connector that served this payment; later actions must use the same one.
    pub fn connector_id(&self) -> ConnectorId {
        ConnectorId::parse(&self.connector)
    }
}
