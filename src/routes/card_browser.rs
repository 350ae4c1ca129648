//! The card page when the merchant's card processor collects the card in the browser
//! (Stripe.js Elements): the page loads the processor's script and ours
//! (`static/card-elements.js`), never posts card data here, and the outcome is read from the
//! processor on return. Also the processor's inbound events (`POST /webhooks/stripe/{account}`).
//!
//! Only this page's CSP lists the processor's origins; every other page keeps `'self'`.

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Json;
use serde_json::json;

use crate::connectors::client_card::CspSources;
use crate::routes::shopper::ClientAddr;

use crate::device::Device;
use crate::domain::card::CardStatus;
use crate::domain::card::PaymentOption;
use crate::domain::processor::Processor;
use crate::domain::CheckoutStatus;
use crate::domain::Method;
use crate::error::{AppError, AppResult, Reason};
use crate::flows::checkout::{self, Opened};
use crate::flows::client_card::{self as flow, Confirmed, HookError, HookOutcome};

use crate::pages::{Chrome, FpResult, OrderView, ResultPage};
use crate::render::page_with_status;
use crate::routes::shopper::{ShopperForm, ShopperPage};
use crate::session::Session;
use crate::state::AppState;

/// Our script, served from `/js/card-elements.js` (CSP `'self'`, no inline script).
const SCRIPT: &str = include_str!("../../static/card-elements.js");

/// The Elements card page (PC / smartphone).
#[derive(Template)]
#[template(path = "web/card_elements.html")]
pub struct WebCardElements {
    pub c: Chrome,
    pub order: OrderView,
    pub csrf: String,
    pub intent_url: String,
    pub return_url: String,
    pub back_url: String,
    pub processor_js: String,
    pub our_js: String,
    pub publishable_key: String,
    pub form_error: Option<String>,
    /// The merchant offers plans besides 一括: the script creates the payment method first,
    /// so Stripe can answer the card's plans, and posts the choice to `confirm_url`.
    pub installments: bool,
    pub confirm_url: String,
    /// The checkout customer's saved cards at this processor account.
    pub saved: Vec<SavedView>,
    /// The link names a customer: offer to save the card (with consent).
    pub offer_save: bool,
    /// A saved card is paid with its security code re-entered in the processor's field.
    pub saved_cvc: bool,
}

/// A saved card on the card page: label (brand, last 4, expiry) and its removal form.
pub struct SavedView {
    pub id: String,
    pub label: String,
    pub delete_url: String,
}

fn chrome(state: &AppState, device: Device, token: &str, o: &Opened) -> Chrome {
    Chrome::new(
        state,
        device,
        &o.merchant.name,
        &o.merchant.theme,
        &o.checkout.lang,
    )
    .test_mode(o.merchant.mode() == crate::domain::Mode::Test)
    .with_switch(device, token)
}

fn order(o: &Opened) -> OrderView {
    OrderView::new(
        &o.checkout.order_id,
        &o.checkout.item_name,
        o.checkout.amount,
    )
}

/// The CSP of the Elements page: ours plus exactly the processor's origins.
pub fn csp(s: &CspSources) -> String {
    let list = |v: &[String]| v.join(" ");
    let frame = if s.frame.is_empty() {
        "'none'".to_owned()
    } else {
        list(&s.frame)
    };
    format!(
        "default-src 'self'; script-src 'self' {}; frame-src {}; connect-src 'self' {}; \
         style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; \
         base-uri 'none'; object-src 'none'",
        list(&s.script),
        frame,
        list(&s.connect)
    )
}

fn script_version() -> String {
    use sha2::Digest;
    hex::encode(&sha2::Sha256::digest(SCRIPT.as_bytes())[..6])
}

