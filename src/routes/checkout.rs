//! Shopper entry: open a signed link (GET or form POST), show the selector, record the choice.

use axum::body::Bytes;
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use encoding_rs::UTF_8;
use serde::Deserialize;

use crate::db::checkouts;
use crate::device::{Device, Ua, ViewOverride};
use crate::domain::bank::BankStatus;
use crate::domain::wallet::{Wallet, WalletStatus};
use crate::domain::CheckoutStatus;
use crate::domain::Method;
use crate::error::{AppError, AppResult, Reason};
use crate::flows::checkout::{self, Opened};
use crate::form;
use crate::pages::{Chrome, ClosedPage, HandoffView, MethodView, OrderView, SelectorPage};
use crate::routes::shopper::ShopperForm;
use crate::routes::shopper::ShopperPage;
use crate::session::Session;
use crate::state::AppState;

/// `GET /checkout?...`: verify, create or resume, and render the selector in one round trip.
pub async fn open_get(
    State(state): State<AppState>,
    ua: Ua,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> AppResult<Response> {
    let fields = form::decode(query.unwrap_or_default().as_bytes(), UTF_8);
    let link_lang = !form::get(&fields, "lang").is_empty();
    let mut opened = checkout::open_link(&state, fields, ua.device).await?;
    if !link_lang {
        browser_lang(&state, &headers, &mut opened).await?;
    }
    let token = checkout::new_session(&state, &opened.checkout.id, ViewOverride::Auto);
    if let Some(r) = super::konbini::issued_page(&state, ua.device, &opened, &token).await? {
        return Ok(r);
    }
    if let Some(r) = bank_waiting(&state, &opened, &token).await? {
        return Ok(r);
    }
    render_checkout(&state, ua.device, &opened, &token)
}

/// `POST /checkout`: the auto-submitted cart form (UTF-8 or Shift_JIS). Redirects to the
/// session URL so a reload does not re-post the form.
pub async fn open_post(
    State(state): State<AppState>,
    ua: Ua,
    headers: HeaderMap,
    body: Bytes,
) -> AppResult<Response> {
    let fields = form::parse_body(&headers, &body, UTF_8);
    let link_lang = !form::get(&fields, "lang").is_empty();
    let mut opened = checkout::open_link(&state, fields, ua.device).await?;
    if !link_lang {
        browser_lang(&state, &headers, &mut opened).await?;
    }
    let token = checkout::new_session(&state, &opened.checkout.id, ViewOverride::Auto);
    Ok(Redirect::to(&format!("/pay/{token}")).into_response())
}

/// `GET /pay/{token}`: the checkout page of a session.
pub async fn show(
    State(state): State<AppState>,
    ShopperPage {
        token,
        o: opened,
        device,
    }: ShopperPage,
) -> AppResult<Response> {
    if let Some(r) = super::konbini::issued_page(&state, device, &opened, &token).await? {
        return Ok(r);
    }
    if let Some(r) = bank_waiting(&state, &opened, &token).await? {
        return Ok(r);
    }
    render_checkout(&state, device, &opened, &token)
}

/// Back from a bank or wallet left without finishing (the checkout waits for it): the
/// payment's page says that nothing was charged, when it is cancelled and what then.
async fn bank_waiting(state: &AppState, o: &Opened, token: &str) -> AppResult<Option<Response>> {
    if o.checkout.status != CheckoutStatus::Pending {
        return Ok(None);
    }
    let Some(p) = crate::db::payments::live_for_checkout(&state.db, &o.checkout.id).await? else {
        return Ok(None);
    };
    let waiting = (p.method == Method::Banknet && p.status == BankStatus::AwaitingBank)
        || (p.method == Method::Wallet && p.status == WalletStatus::AwaitingWallet);
    if !waiting {
        return Ok(None);
    }
    let to = format!("/pay/{token}/{}/result/{}", p.method, p.id);
    Ok(Some(Redirect::to(&to).into_response()))
}

#[derive(Deserialize)]
pub struct ViewQuery {
    to: String,
}

/// `GET /pay/{token}/view?to=pc|sp`: the PC / smartphone layout switch.
pub async fn switch_view(
    State(state): State<AppState>,
    Path(token): Path<String>,
    Query(q): Query<ViewQuery>,
) -> AppResult<Response> {
    let session = checkout::verify_session(&state, &token)
        .ok_or(AppError::shopper(Reason::SessionExpired))?;
    let view = ViewOverride::parse(&q.to).ok_or(AppError::shopper(Reason::BadRequest))?;
    let token = checkout::renew_session(&state, &session, view);
    Ok(Redirect::to(&format!("/pay/{token}")).into_response())
}

/// A link without `lang`: the shopper's browser decides (Accept-Language), each time the link is
/// opened.
async fn browser_lang(state: &AppState, headers: &HeaderMap, o: &mut Opened) -> AppResult<()> {
    let accept = headers
        .get(axum::http::header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let lang = accept_language(accept);
    if lang != o.checkout.lang {
        checkouts::set_lang(&state.db, &o.checkout.id, lang).await?;
        o.checkout.lang = lang.to_owned();
    }
    Ok(())
}

/// `en` when the browser prefers English to Japanese, else `ja` (our default).
pub fn accept_language(header: &str) -> &'static str {
    let mut best: Option<(f32, &'static str)> = None;
    for part in header.split(',') {
        let mut it = part.split(';');
        let tag = it.next().unwrap_or_default().trim().to_ascii_lowercase();
        let q = it
            .find_map(|p| p.trim().strip_prefix("q="))
            .and_then(|q| q.parse::<f32>().ok())
            .unwrap_or(1.0);
        let lang = match tag.split('-').next().unwrap_or_default() {
            "ja" => "ja",
            "en" => "en",
            _ => continue,
        };
        if q > 0.0 && best.is_none_or(|(bq, _)| q > bq) {
            best = Some((q, lang));
        }
    }
    best.map_or("ja", |(_, l)| l)
}

#[derive(Deserialize)]
pub struct LangQuery {
    to: String,
}

/// `GET /pay/{token}/lang?to=ja|en`: the language switch in the page footer. Only the display
/// language changes.
pub async fn switch_lang(
    State(state): State<AppState>,
    Path(token): Path<String>,
    Query(q): Query<LangQuery>,
) -> AppResult<Response> {
    let (_, o) = checkout::load_session(&state, &token).await?;
    let lang = match q.to.as_str() {
        "ja" => "ja",
        "en" => "en",
        _ => return Err(AppError::shopper(Reason::BadRequest)),
    };
    checkouts::set_lang(&state.db, &o.checkout.id, lang).await?;
    Ok(Redirect::to(&format!("/pay/{token}")).into_response())
}

/// `POST /pay/{token}/method`: records the chosen method and hands over to its flow.
pub async fn choose_method(State(state): State<AppState>, f: ShopperForm) -> AppResult<Response> {
    let (opened, device, token) = (&f.page.o, f.page.device, &f.page.token);
    if opened.checkout.status != CheckoutStatus::Open {
        if let Some(r) = super::konbini::issued_page(&state, device, opened, token).await? {
            return Ok(r);
        }
        return render_checkout(&state, device, opened, token);
    }
    let method = Method::parse(f.get("method"))
        .filter(|m| checkout::offered(opened, device).contains(m))
        .ok_or(AppError::shopper(Reason::MethodNotAvailable))?;
    checkout::record_choice(&state, opened, method).await?;
    Ok(Redirect::to(&format!("/pay/{token}/{}", method.code())).into_response())
}

/// Selector for an open checkout; its state for a closed one (paid, pending, ...).
pub(super) fn render_checkout(
    state: &AppState,
    device: Device,
    o: &Opened,
    token: &str,
) -> AppResult<Response> {
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
    if o.checkout.status != CheckoutStatus::Open {
        let (status_ja, status_en) = match o.checkout.status.code() {
            "paid" => ("お支払いは完了しています。", "This order has been paid."),
            "pending" => (
                "お支払い手続き中です。",
                "Payment for this order is in progress.",
            ),
            _ => ("このお支払いは終了しています。", "This checkout is closed."),
        };
        let return_url = Some(o.checkout.return_url.clone());
        let (status_ja, status_en) = (status_ja.to_owned(), status_en.to_owned());
        return ClosedPage {
            c,
            order,
            status_ja,
            status_en,
            return_url,
        }
        .render(device, axum::http::StatusCode::OK);
    }
    let en = o.checkout.lang == "en";
    // The wallets line names PayPay and shows a wallet's badge: only brands the merchant offers.
    let brands = o.merchant.wallet_brands.list();
    let paypay = brands.contains(&Wallet::PayPay);
    let methods: Vec<MethodView> = checkout::offered(o, device)
        .into_iter()
        .enumerate()
        .map(|(i, m)| MethodView {
            code: m.code(),
            name: match (m, device, en) {
                // Feature phones of every carrier get d払い: name whose account it uses.
                (Method::Docomo, Device::FeaturePhone, false) => "d払い（ドコモのdアカウント）",
                (Method::Docomo, Device::FeaturePhone, true) => "d Barai (docomo d ACCOUNT)",
                (Method::Wallet, _, false) if !paypay => "スマホ決済",
                (Method::Wallet, _, true) if !paypay => "Mobile wallet",
                (_, _, true) => m.name_en(),
                (_, _, false) => m.name_ja(),
            },
            accesskey: i + 1,
            badge: crate::pages::method_badge(m, brands.first().copied()),
        })
        .collect();
    if methods.is_empty() {
        return Err(AppError::shopper(Reason::NoMethodAvailable));
    }
    let action = format!("/pay/{token}/method");
    let csrf = Session::csrf(token, &state.secret);
    let cancel_url = o.checkout.cancel_url.clone();
    let unavailable = unavailable_notes(o, device, en);
    let handoff = (device == Device::Pc).then(|| HandoffView {
        qr: format!("/pay/{token}/handoff.png"),
        state: format!("/pay/{token}/state"),
        reload: format!("/pay/{token}"),
        script: state.handoff_js.to_string(),
    });
    SelectorPage {
        c,
        order,
        methods,
        action,
        csrf,
        cancel_url,
        note: (device == Device::FeaturePhone)
            .then(|| super::card_browser::fp_selector_note(o, en))
            .flatten(),
        unavailable,
        handoff,
    }
    .render(device, axum::http::StatusCode::OK)
}

/// One sentence per method the merchant enabled for this order but the shopper cannot use here:
/// methods do not vanish without a word.
fn unavailable_notes(o: &Opened, device: Device, en: bool) -> Vec<String> {
    use crate::domain::method::{unavailable, Unavailable};
    let payable = o.connectors.methods();
    unavailable(
        &o.merchant.methods(),
        &o.checkout.methods(),
        device,
        o.checkout.amount,
    )
    .into_iter()
    .filter(|(m, _)| payable.contains(m))
    .map(|(m, why)| match (why, en) {
        (Unavailable::OverLimit(max), false) => format!(
            "{}は{}円を超えるご注文ではご利用いただけません。",
            m.name_ja(),
            crate::util::format_yen(max)
        ),
        (Unavailable::OverLimit(max), true) => format!(
            "{} is not available for orders over ¥{}.",
            m.name_en(),
            crate::util::format_yen(max)
        ),
        (Unavailable::Device, false) => {
            format!("{}はこの端末ではご利用いただけません。", m.name_ja())
        }
        (Unavailable::Device, true) => format!("{} is not available on this device.", m.name_en()),
    })
    .collect()
}
