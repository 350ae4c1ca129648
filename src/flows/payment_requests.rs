//! Payment requests by SMS and/or e-mail: a checkout for the order, a short unguessable code
//! (`/s/{code}`), and the SMS (sent at once) or e-mail (through the message outbox) carrying it. The short URL re-signs the order's link on every visit, so it works
//! until the request's own expiry whatever link lifetime the checkout had.

use rand::Rng;

use crate::context::Ctx;
use crate::db::merchants::MerchantRow;
use crate::db::payment_requests as requests;
use crate::db::{checkouts, Db};
use crate::domain::reason::Reason;
use crate::domain::{CheckoutStatus, RequestStatus};
use crate::flows::checkout::{expire_in_tx, sign, sign_and_open};
use crate::flows::error::{FlowError, FlowResult, Refused};
use crate::sms::SmsRow;

/// Short codes: 10 characters of a 32-letter alphabet = 50 bits, from the OS-seeded RNG.
pub const CODE_LEN: usize = 10;
const CODE_ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyz23456789";

pub fn new_code() -> String {
    let mut rng = rand::thread_rng();
    (0..CODE_LEN)
        .map(|_| CODE_ALPHABET[rng.gen_range(0..CODE_ALPHABET.len())] as char)
        .collect()
}

pub use crate::db::payment_requests::RequestRow;

impl RequestRow {
    fn order_fields(&self) -> Vec<(String, String)> {
        serde_json::from_str(&self.link_fields).unwrap_or_default()
    }
}

/// A request's state for the merchant at `now`: `open`, `pending` (a payment is in progress),
/// `paid`, `expired` or `cancelled`.
pub async fn status_of(
    db: &Db,
    r: &RequestRow,
    now: i64,
) -> Result<RequestStatus, crate::db::Error> {
    if r.status == RequestStatus::Cancelled {
        return Ok(RequestStatus::Cancelled);
    }
    let checkout = checkouts::get(db, &r.checkout_id).await?;
    Ok(match checkout.map(|c| c.status) {
        Some(CheckoutStatus::Paid) => RequestStatus::Paid,
        Some(CheckoutStatus::Pending) => RequestStatus::Pending,
        Some(CheckoutStatus::Expired | CheckoutStatus::Cancelled) => RequestStatus::Expired,
        _ if r.expires_at <= now => RequestStatus::Expired,
        _ => RequestStatus::Open,
    })
}

pub fn short_url(state: &Ctx, code: &str) -> String {
    format!("{}/s/{code}", state.public_url)
}

/// What a new request is for.
pub struct NewRequest {
    /// A mobile number to send the SMS to (empty: none).
    pub phone: String,
    /// An address to send the e-mail to (empty: none). At least one of the two.
    pub email: String,
    /// The link's order fields (order id, amount, item, return URL, …).
    pub order_fields: Vec<(String, String)>,
    pub amount: i64,
    pub item_name: String,
    pub expires_in_s: i64,
}

/// Why a payment request was not sent: the SMS rate limit (the API answers 429 with
/// `Retry-After`), or any other flow error. Nothing was written in either case.
#[derive(Debug)]
pub enum SendError {
    RateLimited { retry_after_s: i64 },
    Flow(FlowError),
}

impl From<FlowError> for SendError {
    fn from(e: FlowError) -> Self {
        SendError::Flow(e)
    }
}

impl From<crate::db::Error> for SendError {
    fn from(e: crate::db::Error) -> Self {
        SendError::Flow(e.into())
    }
}

impl From<crate::sms::SendError> for SendError {
    fn from(e: crate::sms::SendError) -> Self {
        match e {
            crate::sms::SendError::RateLimited { retry_after_s } => {
                SendError::RateLimited { retry_after_s }
            }
            crate::sms::SendError::NotConfigured => SendError::Flow(FlowError::conflict(
                "sms_provider_not_configured",
                "no SMS gateway is configured for live merchants on this server \
                 (KAKEHASHI_SMS_HTTP_URL)",
            )),
            crate::sms::SendError::Db(e) => SendError::Flow(e.into()),
        }
    }
}

fn sms_too_long(e: crate::sms::TemplateError) -> FlowError {
    FlowError::refused(Refused::Unprocessable, "sms_too_long", e.to_string())
}

fn not_found(id: &str) -> FlowError {
    FlowError::refused(
        Refused::NotFound,
        "payment_request_not_found",
        format!("no payment request {id}"),
    )
}

/// Quick read-only look at the budget, so a rate-limited request creates nothing at all; the
/// authoritative check is [`crate::sms::reserve_and_queue`] under a lock.
async fn budget_left(state: &Ctx, merchant_id: &str) -> Result<(), SendError> {
    let now = state.now_ms();
    let (count, oldest) = crate::db::sms::sent_since(&state.db, merchant_id, now - 60_000).await?;
    if count >= state.config.sms_rate_per_minute {
        return Err(crate::sms::rate_limited(oldest, now).into());
    }
    Ok(())
}

