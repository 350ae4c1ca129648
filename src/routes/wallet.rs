//! Wallet shopper pages (PayPay, au PAY, …): the choice among the merchant's wallet brands, each
//! with its badge. Starting,
//! the return and the result page are the shared redirect routes of `routes::redirect`.

use axum::extract::State;
use axum::response::Response;

use crate::error::AppResult;
use crate::flows::wallet;
use crate::pages::{WalletChoice, WebWalletChoose};
use crate::render::page;
use crate::routes::redirect::choice_frame;
use crate::routes::shopper::ShopperPage;
use crate::session::Session;
use crate::state::AppState;

/// `GET /pay/{token}/wallet`: the wallets, each with its badge.
pub async fn show(
    State(state): State<AppState>,
    ShopperPage { token, o, device }: ShopperPage,
) -> AppResult<Response> {
    let (c, order) = match choice_frame(&state, &o, &token, device, wallet::METHOD)? {
        Ok(frame) => frame,
        Err(elsewhere) => return Ok(elsewhere),
    };
    let en = o.checkout.lang == "en";
    // Only the brands the merchant offers (its settings).
    let wallets = o
        .merchant
        .wallet_brands
        .list()
        .into_iter()
        .map(|w| WalletChoice {
            value: w.code(),
            label: if en { w.name_en() } else { w.name_ja() },
            badge: crate::badges::wallet(w.code()).unwrap_or_default(),
        })
        .collect();
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