/// Renders the card page for a merchant whose card connector collects cards in the browser.
/// Feature phones cannot run the processor's script: they get a note and the other methods.
pub async fn render(
    state: &AppState,
    device: Device,
    token: &str,
    o: &Opened,
    form_error: Option<String>,
    status: StatusCode,
) -> AppResult<Response> {
    let en = o.checkout.lang == "en";
    let c = chrome(state, device, token, o);
    if device == Device::FeaturePhone {
        return page_with_status(
            device,
            StatusCode::OK,
            &FpResult(ResultPage {
                c,
                order: order(o),
                kind: "failure",
                title: (if en {
                    "Card payment is not available on this phone"
                } else {
                    "この端末ではクレジットカードをご利用いただけません"
                })
                .into(),
                message: fp_note(en).into(),
                details: vec![],
                return_url: o.checkout.cancel_url.clone(),
                retry_url: None,
                other_url: Some(format!("/pay/{token}")),
            }),
        );
    }
    let resolved = o
        .connectors
        .client_card()
        .ok_or(AppError::shopper(Reason::MethodNotAvailable))?;
    let account = matches!(
        resolved.id,
        crate::domain::processor::ConnectorId::Account(_)
    );
    let saved = crate::flows::saved_cards::for_checkout(state, o)
        .await?
        .into_iter()
        .map(|c| SavedView {
            label: format!(
                "{} •••• {} ({:02}/{:02})",
                crate::domain::card::Brand::from_code(&c.brand)
                    .map(|b| b.display_name().to_owned())
                    .unwrap_or(c.brand.clone()),
                c.last4,
                c.exp_month,
                c.exp_year % 100
            ),
            delete_url: format!("/pay/{token}/card/saved/{}/delete", c.id),
            id: c.id,
        })
        .collect();
    let setup = resolved.connector.page().map_err(|e| {
        tracing::error!(error = %e, "card page cannot load the processor's script");
        AppError::shopper(Reason::MethodNotAvailable)
    })?;
    let tpl = WebCardElements {
        c,
        order: order(o),
        csrf: Session::csrf(token, &state.secret),
        intent_url: format!("/pay/{token}/card/intent"),
        return_url: format!("/pay/{token}/card/return"),
        back_url: format!("/pay/{token}"),
        processor_js: setup.script_url,
        our_js: format!("/js/card-elements.js?v={}", script_version()),
        publishable_key: setup.publishable_key,
        form_error,
        installments: {
            let (opts, _) =
                crate::domain::card_form::merchant_card_settings(&o.merchant.card_options);
            opts.options().iter().any(|p| *p != PaymentOption::Lump)
        },
        confirm_url: format!("/pay/{token}/card/confirm"),
        saved,
        offer_save: account && o.checkout.customer_ref.is_some(),
        saved_cvc: o.merchant.saved_card_cvc(),
    };
    let mut resp = page_with_status(device, status, &tpl)?;
    let policy = HeaderValue::from_str(&csp(&setup.csp))
        .map_err(|_| anyhow::anyhow!("processor origins are not a valid header"))?;
    resp.headers_mut()
        .insert(header::CONTENT_SECURITY_POLICY, policy);
    Ok(resp)
}

/// Why feature phones are not offered the processor's card form.
pub fn fp_note(en: bool) -> &'static str {
    if en {
        "This shop's card payments need a smartphone or PC browser. Please pay from one, or choose another payment method."
    } else {
        "このお店のクレジットカード決済はスマートフォンまたはパソコンのブラウザーでご利用いただけます。スマートフォン・パソコンからお支払いいただくか、他のお支払い方法をお選びください。"
    }
}

/// The feature-phone selector's note when card is left out because the merchant's card
/// processor needs its browser script.
pub fn fp_selector_note(o: &Opened, en: bool) -> Option<String> {
    let wanted = o.merchant.methods().contains(&Method::Card)
        && o.checkout.methods().contains(&Method::Card);
    (wanted && o.connectors.client_card().is_some()).then(|| {
        (if en {
            "Card payment: not available on this phone (smartphone or PC only)."
        } else {
            "クレジットカード決済はこの端末ではご利用いただけません（スマートフォン・パソコンのみ）。"
        })
        .to_owned()
    })
}

/// `GET /js/card-elements.js`
pub async fn script() -> Response {
    let mut r = SCRIPT.into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/javascript; charset=utf-8"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=86400"),
    );
    r
}

/// `POST /pay/{token}/card/intent`: creates the payment and the processor's intent, and
/// answers the client secret the script confirms with. No card data is posted here.
///
/// With `payment_method` (the processor's id of the typed card, `pm_…`, from our script when
/// the merchant offers installments), the answer also lists the plans the shopper may choose;
/// the script then posts the choice to `/pay/{token}/card/confirm`.
pub async fn intent(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    form: ShopperForm,
) -> AppResult<Response> {
    let some = |k: &str| Some(form.get(k).to_owned()).filter(|s| !s.is_empty());
    let choice = flow::Choice {
        payment_method: some("payment_method"),
        saved_card: some("saved_card"),
        save: form.get("save_card") == "1",
    };
    let ShopperPage { token, o, device } = form.page;
    open_for_card(&o, device)?;
    let prepared = flow::prepare(&state, &o, &client.to_string(), &choice).await?;
    let en = o.checkout.lang == "en";
    let plans: Vec<_> = prepared
        .plans
        .iter()
        .map(|p| json!({ "code": p.code(), "label": if en { p.label_en() } else { p.label_ja() } }))
        .collect();
    Ok(Json(json!({
        "client_secret": prepared.client_secret,
        "return_url": format!("/pay/{token}/card/return"),
        "plans": plans,
    }))
    .into_response())
}

fn open_for_card(o: &Opened, device: Device) -> AppResult<()> {
    if o.checkout.status != CheckoutStatus::Open {
        return Err(AppError::shopper(Reason::CheckoutClosed));
    }
    if device == Device::FeaturePhone || !checkout::offered(o, device).contains(&Method::Card) {
        return Err(AppError::shopper(Reason::MethodNotAvailable));
    }
    Ok(())
}