/// The SMS half of a request: the normalised number, its provider and text.
struct SmsPlan {
    phone: String,
    provider: std::sync::Arc<dyn crate::sms::SmsProvider>,
    text: String,
}

/// Creates the checkout and the request, then sends the SMS and/or queues the e-mail (in the
/// request's transaction). A refused request (no recipient, bad phone or address, bad order
/// fields, message too long, no provider, rate limit) writes nothing. Returns the request and
/// its SMS, if one was sent.
pub async fn create(
    state: &Ctx,
    m: &MerchantRow,
    new: NewRequest,
) -> Result<(RequestRow, Option<SmsRow>), SendError> {
    let (phone_in, email_in) = (new.phone.trim(), new.email.trim());
    if phone_in.is_empty() && email_in.is_empty() {
        return Err(FlowError::refused(
            Refused::Invalid,
            "recipient_required",
            "give phone, email or both",
        )
        .into());
    }
    let email = (!email_in.is_empty()).then(|| email_in.to_owned());
    if email
        .as_deref()
        .is_some_and(|e| !crate::domain::message::valid_email(e))
    {
        return Err(FlowError::refused(
            Refused::Invalid,
            "invalid_email",
            "email is not a valid e-mail address",
        )
        .into());
    }
    let code = new_code();
    let url = short_url(state, &code);
    let sms = if phone_in.is_empty() {
        None
    } else {
        let phone = crate::sms::normalize_phone(phone_in).ok_or_else(|| {
            FlowError::refused(
                Refused::Invalid,
                "invalid_phone",
                "phone must be a Japanese mobile number (070/080/090, 11 digits)",
            )
        })?;
        let provider = state.sms.for_mode(m.mode())?;
        let template = crate::sms::template_of(&state.db, &m.id).await?;
        let text = crate::sms::render_text(&template, &m.name, new.amount, &new.item_name, &url)
            .map_err(sms_too_long)?;
        budget_left(state, &m.id).await?;
        Some(SmsPlan {
            phone,
            provider,
            text,
        })
    };
    let expires_at_s = state.now_s() + crate::flows::checkout::lifetime(Some(new.expires_in_s))?;
    let mut order_fields = new.order_fields;
    if let Some(sms) = &sms {
        if !order_fields.iter().any(|(k, _)| k == "shopper_phone") {
            order_fields.push(("shopper_phone".into(), sms.phone.clone()));
        }
    }
    if let Some(e) = &email {
        if !order_fields.iter().any(|(k, _)| k == "shopper_email") {
            order_fields.push(("shopper_email".into(), e.clone()));
        }
    }
    let lang = order_fields
        .iter()
        .find(|(k, _)| k == "lang")
        .map_or("ja", |(_, v)| if v == "en" { "en" } else { "ja" })
        .to_owned();
    let (opened, _) = sign_and_open(state, &m.id, &order_fields, expires_at_s).await?;
    if opened.checkout.status != CheckoutStatus::Open {
        return Err(FlowError::refused(
            Refused::Conflict,
            "checkout_not_open",
            format!("the order's checkout is {}", opened.checkout.status),
        )
        .into());
    }
    let id = crate::util::random_id("preq", 16);
    let now = state.now_ms();
    let link_fields =
        serde_json::to_string(&order_fields).map_err(|e| FlowError::Internal(e.into()))?;
    let mut tx = state.db.begin().await?;
    let row = requests::NewRequest {
        id: &id,
        merchant_id: &m.id,
        checkout_id: &opened.checkout.id,
        order_id: &opened.checkout.order_id,
        phone: sms.as_ref().map(|s| s.phone.as_str()),
        email: email.as_deref(),
        amount: opened.checkout.amount,
        item_name: &opened.checkout.item_name,
        code: &code,
        link_fields: &link_fields,
        expires_at: expires_at_s * 1000,
    };
    requests::insert(&mut tx, &row, now).await?;
    let sms_id = match &sms {
        Some(s) => Some(
            crate::sms::reserve_and_queue(
                &mut tx,
                state.config.sms_rate_per_minute,
                &m.id,
                Some(&id),
                &s.phone,
                &s.text,
                s.provider.name(),
                now,
            )
            .await?,
        ),
        None => None,
    };
    if let Some(e) = &email {
        crate::db::messages::queue_payment_request(
            &mut tx,
            &m.id,
            &id,
            e,
            &lang,
            crate::domain::message::MessageSource::Link,
            now,
        )
        .await?;
    }
    // The sender polls the outbox twice a second: no wake-up needed for the e-mail.
    tx.commit().await?;
    let msg = match (sms, sms_id) {
        (Some(s), Some(msg_id)) => Some(
            crate::sms::deliver(
                &state.db,
                s.provider.as_ref(),
                &msg_id,
                &s.phone,
                &s.text,
                state.now_ms(),
            )
            .await?,
        ),
        _ => None,
    };
    let req = get(&state.db, &m.id, &id).await?;
    Ok((req, msg))
}

