//! Payment-method flows: the domain services between thin handlers, connectors and the store.

pub mod bank;
pub mod bench_limit;
pub mod card;
pub mod card_hold;
pub mod carrier;
pub mod carrier_sync;
pub mod checkout;
pub mod client_card;
pub mod error;
pub mod jobs;
pub mod konbini;
pub mod merchant_admin;
pub mod messages;
pub mod number_cancel;
pub mod number_sync;
pub mod owners;
pub mod payment_requests;
pub mod processor_webhooks;
pub mod processors;
pub mod redirect;
pub mod refund_requests;
pub mod repeat;
pub mod saved_cards;
pub mod secrets;
pub mod settlement_terms;
pub mod settlements;
pub mod wallet;

use std::sync::Arc;

use crate::connectors::registry::{MerchantConnectors, Registry};
use crate::context::Ctx;
use crate::db::checkouts::CheckoutRow;
use crate::db::merchants::MerchantRow;
use crate::db::payments::PaymentRow;
use crate::db::{merchants, Db};

/// The merchant's return URL with a signed result appended (`order_id`, `payment_id`,
/// `status`, `merchant_id`, `key_id`, `signature`), signed like order links with the merchant's
/// newest key. The browser's return is a convenience: merchants act on notifications.
pub async fn return_link(
    db: &Db,
    keys: &crate::secrets::Keyring,
    checkout: &CheckoutRow,
    payment: Option<&PaymentRow>,
) -> anyhow::Result<String> {
    let Some((key_id, secret)) = merchants::newest_key(db, keys, &checkout.merchant_id).await?
    else {
        return Ok(checkout.return_url.clone());
    };
    let payment_id = payment.map(|p| p.id.as_str()).unwrap_or("");
    let status = payment.map(|p| p.status.code()).unwrap_or("open");
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
    Ok(crate::util::append_query(&checkout.return_url, &q))
}

/// The merchant's connectors in its current mode, from the registry in the app state. Its
/// processor accounts are read only when it has any and the registry has a driver that could
/// use them, so a sandbox-only merchant costs no extra query per request.
pub async fn merchant_connectors(
    state: &Ctx,
    merchant: &MerchantRow,
) -> Result<MerchantConnectors, crate::db::Error> {
    connectors_for(&state.connectors, &state.db, merchant).await
}

/// [`merchant_connectors`] for jobs and commands that hold a registry but no app state.
pub async fn connectors_for(
    registry: &Arc<Registry>,
    db: &Db,
    merchant: &MerchantRow,
) -> Result<MerchantConnectors, crate::db::Error> {
    let accounts = if registry.uses_accounts() && merchant.processor_accounts > 0 {
        crate::db::processors::for_merchant(db, &merchant.id).await?
    } else {
        Vec::new()
    };
    Ok(registry.merchant(merchant.mode(), accounts))
}