/// `POST /pay/{token}/card/confirm` (`option`: `lump`, `inst3`…, `bonus`, `revo`; for a saved
/// card when the merchant asks for it, `cvc_token`: Stripe's `cvctok_…` of the re-entered
/// security code): confirms the intent whose card `/card/intent` attached, with the chosen plan. Answers whether the
/// processor's script must run 3-D Secure (`"next": "action"` with the client secret) or the
/// browser goes to the return URL (`"next": "return"`).
pub async fn confirm(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    form: ShopperForm,
) -> AppResult<Response> {
    let option = PaymentOption::parse(form.get("option"))
        .map_err(|_| AppError::shopper(Reason::BadRequest))?;
    let cvc_token = Some(form.get("cvc_token").to_owned()).filter(|s| !s.is_empty());
    let ShopperPage { token, o, device } = form.page;
    open_for_card(&o, device)?;
    let return_url = format!("/pay/{token}/card/return");
    let confirmed = flow::confirm(
        &state,
        &o,
        &client.to_string(),
        option,
        cvc_token.as_deref(),
    )
    .await?;
    let body = match confirmed {
        Confirmed::Action { client_secret } => json!({
            "next": "action", "client_secret": client_secret, "return_url": return_url,
        }),
        Confirmed::Done => json!({ "next": "return", "return_url": return_url }),
    };
    Ok(Json(body).into_response())
}

/// `GET /pay/{token}/card/return`: the script finished (paid, declined or abandoned 3-D
/// Secure). The outcome is read from the processor; the shopper sees the result, or the card
/// page again when nothing was paid yet.
pub async fn back(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    ShopperPage { token, o, device }: ShopperPage,
) -> AppResult<Response> {
    let p = match flow::settle_return(&state, &o, &client.to_string()).await {
        Ok(p) => p,
        Err(e) => {
            // The processor did not answer: the payment stays as it is; the sweep and the
            // processor's events settle it.
            tracing::warn!(error = %e, "settling a browser card payment on return");
            None
        }
    };
    if let Some(p) = p {
        if p.status == CardStatus::Awaiting3ds && o.checkout.status == CheckoutStatus::Open {
            let en = o.checkout.lang == "en";
            let msg = if en {
                "The payment was not completed. Please check the card details and try again."
            } else {
                "お支払いは完了していません。カード情報をご確認のうえ、もう一度お試しください。"
            };
            return render(&state, device, &token, &o, Some(msg.into()), StatusCode::OK).await;
        }
    }
    Ok(Redirect::to(&format!("/pay/{token}/card/result")).into_response())
}

/// `POST /pay/{token}/card/saved/{id}/delete`: the shopper removes one of their saved cards
/// (detached at the processor, then forgotten); back to the card page.
pub async fn remove_saved(
    State(state): State<AppState>,
    Path((_, id)): Path<(String, String)>,
    form: ShopperForm,
) -> AppResult<Response> {
    let ShopperPage { token, o, device } = form.page;
    open_for_card(&o, device)?;
    let Some(r) = o.checkout.customer_ref.as_deref() else {
        return Err(AppError::shopper(Reason::BadRequest));
    };
    crate::flows::saved_cards::remove(&state, &o.merchant, r, &id).await?;
    Ok(Redirect::to(&format!("/pay/{token}/card")).into_response())
}

fn hook_error(status: StatusCode, code: &str, message: String) -> Response {
    (
        status,
        Json(json!({ "error": { "code": code, "message": message } })),
    )
        .into_response()
}

/// `POST /webhooks/stripe/{account_id}`: one endpoint per Stripe account, verified with that
/// account's webhook signing secret.
pub async fn stripe_webhook(
    State(state): State<AppState>,
    Path(account_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let sig = headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    match flow::webhook(&state, Processor::Stripe, &account_id, &body, sig).await {
        Ok(o) => {
            let result = match o {
                HookOutcome::Applied => "applied",
                HookOutcome::Duplicate => "duplicate",
                HookOutcome::Ignored => "ignored",
            };
            Json(json!({ "received": true, "result": result })).into_response()
        }
        Err(HookError::UnknownAccount) => hook_error(
            StatusCode::NOT_FOUND,
            "account_not_found",
            "no Stripe account with this id".into(),
        ),
        Err(HookError::Refused(e)) => {
            tracing::warn!(account = %account_id, code = e.code(), "webhook refused");
            hook_error(StatusCode::BAD_REQUEST, e.code(), e.to_string())
        }
        Err(HookError::Unavailable) => hook_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "account_unavailable",
            "the account's credentials cannot be opened on this server".into(),
        ),
        Err(HookError::Failed(e)) => {
            tracing::error!(account = %account_id, error = %e, "webhook not applied");
            hook_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "event_not_applied",
                "the event could not be applied now; it will be retried".into(),
            )
        }
    }
}
