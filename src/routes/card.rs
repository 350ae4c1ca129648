//! Card pages: the form, the sandbox issuer's 3-D Secure challenge, the return from a
//! processor's 3-D Secure page, and the result.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};

use crate::db::payments::{self, PaymentRow};
use crate::device::Device;
use crate::domain::card::{allowed_for_brand, Brand, CardError, CardStatus, PaymentOption};
use crate::domain::CheckoutStatus;
use crate::domain::Method;
use crate::error::{AppError, AppResult, Reason};
use crate::flows::card::{self as flow, FieldErrors, PayOutcome};
use crate::flows::checkout;
use crate::form;
use crate::pages::{
    Chrome, FpCardForm, FpChallenge, OptionView, OrderView, ResultPage, WebCardForm, WebChallenge,
};
use crate::render::page_with_status;
use crate::routes::shopper::ClientAddr;
use crate::routes::shopper::{ShopperForm, ShopperPage};
use crate::session::Session;
use crate::state::AppState;

type Ctx = ShopperPage;

fn chrome(state: &AppState, x: &Ctx) -> Chrome {
    Chrome::new(
        state,
        x.device,
        &x.o.merchant.name,
        &x.o.merchant.theme,
        &x.o.checkout.lang,
    )
    .test_mode(x.o.merchant.mode() == crate::domain::Mode::Test)
    .with_switch(x.device, &x.token)
}

fn order(x: &Ctx) -> OrderView {
    OrderView::new(
        &x.o.checkout.order_id,
        &x.o.checkout.item_name,
        x.o.checkout.amount,
    )
}

/// What a re-shown form keeps from the shopper's post: never the number or the code.
#[derive(Default)]
struct Kept {
    exp_month: String,
    exp_year: String,
    holder: String,
    option: String,
}

impl Kept {
    fn from_form(fields: &[(String, String)]) -> Kept {
        let get = |k: &str| form::get(fields, k).to_owned();
        Kept {
            exp_month: get("exp_month"),
            exp_year: get("exp_year"),
            holder: get("holder"),
            option: get("option"),
        }
    }

    fn option(&self) -> &str {
        if self.option.is_empty() {
            "lump"
        } else {
            &self.option
        }
    }
}

/// `GET /pay/{token}/card`
pub async fn form_page(State(state): State<AppState>, x: ShopperPage) -> AppResult<Response> {
    if x.o.checkout.status != CheckoutStatus::Open {
        return Ok(Redirect::to(&format!("/pay/{}/card/result", x.token)).into_response());
    }
    render_form(
        &state,
        &x,
        FieldErrors::default(),
        None,
        "",
        "",
        "",
        "lump",
        StatusCode::OK,
    )
    .await
}

