//! Carrier billing shopper pages (d払い, auかんたん決済, ソフトバンクまとめて支払い): confirm and choose
//! 都度 / 継続, come back from the carrier, see the result. One set of routes per carrier.

use axum::extract::{Path, RawQuery, State};
use axum::http::Uri;
use axum::response::{IntoResponse, Redirect, Response};
use encoding_rs::UTF_8;

use crate::db::payments;
use crate::device::Ua;
use crate::domain::carrier::{BillingKind, Carrier};
use crate::error::{AppError, AppResult, Reason};
use crate::flows::carrier::{self as flow, method_of};
use crate::flows::checkout;
use crate::form;
use crate::pages::{CarrierConfirmPage, Choice};
use crate::routes::redirect::choice_frame;
use crate::routes::redirect_result;
use crate::routes::shopper::ShopperForm;
use crate::routes::shopper::ShopperPage;
use crate::session::Session;
use crate::state::AppState;

/// The carrier named by the route (`/pay/{token}/{carrier}/...`).
fn carrier_of(uri: &Uri) -> AppResult<Carrier> {
    uri.path()
        .split('/')
        .nth(3)
        .and_then(Carrier::parse)
        .ok_or(AppError::shopper(Reason::NotFound))
}

/// `GET /pay/{token}/{carrier}`: what happens next, and 都度 / 継続 when the merchant offers both.
pub async fn show(
    State(state): State<AppState>,
    ua: Ua,
    uri: Uri,
    ShopperPage { token, o, device }: ShopperPage,
) -> AppResult<Response> {
    let c = carrier_of(&uri)?;
    let (chrome, order) = match choice_frame(&state, &o, &token, device, method_of(c))? {
        Ok(frame) => frame,
        Err(elsewhere) => return Ok(elsewhere),
    };
    let en = o.checkout.lang == "en";
    let mut billing = vec![Choice {
        value: BillingKind::OneOff.code(),
        label: if en {
            "Continue to the carrier".to_owned()
        } else {
            format!("{}でお支払いへ進む（都度）", c.name_ja())
        },
        accesskey: 1,
    }];
    if flow::continuous_offered(&state, &o, c).await? {
        billing[0].label = if en {
            "Pay once".to_owned()
        } else {
            "都度払い（今回のみ）".to_owned()
        };
        billing.push(Choice {
            value: BillingKind::Continuous.code(),
            label: if en {
                "Pay monthly until cancelled".to_owned()
            } else {
                "継続課金（毎月、解約まで）".to_owned()
            },
            accesskey: 2,
        });
    }
    let carrier_name = if en { c.name_en() } else { c.name_ja() };
    let note = crate::pages::carrier_note(c, device, ua.carrier, en);
    let action = format!("/pay/{token}/{}", c.code());
    let csrf = Session::csrf(&token, &state.secret);
    let back_url = format!("/pay/{token}");
    CarrierConfirmPage {
        c: chrome,
        order,
        carrier_name,
        note,
        billing,
        action,
        csrf,
        back_url,
    }
    .render(device, axum::http::StatusCode::OK)
}

/// `POST /pay/{token}/{carrier}`: creates the payment and sends the shopper to the carrier.
pub async fn start(State(state): State<AppState>, uri: Uri, f: ShopperForm) -> AppResult<Response> {
    let c = carrier_of(&uri)?;
    let billing = BillingKind::parse(f.get("billing"))
        .ok_or(AppError::field(Reason::InvalidField, "billing"))?;
    let p = &f.page;
    let url = flow::start(&state, &p.o, &p.token, p.device, c, billing).await?;
    Ok(Redirect::to(&url).into_response())
}

/// `GET /pay/{token}/{carrier}/return/{payment_id}?...&sig=`: the carrier's signed answer.
pub async fn back(
    State(state): State<AppState>,
    uri: Uri,
    Path((token, payment_id)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> AppResult<Response> {
    let c = carrier_of(&uri)?;
    let session = checkout::verify_session(&state, &token)
        .ok_or(AppError::shopper(Reason::SessionExpired))?;
    let params = form::decode(query.unwrap_or_default().as_bytes(), UTF_8);
    flow::handle_return(&state, &session.checkout_id, c, &payment_id, &params).await?;
    Ok(Redirect::to(&format!("/pay/{token}/{}/result/{payment_id}", c.code())).into_response())
}

/// `GET /pay/{token}/{carrier}/result/{payment_id}`: completed, failed (with the reason, e.g. the
/// monthly limit) or cancelled.
pub async fn result(
    State(state): State<AppState>,
    uri: Uri,
    Path((_, payment_id)): Path<(String, String)>,
    ShopperPage { token, o, device }: ShopperPage,
) -> AppResult<Response> {
    let c = carrier_of(&uri)?;
    let p = payments::get(&state.db, &payment_id)
        .await?
        .filter(|p| p.method == c.method())
        .ok_or(AppError::shopper(Reason::NotFound))?;
    if p.checkout_id != o.checkout.id {
        return Err(AppError::shopper(Reason::NotFound));
    }
    let name = if o.checkout.lang == "en" {
        c.name_en()
    } else {
        c.name_ja()
    };
    let r = redirect_result::result_view(&state, &o, &token, &p, name).await?;
    redirect_result::render_result(&state, device, &o, r)
}
