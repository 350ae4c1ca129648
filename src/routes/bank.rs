//! Bank net (銀行ネット) shopper pages: the choice of bank. Starting, the return and the result
//! page are the shared redirect routes of `routes::redirect`.

use axum::extract::State;
use axum::response::Response;

use crate::domain::bank::Bank;
use crate::error::AppResult;
use crate::flows::bank;
use crate::pages::{Choice, WebBankChoose};
use crate::render::page;
use crate::routes::redirect::choice_frame;
use crate::routes::shopper::ShopperPage;
use crate::session::Session;
use crate::state::AppState;

/// `GET /pay/{token}/banknet`: the list of banks.
pub async fn show(
    State(state): State<AppState>,
    ShopperPage { token, o, device }: ShopperPage,
) -> AppResult<Response> {
    let (c, order) = match choice_frame(&state, &o, &token, device, bank::METHOD)? {
        Ok(frame) => frame,
        Err(elsewhere) => return Ok(elsewhere),
    };
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