/// `POST /pay/{token}/card`
pub async fn submit(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    ShopperForm { page: x, fields }: ShopperForm,
) -> AppResult<Response> {
    if x.o.checkout.status != CheckoutStatus::Open {
        return Ok(Redirect::to(&format!("/pay/{}/card/result", x.token)).into_response());
    }
    if !checkout::offered(&x.o, x.device).contains(&crate::domain::Method::Card) {
        return Err(AppError::shopper(Reason::MethodNotAvailable));
    }
    // The processor collects this merchant's cards in the browser: card data posted here is
    // refused and dropped (never parsed as a card, stored or logged).
    if x.o.connectors.client_card().is_some() {
        return Err(AppError::shopper(Reason::MethodNotAvailable));
    }
    let ip = client.to_string();
    let (opts, holder) = card_settings(&x);
    let today = crate::util::jst_datetime(state.now_ms());
    let en = x.o.checkout.lang == "en";
    let get = |k: &str| form::get(&fields, k).to_owned();
    let input = match flow::parse_form(get, &opts, holder, (today.year(), today.month() as u32), en)
    {
        Ok(i) => i,
        Err(errors) => {
            // A locked checkout is refused before its errors are shown; a parsed card is
            // checked by `flow::pay` (with the card's own count), one read per attempt.
            flow::check_lock(&state, &flow::key_for(&x.o, &ip, None)).await?;
            // Echo only what is safe: expiry, holder, option. Never the number or the code.
            return render_form(
                &state,
                &x,
                errors,
                None,
                form::get(&fields, "exp_month"),
                form::get(&fields, "exp_year"),
                form::get(&fields, "holder"),
                form::get(&fields, "option"),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
        }
    };
    let outcome = flow::pay(&state, &x.o, input, &ip, &x.token).await?;
    respond(&state, &x, outcome, &Kept::from_form(&fields)).await
}

/// The merchant's 支払区分 and holder setting, as the card connector can take them: a connector
/// without installments (KOMOJU) gets 一括払い only, on the form and in what is accepted.
fn card_settings(x: &Ctx) -> (crate::domain::card::MerchantOptions, bool) {
    let (opts, holder) = flow::merchant_card_settings(&x.o.merchant.card_options);
    let installments =
        x.o.connectors
            .card()
            .is_none_or(|r| r.connector.takes_installments());
    if installments {
        (opts, holder)
    } else {
        (crate::domain::card::MerchantOptions::default(), holder)
    }
}

/// `GET /pay/{token}/card/3ds-return?payment_id=…&ts=…&sig=…`: back from the processor's
/// 3-D Secure page. The signature is ours; the result comes from the processor.
pub async fn three_ds_return(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    axum::extract::Query(params): axum::extract::Query<Vec<(String, String)>>,
    x: ShopperPage,
) -> AppResult<Response> {
    let outcome = flow::complete_redirect(&state, &x.o, &params, &client.to_string()).await?;
    respond(&state, &x, outcome, &Kept::default()).await
}

/// `GET /pay/{token}/card/challenge`
pub async fn challenge_page(State(state): State<AppState>, x: ShopperPage) -> AppResult<Response> {
    let p = payments::live_for_checkout(&state.db, &x.o.checkout.id).await?;
    match p {
        Some(p) if p.status == CardStatus::Challenge => {
            let outcome = flow::outcome_of(p);
            respond_page(&state, &x, outcome, &Kept::default()).await
        }
        _ => Ok(Redirect::to(&format!("/pay/{}/card/result", x.token)).into_response()),
    }
}

/// `POST /pay/{token}/card/challenge`
pub async fn challenge_submit(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    ShopperForm { page: x, fields }: ShopperForm,
) -> AppResult<Response> {
    let Some(p) = payments::live_for_checkout(&state.db, &x.o.checkout.id).await? else {
        return Ok(Redirect::to(&format!("/pay/{}/card/result", x.token)).into_response());
    };
    let outcome = flow::complete_challenge(
        &state,
        &x.o,
        &p.id,
        form::get(&fields, "otp"),
        &client.to_string(),
    )
    .await?;
    respond(&state, &x, outcome, &Kept::default()).await
}

/// `POST /pay/{token}/card/challenge/cancel`: leave the challenge for the method selector.
pub async fn challenge_cancel(
    State(state): State<AppState>,
    ShopperForm { page: x, .. }: ShopperForm,
) -> AppResult<Response> {
    if let Some(p) = payments::live_for_checkout(&state.db, &x.o.checkout.id).await? {
        flow::abandon_challenge(&state, &x.o, &p.id).await?;
    }
    Ok(Redirect::to(&format!("/pay/{}", x.token)).into_response())
}

/// `GET /pay/{token}/card/result`: the state of the checkout's card payment. Reloading it never
/// charges again.
pub async fn result_page(State(state): State<AppState>, x: ShopperPage) -> AppResult<Response> {
    let p = payments::latest_for_checkout(&state.db, &x.o.checkout.id).await?;
    match p {
        Some(p) if p.method == Method::Card => {
            respond_page(&state, &x, flow::outcome_of(p), &Kept::default()).await
        }
        _ => Ok(Redirect::to(&format!("/pay/{}", x.token)).into_response()),
    }
}

/// After a POST: redirect to a GET page (so reload is safe), except failures, which re-show the
/// form with the reason.
async fn respond(
    state: &AppState,
    x: &Ctx,
    outcome: PayOutcome,
    kept: &Kept,
) -> AppResult<Response> {
    match outcome {
        PayOutcome::Done(_) | PayOutcome::InProgress(_) => {
            Ok(Redirect::to(&format!("/pay/{}/card/result", x.token)).into_response())
        }
        PayOutcome::Challenge {
            wrong_code: false, ..
        } => Ok(Redirect::to(&format!("/pay/{}/card/challenge", x.token)).into_response()),
        PayOutcome::Redirect { url, .. } => Ok(Redirect::to(&url).into_response()),
        other => respond_page(state, x, other, kept).await,
    }
}

async fn respond_page(
    state: &AppState,
    x: &Ctx,
    outcome: PayOutcome,
    kept: &Kept,
) -> AppResult<Response> {
    let en = x.o.checkout.lang == "en";
    match outcome {
        // Still on the processor's 3-D Secure page (a reload of our page): back there.
        PayOutcome::Redirect { url, .. } => Ok(Redirect::to(&url).into_response()),
        PayOutcome::Challenge {
            payment,
            attempts_left,
            wrong_code,
        } => {
            let d = payment.details_json();
            let brand = d["brand"]
                .as_str()
                .and_then(crate::domain::card::Brand::from_code);
            let program = brand
                .map(|b| b.three_ds_program())
                .unwrap_or("3-D Secure")
                .to_owned();
            let masked = format!("**** **** **** {}", d["last4"].as_str().unwrap_or(""));
            let (c, order) = (chrome(state, x), order(x));
            let action = format!("/pay/{}/card/challenge", x.token);
            let csrf = Session::csrf(&x.token, &state.secret);
            let status = if wrong_code {
                StatusCode::UNPROCESSABLE_ENTITY
            } else {
                StatusCode::OK
            };
            match x.device {
                Device::FeaturePhone => page_with_status(
                    x.device,
                    status,
                    &FpChallenge {
                        c,
                        order,
                        action,
                        csrf,
                        program,
                        masked,
                        attempts_left,
                        wrong_code,
                        cancel_action: format!("/pay/{}/card/challenge/cancel", x.token),
                    },
                ),
                _ => page_with_status(
                    x.device,
                    status,
                    &WebChallenge {
                        c,
                        order,
                        action,
                        csrf,
                        program,
                        masked,
                        attempts_left,
                        wrong_code,
                        cancel_action: format!("/pay/{}/card/challenge/cancel", x.token),
                    },
                ),
            }
        }
        PayOutcome::Failed {
            message_ja,
            message_en,
            ..
        } => {
            let locked = flow::check_lock(state, &flow::key_for(&x.o, "-", None))
                .await
                .is_err();
            if x.o.checkout.status == CheckoutStatus::Open && !locked {
                let msg = if en { message_en } else { message_ja };
                return render_form(
                    state,
                    x,
                    FieldErrors::default(),
                    Some(msg),
                    &kept.exp_month,
                    &kept.exp_year,
                    &kept.holder,
                    kept.option(),
                    StatusCode::PAYMENT_REQUIRED,
                )
                .await;
            }
            let mut msg = if en { message_en } else { message_ja };
            if locked {
                msg.push(' ');
                msg.push_str(if en {
                    Reason::Locked.message_en()
                } else {
                    Reason::Locked.message_ja()
                });
            }
            result(
                state,
                x,
                "failure",
                if en {
                    "Payment failed"
                } else {
                    "お支払いできませんでした"
                },
                msg,
                vec![],
                None,
            )
            .await
        }
        PayOutcome::Done(p) => {
            let details = receipt(&p, en);
            let title = if en {
                "Thank you: payment complete"
            } else {
                "お支払いが完了しました"
            };
            let msg = if en {
                "Your card payment has been accepted."
            } else {
                "クレジットカードでのお支払いを受け付けました。"
            };
            result(
                state,
                x,
                "success",
                title,
                msg.to_owned(),
                details,
                Some(&p),
            )
            .await
        }
        PayOutcome::InProgress(p) => {
            let title = if en {
                "Payment in progress"
            } else {
                "お支払い手続き中です"
            };
            let msg = if en {
                "This order's payment is being processed. Reload this page in a moment."
            } else {
                "このご注文のお支払いを処理中です。しばらくしてから再読み込みしてください。"
            };
            let _ = p;
            result(state, x, "pending", title, msg.to_owned(), vec![], None).await
        }
    }
}

fn receipt(p: &PaymentRow, en: bool) -> Vec<(String, String)> {
    let d = p.details_json();
    let option = d["option"]
        .as_str()
        .and_then(|o| PaymentOption::parse(o).ok());
    let mut v = vec![
        (
            (if en { "Payment ID" } else { "決済ID" }).to_owned(),
            p.id.clone(),
        ),
        (
            (if en { "Card" } else { "カード" }).to_owned(),
            format!(
                "{} **** {}",
                d["brand_name"].as_str().unwrap_or(""),
                d["last4"].as_str().unwrap_or("")
            ),
        ),
    ];
    if let Some(o) = option {
        v.push((
            (if en { "Option" } else { "お支払い回数" }).to_owned(),
            if en { o.label_en() } else { o.label_ja() },
        ));
    }
    v
}

async fn result(
    state: &AppState,
    x: &Ctx,
    kind: &'static str,
    title: &str,
    message: String,
    details: Vec<(String, String)>,
    paid: Option<&PaymentRow>,
) -> AppResult<Response> {
    let return_url = if kind == "success" {
        Some(crate::flows::return_link(&state.db, &state.keys, &x.o.checkout, paid).await?)
    } else {
        x.o.checkout.cancel_url.clone()
    };
    let other_url = (kind == "failure" && x.o.checkout.status == CheckoutStatus::Open)
        .then(|| format!("/pay/{}", x.token));
    let (c, order) = (chrome(state, x), order(x));
    let title = title.to_owned();
    let status = if kind == "failure" {
        StatusCode::PAYMENT_REQUIRED
    } else {
        StatusCode::OK
    };
    ResultPage {
        c,
        order,
        kind,
        title,
        message,
        details,
        return_url,
        retry_url: None,
        other_url,
    }
    .render(x.device, status)
}

#[allow(clippy::too_many_arguments)]
async fn render_form(
    state: &AppState,
    x: &Ctx,
    errors: FieldErrors,
    form_error: Option<String>,
    exp_month: &str,
    exp_year: &str,
    holder_value: &str,
    selected: &str,
    status: StatusCode,
) -> AppResult<Response> {
    if x.o.connectors.client_card().is_some() {
        let s = &x.token;
        return super::card_browser::render(state, x.device, s, &x.o, form_error, status).await;
    }
    let (opts, holder) = card_settings(x);
    let en = x.o.checkout.lang == "en";
    let today = crate::util::jst_datetime(state.now_ms());
    let options = opts
        .options()
        .iter()
        .map(|o| OptionView {
            code: o.code(),
            label: if en { o.label_en() } else { o.label_ja() },
            selected: o.code() == selected,
            not_for: Brand::ALL
                .into_iter()
                .filter(|b| !allowed_for_brand(*o, *b))
                .map(Brand::code)
                .collect::<Vec<_>>()
                .join(" "),
        })
        .collect();
    let (c, order) = (chrome(state, x), order(x));
    let action = format!("/pay/{}/card", x.token);
    let csrf = Session::csrf(&x.token, &state.secret);
    let back_url = format!("/pay/{}", x.token);
    let (exp_month, exp_year, holder_value) = (
        exp_month.to_owned(),
        exp_year.to_owned(),
        holder_value.to_owned(),
    );
    match x.device {
        Device::FeaturePhone => page_with_status(
            x.device,
            status,
            &FpCardForm {
                c,
                order,
                action,
                csrf,
                back_url,
                options,
                holder,
                holder_value,
                exp_month,
                exp_year,
                errors,
                form_error,
            },
        ),
        _ => page_with_status(
            x.device,
            status,
            &WebCardForm {
                c,
                order,
                action,
                csrf,
                back_url,
                options,
                holder,
                holder_value,
                exp_month,
                exp_year,
                errors,
                form_error,
                script: state.card_form_js.to_string(),
                today: format!("{:04}-{:02}", today.year(), today.month() as u8),
                script_msgs: script_msgs(en),
            },
        ),
    }
}

/// The card script's messages, worded as the server words the same errors.
fn script_msgs(en: bool) -> Vec<(&'static str, String)> {
    let m = |e: CardError| if en { e.message_en() } else { e.message_ja() };
    vec![
        ("number", m(CardError::InvalidNumber)),
        ("expiry", m(CardError::InvalidExpiry)),
    ]
}
