//! The benchmark's "limit" (issue #21): a signed order link authenticated, checked and turned
//! into the selector's checkout with no database access, so `bench/` can measure how far the real
//! routes are from the cost of HMAC + validation + render alone. Bench-only: the edge mounts it
//! only under `KAKEHASHI_BENCH_LIMIT=1`, because merchants and keys are read once and kept (a
//! retired key or a changed setting is not seen) and the checkout it shows is never stored.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::connectors::registry::MerchantConnectors;
use crate::context::Ctx;
use crate::db::checkouts::CheckoutRow;
use crate::db::merchants::{self, MerchantRow};
use crate::device::Device;
use crate::domain::method::{self, Method};
use crate::domain::order::{url_allowed, OrderLink, RawLink};
use crate::domain::reason::Reason;
use crate::domain::{CheckoutStatus, MerchantStatus, MethodList};
use crate::flows::checkout::Opened;
use crate::flows::error::{FlowError, FlowResult};

/// A merchant with one of its signing keys, opened, and its connectors.
struct Signer {
    merchant: MerchantRow,
    secret: String,
    connectors: MerchantConnectors,
}

/// Merchants by `(merchant_id, key_id)`, loaded on the first link that names them and kept for
/// the life of the process: after that first request the route reads nothing.
#[derive(Default)]
pub struct SignerCache {
    signers: RwLock<HashMap<(String, String), Arc<Signer>>>,
}

impl SignerCache {
    async fn get(&self, state: &Ctx, merchant_id: &str, key_id: &str) -> FlowResult<Arc<Signer>> {
        let key = (merchant_id.to_owned(), key_id.to_owned());
        if let Some(s) = self.read().get(&key) {
            return Ok(s.clone());
        }
        // Refusals (unknown merchant or key) are not cached: a later, valid link still loads.
        let (merchant, secret) =
            merchants::merchant_with_key(&state.db, &state.keys, merchant_id, key_id).await?;
        let connectors = crate::flows::merchant_connectors(state, &merchant).await?;
        let signer = Arc::new(Signer {
            merchant,
            secret,
            connectors,
        });
        self.signers
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(key, signer.clone());
        Ok(signer)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<(String, String), Arc<Signer>>> {
        // A panic while holding the lock leaves the map whole (inserts are single calls).
        self.signers
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The checks of [`crate::flows::checkout::open_link`] (signature, link rules, merchant status,
/// return URLs, methods, amount limits) against the cached merchant, and the checkout a first
/// visit would create, built in memory and never stored.
pub async fn open(
    state: &Ctx,
    cache: &SignerCache,
    fields: Vec<(String, String)>,
    device: Device,
) -> FlowResult<Opened> {
    let raw = RawLink::parse(fields)?;
    let signer = cache
        .get(state, raw.get("merchant_id"), raw.get("key_id"))
        .await?;
    if !crate::signing::verify(&signer.secret, &raw.canonical(), raw.get("signature")) {
        return Err(FlowError::shopper(Reason::BadSignature));
    }
    let link = OrderLink::from_raw(&raw, state.now_s())?;
    let merchant = &signer.merchant;
    if merchant.status != MerchantStatus::Active {
        return Err(FlowError::shopper(Reason::MerchantDisabled));
    }
    let origins = merchant.origins();
    if !url_allowed(&link.return_url, &origins) {
        return Err(FlowError::field(Reason::ReturnUrlNotAllowed, "return_url"));
    }
    if let Some(u) = &link.cancel_url {
        if !url_allowed(u, &origins) {
            return Err(FlowError::field(Reason::ReturnUrlNotAllowed, "cancel_url"));
        }
    }
    let requested: Vec<Method> = merchant
        .methods()
        .into_iter()
        .filter(|m| link.methods.as_ref().is_none_or(|w| w.contains(m)))
        .collect();
    let payable = signer.connectors.methods();
    let methods: Vec<Method> = requested
        .iter()
        .copied()
        .filter(|m| payable.contains(m))
        .collect();
    if methods.is_empty() && !requested.is_empty() {
        return Err(FlowError::shopper(Reason::MethodsUnavailable));
    }
    if !method::amount_fits_some(&methods, link.amount) {
        return Err(FlowError::shopper(Reason::AmountOverLimit));
    }
    if method::offered(&methods, &methods, device, link.amount).is_empty() {
        return Err(FlowError::shopper(Reason::NoMethodAvailable));
    }
    let now = state.now_ms();
    let checkout = CheckoutRow {
        // Never stored: a session token for it finds no checkout (`session_expired`).
        id: format!("co_limit_{}", link.order_id),
        merchant_id: link.merchant_id.clone(),
        content_hash: link.content_hash(),
        order_id: link.order_id,
        amount: link.amount,
        item_name: link.item_name,
        shopper_name: link.shopper_name,
        shopper_kana: link.shopper_kana,
        shopper_email: link.shopper_email,
        shopper_phone: link.shopper_phone,
        methods: MethodList(methods),
        return_url: link.return_url,
        cancel_url: link.cancel_url,
        konbini_days: link.konbini_days,
        lang: link.lang,
        status: CheckoutStatus::Open,
        selected_method: None,
        customer_ref: link.customer_id,
        created_at: now,
        updated_at: now,
    };
    Ok(Opened {
        merchant: merchant.clone(),
        checkout,
        connectors: signer.connectors.clone(),
    })
}
