//! Wallet shopper pages (PayPay, au PAY, …): choose a wallet, come back from it, see the result.

use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Redirect, Response};
use encoding_rs::UTF_8;

use crate::db::payments;
use crate::device::Device;
use crate::domain::wallet::Wallet;
use crate::domain::CheckoutStatus;
use crate::error::{AppError, AppResult, Reason};
use crate::flows::checkout;
use crate::flows::wallet;
use crate::form;
use crate::pages::{Chrome, OrderView, WalletChoice, WebWalletChoose};
use crate::render::page;
use crate::routes::redirect_result;
use crate::routes::shopper::{ShopperForm, ShopperPage};
use crate::session::Session;
use crate::state::AppState;

/// `GET /pay/{token}/wallet`: the wallets, each with its badge.
pub async fn show(
    State(state): State<AppState>,
    ShopperPage { token, o, device }: ShopperPage,
) -> AppResult<Response> {
    if o.checkout.status != CheckoutStatus::Open {
        return Ok(Redirect::to(&format!("/pay/{token}")).into_response());
    }
    if !checkout::offered(&o, device).contains(&wallet::METHOD) {
        return Err(AppError::shopper(Reason::MethodNotAvailable));
    }
    let en = o.checkout.lang == "en";
    let wallets = Wallet::ALL
        .into_iter()
        .map(|w| WalletChoice {
            value: w.code(),
            label: if en { w.name_en() } else { w.name_ja() },
            badge: crate::badges::wallet(w.code()).unwrap_or_default(),
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
        &WebWalletChoose {
            c,
            order,
            wallets,
            action: format!("/pay/{token}/wallet"),
            csrf: Session::csrf(&token, &state.secret),
            back_url: format!("/pay/{token}"),
        },
    )
}

/// `POST /pay/{token}/wallet`: creates the payment and sends the shopper to the wallet.
pub async fn start(State(state): State<AppState>, f: ShopperForm) -> AppResult<Response> {
    let w =
        Wallet::parse(f.get("wallet")).ok_or(AppError::field(Reason::InvalidField, "wallet"))?;
    let p = &f.page;
    let url = wallet::start(&state, &p.o, &p.token, p.device, w).await?;
    Ok(Redirect::to(&url).into_response())
}

/// `GET /pay/{token}/wallet/return/{payment_id}?...&sig=`: back from the wallet.
pub async fn back(
    State(state): State<AppState>,
    Path((token, payment_id)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> AppResult<Response> {
    let session = checkout::verify_session(&state, &token)
        .ok_or(AppError::shopper(Reason::SessionExpired))?;
    let params = form::decode(query.unwrap_or_default().as_bytes(), UTF_8);
    wallet::handle_return(&state, &session.checkout_id, &payment_id, &params).await?;
    // Redirect so that a reload shows the result instead of replaying the answer.
    Ok(Redirect::to(&format!("/pay/{token}/wallet/result/{payment_id}")).into_response())
}

/// `GET /pay/{token}/wallet/result/{payment_id}`: paid, failed, timed out or still waiting.
pub async fn result(
    State(state): State<AppState>,
    Path((_, payment_id)): Path<(String, String)>,
    ShopperPage { token, o, device }: ShopperPage,
) -> AppResult<Response> {
    let device = match device {
        // Wallets are never started on a feature phone; show the PC page if one arrives here.
        Device::FeaturePhone => Device::Pc,
        d => d,
    };
    let p = payments::get(&state.db, &payment_id)
        .await?
        .filter(|p| p.checkout_id == o.checkout.id && p.method == wallet::METHOD)
        .ok_or(AppError::shopper(Reason::NotFound))?;
    let w = p.institution.as_deref().and_then(Wallet::parse);
    let name = match (w, o.checkout.lang == "en") {
        (Some(w), true) => w.name_en(),
        (Some(w), false) => w.name_ja(),
        (None, true) => wallet::METHOD.name_en(),
        (None, false) => wallet::METHOD.name_ja(),
    };
    let r = redirect_result::result_view(&state, &o, &token, &p, name).await?;
    redirect_result::render_result(&state, device, &o, r)
}
