//! Payment-method flows: the domain services between thin handlers, connectors and the store.

pub mod bank;
pub mod card;
pub mod carrier;
pub mod konbini;
pub mod redirect;

use crate::db::checkouts::CheckoutRow;
use crate::db::{merchants, Db};
use crate::payments::PaymentRow;

/// The merchant's return URL with a signed result appended (`order_id`, `payment_id`,
/// `status`, `merchant_id`, `key_id`, `signature`), signed like order links with the merchant's
/// newest key. The browser's return is a convenience: merchants act on notifications.
pub async fn return_link(
    db: &Db,
    checkout: &CheckoutRow,
    payment: Option<&PaymentRow>,
) -> Result<String, sqlx::Error> {
    let Some((key_id, secret)) = merchants::newest_key(db, &checkout.merchant_id).await? else {
        return Ok(checkout.return_url.clone());
    };
    let payment_id = payment.map(|p| p.id.as_str()).unwrap_or("");
    let status = payment.map(|p| p.status.as_str()).unwrap_or("open");
    let q = crate::signing::signed_query(
        &secret,
        &[
            ("merchant_id", checkout.merchant_id.as_str()),
            ("key_id", key_id.as_str()),
            ("order_id", checkout.order_id.as_str()),
            ("payment_id", payment_id),
            ("status", status),
        ],
    );
    let sep = if checkout.return_url.contains('?') {
        '&'
    } else {
        '?'
    };
    Ok(format!("{}{sep}{q}", checkout.return_url))
}
