//! Bank net (銀行ネット) shopper pages: choose a bank, come back from it, see the result.

use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Redirect, Response};
use encoding_rs::UTF_8;

use crate::db::payments;
use crate::device::Device;
use crate::domain::bank::Bank;
use crate::domain::CheckoutStatus;
use crate::domain::Method;
use crate::error::{AppError, AppResult, Reason};
use crate::flows::bank;
use crate::flows::checkout;
use crate::form;
use crate::pages::{Choice, Chrome, OrderView, WebBankChoose};
use crate::render::page;
use crate::routes::redirect_result;
use crate::routes::shopper::ShopperForm;
use crate::routes::shopper::ShopperPage;
use crate::session::Session;
use crate::state::AppState;

/// `GET /pay/{token}/banknet`: the list of banks.
pub async fn show(
    State(state): State<AppState>,
    ShopperPage { token, o, device }: ShopperPage,
) -> AppResult<Response> {
    if o.checkout.status != CheckoutStatus::Open {
        return Ok(Redirect::to(&format!("/pay/{token}")).into_response());
    }
    if !checkout::offered(&o, device).contains(&Method::Banknet) {
        return Err(AppError::shopper(Reason::MethodNotAvailable));
    }
    let en = o.checkout.lang == "en";
    let banks = Bank::all()
        .iter()
        .enumerate()
        .map(|(i, b)| Choice {
            value: b.code(),
            label: if en { b.name_en() } else { b.name_ja() }.to_owned(),
            accesskey: i + 1,
        })
        .collect();
    let c = Chrome::new(
        &state,
        device,
        &o.merchant.name,
        &o.merchant.theme,
        &o.checkout.lang,
    )
    .test_mode(o.merchant.mode() == crate::domain::Mode::Test)
    .with_switch(device, &token);
    let order = OrderView::new(
        &o.checkout.order_id,
        &o.checkout.item_name,
        o.checkout.amount,
    );
    page(
        device,
        &WebBankChoose {
            c,
            order,
            banks,
            action: format!("/pay/{token}/banknet"),
            csrf: Session::csrf(&token, &state.secret),
            back_url: format!("/pay/{token}"),
        },
    )
}

/// `POST /pay/{token}/banknet`: creates the payment and sends the shopper to the bank.
pub async fn start(State(state): State<AppState>, f: ShopperForm) -> AppResult<Response> {
    let bank = Bank::parse(f.get("bank")).ok_or(AppError::field(Reason::InvalidField, "bank"))?;
    let p = &f.page;
    let url = bank::start(&state, &p.o, &p.token, p.device, bank).await?;
    Ok(Redirect::to(&url).into_response())
}

/// `GET /pay/{token}/banknet/return/{payment_id}?...&sig=`: the bank's signed answer.
pub async fn back(
    State(state): State<AppState>,
    Path((token, payment_id)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> AppResult<Response> {
    let session = checkout::verify_session(&state, &token)
        .ok_or(AppError::shopper(Reason::SessionExpired))?;
    let params = form::decode(query.unwrap_or_default().as_bytes(), UTF_8);
    bank::handle_return(&state, &session.checkout_id, &payment_id, &params).await?;
    // Redirect so that a reload shows the result instead of replaying the bank's answer.
    Ok(Redirect::to(&format!("/pay/{token}/banknet/result/{payment_id}")).into_response())
}

/// `GET /pay/{token}/banknet/result/{payment_id}`: paid, declined, timed out or still waiting.
pub async fn result(
    State(state): State<AppState>,
    Path((_, payment_id)): Path<(String, String)>,
    ShopperPage { token, o, device }: ShopperPage,
) -> AppResult<Response> {
    let device = match device {
        // Bank net is never started on a feature phone; show the PC page if one arrives here.
        Device::FeaturePhone => Device::Pc,
        d => d,
    };
    let p = payments::get(&state.db, &payment_id)
        .await?
        .filter(|p| p.checkout_id == o.checkout.id && p.method == bank::METHOD)
        .ok_or(AppError::shopper(Reason::NotFound))?;
    let name = if o.checkout.lang == "en" {
        Method::Banknet.name_en()
    } else {
        Method::Banknet.name_ja()
    };
    let r = redirect_result::result_view(&state, &o, &token, &p, name).await?;
    redirect_result::render_result(&state, device, &o, r)
}
