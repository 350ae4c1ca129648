//! Opening a signed order link: authenticate it, check it against the merchant's settings, and
//! create or resume its checkout. Refusals write nothing.

use crate::connectors::registry::MerchantConnectors;
use crate::context::Ctx;
use crate::db::checkouts::CheckoutRow;
use crate::db::merchants::MerchantRow;
use crate::db::Tx;
use crate::db::{checkouts, merchants};
use crate::device::{Device, ViewOverride};
use crate::domain::method::{self, Method};
use crate::domain::order::{url_allowed, OrderLink, RawLink};
use crate::domain::reason::Reason;
use crate::domain::MerchantStatus;
use crate::flows::error::{FlowError, FlowResult, Refused};
use crate::session::Session;

/// A checkout ready to be shown, with the merchant's connectors for its current mode.
pub struct Opened {
    pub merchant: MerchantRow,
    pub checkout: CheckoutRow,
    pub connectors: MerchantConnectors,
}

pub async fn open_link(
    state: &Ctx,
    fields: Vec<(String, String)>,
    device: Device,
) -> FlowResult<Opened> {
    let raw = RawLink::parse(fields)?;
    let (merchant, secret, existing) = merchants::link_lookup(
        &state.db,
        &state.keys,
        raw.get("merchant_id"),
        raw.get("key_id"),
        raw.get("order_id"),
    )
    .await?;
    if !crate::signing::verify(&secret, &raw.canonical(), raw.get("signature")) {
        return Err(FlowError::shopper(Reason::BadSignature));
    }
    let link = OrderLink::from_raw(&raw, state.now_s())?;
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
        return Err(FlowError::shopper(Reason::MethodsUnavailable));
    }
    if !method::amount_fits_some(&methods, link.amount) {
        return Err(FlowError::shopper(Reason::AmountOverLimit));
    }
    let checkout = match existing {
        Some(c) if c.content_hash != link.content_hash() => {
            return Err(FlowError::shopper(Reason::OrderConflict))
        }
        Some(c) => c,
        None => {
            if method::offered(&methods, &methods, device, link.amount).is_empty() {
                return Err(FlowError::shopper(Reason::NoMethodAvailable));
            }
            let c = checkouts::insert_or_get(&state.db, &link, &methods, state.now_ms()).await?;
            if c.content_hash != link.content_hash() {
                return Err(FlowError::shopper(Reason::OrderConflict));
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

/// Records the shopper's choice of method on an open checkout. A re-post of the method the
/// checkout (as this request read it) already has writes nothing: the conditional update
/// would change no row, but it would still queue on SQLite's single writer.
pub async fn record_choice(state: &Ctx, o: &Opened, method: Method) -> FlowResult<()> {
    if o.checkout
        .selected_method
        .as_deref()
        .and_then(Method::parse)
        == Some(method)
    {
        return Ok(());
    }
    checkouts::select_method(&state.db, &o.checkout.id, method, state.now_ms()).await?;
    Ok(())
}

/// Issues a fresh session token for a checkout: a new session, started now.
pub fn new_session(state: &Ctx, checkout_id: &str, view: ViewOverride) -> String {
    let now = state.now_s();
    session_token(state, checkout_id, now, view)
}

/// A new token for a running session (the layout switch): a fresh idle lifetime, but the
/// session keeps its start, so renewing never extends it past `KAKEHASHI_SESSION_MAX_S`.
pub fn renew_session(state: &Ctx, session: &Session, view: ViewOverride) -> String {
    session_token(state, &session.checkout_id, session.started_at, view)
}

/// A token for the PC → phone hand-off (the QR code): usable for `ttl_s` only, any layout (the
/// phone's browser decides), and still bounded by the absolute lifetime of the PC's session, so
/// handing off never extends a session.
pub fn handoff_session(state: &Ctx, session: &Session, ttl_s: i64) -> String {
    let ttl = ttl_s.min(state.config.session_ttl_s);
    token_until(
        state,
        &session.checkout_id,
        session.started_at,
        ttl,
        ViewOverride::Auto,
    )
}

fn session_token(state: &Ctx, checkout_id: &str, started_at: i64, view: ViewOverride) -> String {
    token_until(
        state,
        checkout_id,
        started_at,
        state.config.session_ttl_s,
        view,
    )
}

fn token_until(
    state: &Ctx,
    checkout_id: &str,
    started_at: i64,
    ttl_s: i64,
    view: ViewOverride,
) -> String {
    let ttl_end = state.now_s().saturating_add(ttl_s);
    let max_end = started_at.saturating_add(state.config.session_max_s);
    Session {
        checkout_id: checkout_id.to_owned(),
        started_at,
        expires_at: ttl_end.min(max_end),
        view,
    }
    .token(&state.secret)
}

/// Authenticates a session token: `None` if forged, expired or past its absolute lifetime.
pub fn verify_session(state: &Ctx, token: &str) -> Option<Session> {
    Session::verify(
        token,
        &state.secret,
        state.now_s(),
        state.config.session_max_s,
    )
}

/// Loads the checkout and merchant of a session token.
pub async fn load_session(state: &Ctx, token: &str) -> FlowResult<(Session, Opened)> {
    let session = verify_session(state, token).ok_or(FlowError::shopper(Reason::SessionExpired))?;
    let (checkout, merchant) = checkouts::get_with_merchant(&state.db, &session.checkout_id)
        .await?
        .ok_or(FlowError::shopper(Reason::SessionExpired))?;
    let merchant = merchant.ok_or(FlowError::shopper(Reason::UnknownMerchant))?;
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

/// A link for `order_fields` signed with the merchant's newest key, valid until `expires_at_s`:
/// `(key_id, fields with signature, query string)`.
pub async fn sign(
    state: &Ctx,
    merchant_id: &str,
    order_fields: &[(String, String)],
    expires_at_s: i64,
) -> FlowResult<(Vec<(String, String)>, String)> {
    let (key_id, secret) = merchants::newest_key(&state.db, &state.keys, merchant_id)
        .await?
        .ok_or_else(|| FlowError::Refused {
            kind: Refused::Conflict,
            code: "no_signing_key",
            message: "the merchant has no active signing key".into(),
        })?;
    let mut fields: Vec<(String, String)> = vec![
        ("merchant_id".into(), merchant_id.to_owned()),
        ("key_id".into(), key_id),
        ("expires_at".into(), expires_at_s.to_string()),
    ];
    fields.extend(order_fields.iter().cloned());
    let pairs: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let query = crate::signing::signed_query(&secret, &pairs);
    let signature = crate::signing::sign(&secret, &crate::signing::canonical(pairs));
    fields.push(("signature".into(), signature));
    Ok((fields, query))
}

/// Signs the order and opens it like a shopper's first visit would: validation with the link
/// rules, then the checkout row. Returns the checkout and its absolute URL.
pub async fn sign_and_open(
    state: &Ctx,
    merchant_id: &str,
    order_fields: &[(String, String)],
    expires_at_s: i64,
) -> FlowResult<(Opened, String)> {
    let (fields, query) = sign(state, merchant_id, order_fields, expires_at_s).await?;
    // PC: the widest set of methods, so a link is refused only when no device could pay.
    let opened = open_link(state, fields, Device::Pc).await?;
    Ok((opened, format!("{}/checkout?{query}", state.public_url)))
}

/// Closes an open checkout that has no live payment, in the caller's transaction. `Ok(true)`
/// when it was closed now, `Ok(false)` when it was already expired.
pub async fn expire_in_tx(tx: &mut Tx, checkout_id: &str, now: i64) -> FlowResult<bool> {
    let conflict = |code: &'static str, message: String| FlowError::Refused {
        kind: Refused::Conflict,
        code,
        message,
    };
    match checkouts::expire_if_open(tx, checkout_id, now).await? {
        checkouts::Expiry::Expired => Ok(true),
        checkouts::Expiry::AlreadyExpired => Ok(false),
        checkouts::Expiry::HasPayment => Err(conflict(
            "payment_exists",
            "the checkout has a payment in progress or done; cancel the payment instead".into(),
        )),
        checkouts::Expiry::NotOpen(status) => Err(conflict(
            "checkout_not_open",
            format!("the checkout is {status}"),
        )),
    }
}

/// Default link lifetime when `expires_in` is not given: one day.
pub const DEFAULT_EXPIRES_IN: i64 = 24 * 3600;

/// Lifetime in seconds from `expires_in` (default one day); 0 or less is refused here, too long
/// is refused by the link rules (`expiry_too_far`).
pub fn lifetime(expires_in: Option<i64>) -> FlowResult<i64> {
    match expires_in {
        None => Ok(DEFAULT_EXPIRES_IN),
        Some(s) if s > 0 => Ok(s),
        Some(_) => Err(FlowError::field(Reason::InvalidField, "expires_in")),
    }
}
