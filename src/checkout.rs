//! Opening a signed order link: authenticate it, check it against the merchant's settings, and
//! create or resume its checkout. Refusals write nothing.

use crate::connectors::registry::MerchantConnectors;
use crate::db::checkouts::CheckoutRow;
use crate::db::merchants::MerchantRow;
use crate::db::{checkouts, merchants};
use crate::device::{Device, ViewOverride};
use crate::domain::method::{self, Method};
use crate::domain::order::{url_allowed, OrderLink, RawLink};
use crate::error::{AppError, AppResult, Reason};
use crate::session::Session;
use crate::state::AppState;

/// A checkout ready to be shown, with the merchant's connectors for its current mode.
pub struct Opened {
    pub merchant: MerchantRow,
    pub checkout: CheckoutRow,
    pub connectors: MerchantConnectors,
}

pub async fn open_link(
    state: &AppState,
    fields: Vec<(String, String)>,
    device: Device,
) -> AppResult<Opened> {
    let raw = RawLink::parse(fields)?;
    let (merchant, secret) =
        merchants::merchant_with_key(&state.db, raw.get("merchant_id"), raw.get("key_id")).await?;
    if !crate::signing::verify(&secret, &raw.canonical(), raw.get("signature")) {
        return Err(AppError::shopper(Reason::BadSignature));
    }
    let link = OrderLink::from_raw(&raw, state.now_s())?;
    if merchant.status != "active" {
        return Err(AppError::shopper(Reason::MerchantDisabled));
    }
    let origins = merchant.origins();
    if !url_allowed(&link.return_url, &origins) {
        return Err(AppError::field(Reason::ReturnUrlNotAllowed, "return_url"));
    }
    if let Some(u) = &link.cancel_url {
        if !url_allowed(u, &origins) {
            return Err(AppError::field(Reason::ReturnUrlNotAllowed, "cancel_url"));
        }
    }
    let enabled = merchant.methods();
    let requested: Vec<Method> = match &link.methods {
        Some(wanted) => enabled
            .iter()
            .copied()
            .filter(|m| wanted.contains(m))
            .collect(),
        None => enabled,
    };
    // Only methods with a connector in the merchant's mode can be paid: a live merchant is
    // offered exactly what its processor accounts serve.
    let connectors = crate::flows::merchant_connectors(state, &merchant).await?;
    let payable = connectors.methods();
    let methods: Vec<Method> = requested
        .iter()
        .copied()
        .filter(|m| payable.contains(m))
        .collect();
    if methods.is_empty() && !requested.is_empty() {
        return Err(AppError::shopper(Reason::MethodsUnavailable));
    }
    if !method::amount_fits_some(&methods, link.amount) {
        return Err(AppError::shopper(Reason::AmountOverLimit));
    }
    let existing = checkouts::find_by_order(&state.db, &merchant.id, &link.order_id).await?;
    let checkout = match existing {
        Some(c) if c.content_hash != link.content_hash() => {
            return Err(AppError::shopper(Reason::OrderConflict))
        }
        Some(c) => c,
        None => {
            if method::offered(&methods, &methods, device, link.amount).is_empty() {
                return Err(AppError::shopper(Reason::NoMethodAvailable));
            }
            let c = checkouts::insert_or_get(&state.db, &link, &methods).await?;
            if c.content_hash != link.content_hash() {
                return Err(AppError::shopper(Reason::OrderConflict));
            }
            c
        }
    };
    Ok(Opened {
        merchant,
        checkout,
        connectors,
    })
}

/// Issues a fresh session token for a checkout.
pub fn new_session(state: &AppState, checkout_id: &str, view: ViewOverride) -> String {
    Session {
        checkout_id: checkout_id.to_owned(),
        expires_at: state.now_s() + state.config.session_ttl_s,
        view,
    }
    .token(&state.secret)
}

/// Loads the checkout and merchant of a session token.
pub async fn load_session(state: &AppState, token: &str) -> AppResult<(Session, Opened)> {
    let session = Session::verify(token, &state.secret, state.now_s())
        .ok_or(AppError::shopper(Reason::SessionExpired))?;
    let checkout = checkouts::get(&state.db, &session.checkout_id)
        .await?
        .ok_or(AppError::shopper(Reason::SessionExpired))?;
    let merchant = merchants::get(&state.db, &checkout.merchant_id)
        .await?
        .ok_or(AppError::shopper(Reason::UnknownMerchant))?;
    let connectors = crate::flows::merchant_connectors(state, &merchant).await?;
    Ok((
        session,
        Opened {
            merchant,
            checkout,
            connectors,
        },
    ))
}

/// The methods this shopper may pick now: enabled, asked for by the link, possible on this
/// device and amount, and backed by a connector in the merchant's current mode.
pub fn offered(o: &Opened, device: Device) -> Vec<Method> {
    let payable = o.connectors.methods();
    method::offered(
        &o.merchant.methods(),
        &o.checkout.methods(),
        device,
        o.checkout.amount,
    )
    .into_iter()
    .filter(|m| payable.contains(m))
    // A processor's in-browser card form (Stripe.js) does not run on feature phones.
    .filter(|m| {
        !(*m == Method::Card
            && device == Device::FeaturePhone
            && o.connectors.client_card().is_some())
    })
    .collect()
}