/// The merchant's request, or 404 (other merchants' requests look missing).
pub async fn get(db: &Db, merchant_id: &str, id: &str) -> FlowResult<RequestRow> {
    requests::get(db, merchant_id, id)
        .await?
        .ok_or_else(|| not_found(id))
}

/// Sends the request again (same short URL): the SMS within the rate limit, and the e-mail
/// through the outbox, to wherever the request first went. Returns the new SMS, if any.
pub async fn resend(
    state: &Ctx,
    m: &MerchantRow,
    id: &str,
) -> Result<(RequestRow, Option<SmsRow>), SendError> {
    let r = get(&state.db, &m.id, id).await?;
    let status = status_of(&state.db, &r, state.now_ms()).await?;
    if status != RequestStatus::Open {
        return Err(FlowError::refused(
            Refused::Conflict,
            "payment_request_not_open",
            format!("the payment request is {status}"),
        )
        .into());
    }
    if let Some(e) = r.email.as_deref() {
        let lang = r
            .order_fields()
            .iter()
            .find(|(k, _)| k == "lang")
            .map_or("ja", |(_, v)| if v == "en" { "en" } else { "ja" })
            .to_owned();
        let mut tx = state.db.begin().await?;
        crate::db::messages::queue_payment_request(
            &mut tx,
            &m.id,
            &r.id,
            e,
            &lang,
            crate::domain::message::MessageSource::Staff,
            state.now_ms(),
        )
        .await?;
        tx.commit().await?;
    }
    let Some(phone) = r.phone().map(str::to_owned) else {
        return Ok((r, None));
    };
    let provider = state.sms.for_mode(m.mode())?;
    let template = crate::sms::template_of(&state.db, &m.id).await?;
    let text = crate::sms::render_text(
        &template,
        &m.name,
        r.amount,
        &r.item_name,
        &short_url(state, &r.code),
    )
    .map_err(sms_too_long)?;
    let mut tx = state.db.begin().await?;
    let msg_id = crate::sms::reserve_and_queue(
        &mut tx,
        state.config.sms_rate_per_minute,
        &m.id,
        Some(&r.id),
        &phone,
        &text,
        provider.name(),
        state.now_ms(),
    )
    .await?;
    tx.commit().await?;
    let msg = crate::sms::deliver(
        &state.db,
        provider.as_ref(),
        &msg_id,
        &phone,
        &text,
        state.now_ms(),
    )
    .await?;
    Ok((r, Some(msg)))
}

/// Cancels the request and closes its checkout, unless a payment exists (cancel that instead).
/// Cancelling a cancelled request changes nothing.
pub async fn cancel(state: &Ctx, m: &MerchantRow, id: &str) -> FlowResult<RequestRow> {
    let r = get(&state.db, &m.id, id).await?;
    if r.status == RequestStatus::Cancelled {
        return Ok(r);
    }
    let mut tx = state.db.begin().await?;
    expire_in_tx(&mut tx, &r.checkout_id, state.now_ms()).await?;
    requests::cancel(&mut tx, &r.id, state.now_ms()).await?;
    tx.commit().await?;
    get(&state.db, &m.id, id).await
}

/// Where `/s/{code}` leads: a freshly signed checkout link (path and query) for the request's
/// order. Unknown codes are `not_found`; cancelled or expired requests `link_expired`.
pub async fn resolve(state: &Ctx, code: &str) -> FlowResult<String> {
    if code.len() != CODE_LEN || !code.bytes().all(|b| CODE_ALPHABET.contains(&b)) {
        return Err(FlowError::shopper(Reason::NotFound));
    }
    let r = requests::by_code(&state.db, code)
        .await?
        .ok_or(FlowError::shopper(Reason::NotFound))?;
    if r.status != RequestStatus::Open || r.expires_at <= state.now_ms() {
        return Err(FlowError::shopper(Reason::LinkExpired));
    }
    let (_, query) = sign(
        state,
        &r.merchant_id,
        &r.order_fields(),
        r.expires_at / 1000,
    )
    .await
    .map_err(|e| match e {
        // The merchant retired every signing key: the shopper sees a link error page.
        FlowError::Refused { .. } => FlowError::shopper(Reason::UnknownKey),
        other => other,
    })?;
    Ok(format!("/checkout?{query}"))
}
