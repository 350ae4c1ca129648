//! The one-step redirect methods' shopper routes (bank net, wallets), one set for every method
//! through `flows::redirect`: start (the chosen institution), the return from it, the result
//! page; and the frame their choice pages share.

use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Redirect, Response};
use encoding_rs::UTF_8;

use crate::db::payments;
use crate::device::Device;
use crate::domain::redirect::Institution;
use crate::domain::{CheckoutStatus, Method};
use crate::error::{AppError, AppResult, Reason};
use crate::flows::checkout::{self, Opened};
use crate::flows::redirect::{self as flow, RedirectMethod};
use crate::form;
use crate::pages::{Chrome, OrderView};
use crate::routes::redirect_result;
use crate::routes::shopper::{ShopperForm, ShopperPage};
use crate::state::AppState;

/// What a method's choice page starts from: its chrome and order summary, or (`Err`) where to go
/// instead — back to the selector when the checkout is no longer open. A method not offered to
/// this checkout on this device is refused.
pub fn choice_frame(
    state: &AppState,
    o: &Opened,
    token: &str,
    device: Device,
    method: Method,
) -> AppResult<Result<(Chrome, OrderView), Response>> {
    if o.checkout.status != CheckoutStatus::Open {
        return Ok(Err(Redirect::to(&format!("/pay/{token}")).into_response()));
    }
    if !checkout::offered(o, device).contains(&method) {
        return Err(AppError::shopper(Reason::MethodNotAvailable));
    }
    let c = Chrome::new(
        state,
        device,
        &o.merchant.name,
        &o.merchant.theme,
        &o.checkout.lang,
    )
    .test_mode(o.merchant.mode() == crate::domain::Mode::Test)
    .with_switch(device, token);
    let order = OrderView::new(
        &o.checkout.order_id,
        &o.checkout.item_name,
        o.checkout.amount,
    );
    Ok(Ok((c, order)))
}

/// `POST /pay/{token}/{method}`: creates the payment and sends the shopper to the institution.
pub async fn start<M: RedirectMethod>(
    State(state): State<AppState>,
    f: ShopperForm,
) -> AppResult<Response> {
    let i = M::Institution::parse(f.get(M::FIELD))
        .ok_or(AppError::field(Reason::InvalidField, M::FIELD))?;
    let p = &f.page;
    let url = flow::start::<M>(&state, &p.o, &p.token, p.device, i).await?;
    Ok(Redirect::to(&url).into_response())
}

/// `GET /pay/{token}/{method}/return/{payment_id}?...&sig=`: back from the institution.
pub async fn back<M: RedirectMethod>(
    State(state): State<AppState>,
    Path((token, payment_id)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> AppResult<Response> {
    let session = checkout::verify_session(&state, &token)
        .ok_or(AppError::shopper(Reason::SessionExpired))?;
    let params = form::decode(query.unwrap_or_default().as_bytes(), UTF_8);
    flow::handle_return::<M>(&state, &session.checkout_id, &payment_id, &params).await?;
    // Redirect so that a reload shows the result instead of replaying the answer.
    Ok(Redirect::to(&format!("/pay/{token}/{}/result/{payment_id}", M::METHOD)).into_response())
}

/// `GET /pay/{token}/{method}/result/{payment_id}`: paid, failed, timed out or still waiting.
pub async fn result<M: RedirectMethod>(
    State(state): State<AppState>,
    Path((_, payment_id)): Path<(String, String)>,
    ShopperPage { token, o, device }: ShopperPage,
) -> AppResult<Response> {
    let device = match device {
        // These methods are never started on a feature phone; show the PC page if one arrives.
        Device::FeaturePhone => Device::Pc,
        d => d,
    };
    let p = payments::get(&state.db, &payment_id)
        .await?
        .filter(|p| p.checkout_id == o.checkout.id && p.method == M::METHOD)
        .ok_or(AppError::shopper(Reason::NotFound))?;
    let en = o.checkout.lang == "en";
    let institution = p
        .institution
        .as_deref()
        .and_then(M::Institution::parse)
        .filter(|_| M::RESULT_NAMES_INSTITUTION);
    let name = match (institution, en) {
        (Some(i), true) => i.name_en(),
        (Some(i), false) => i.name_ja(),
        (None, true) => M::METHOD.name_en(),
        (None, false) => M::METHOD.name_ja(),
    };
    let r = redirect_result::result_view(&state, &o, &token, &p, name).await?;
    redirect_result::render_result(&state, device, &o, r)
}
