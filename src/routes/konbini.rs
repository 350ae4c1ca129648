//! Konbini (コンビニ決済), Pay-easy and bank-transfer (銀行振込) shopper pages: the chain choice,
//! the Pay-easy / bank-transfer confirmation, and the number (or 振込先) page shown again
//! whenever the shopper comes back.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};

use crate::connectors::konbini::IssueTarget;
use crate::db::payments::PaymentRow;
use crate::device::Device;
use crate::domain::konbini::{self as rules, Chain, NumberStatus};
use crate::domain::CheckoutStatus;
use crate::domain::{Method, Mode};
use crate::error::{AppError, AppResult, Reason};
use crate::flows::checkout::{self, Opened};
use crate::flows::konbini::{self as flow, IssueError, NumberDetails, WithdrawError};
use crate::pages::{
    ChainView, Chrome, FormErrorView, IssuedNumberPage, KonbiniChoice, KonbiniChoicePage,
    NumberChange, NumberFieldView, NumberPage, OrderView, PayeasyStart, PayeasyStartPage,
};
use crate::routes::shopper::{ShopperForm, ShopperPage};
use crate::session::Session;
use crate::state::AppState;

/// `GET /pay/{token}/konbini`: the issued number, or the chain choice.
pub async fn konbini_get(
    State(state): State<AppState>,
    ShopperPage { token, o, device }: ShopperPage,
) -> AppResult<Response> {
    if let Some(p) = flow::issued_for_checkout(&state.db, &o.checkout.id).await? {
        return number_page(&state, device, &o, &token, &p);
    }
    if o.checkout.status != CheckoutStatus::Open {
        return Ok(Redirect::to(&format!("/pay/{token}")).into_response());
    }
    ensure_offered(&o, device, Method::Konbini)?;
    render_choice(&state, device, &o, &token, None, None)
}

/// `POST /pay/{token}/konbini`: a chain chosen shows its confirm step ("セブン-イレブンでお支払い:
/// 番号を発行します"); confirmed (`confirm=1`), the number is issued, then shown (PRG).
pub async fn konbini_post(State(state): State<AppState>, f: ShopperForm) -> AppResult<Response> {
    let (o, device, token) = (&f.page.o, f.page.device, &f.page.token);
    let code = f.get("chain");
    let Some(chain) = Chain::parse(code) else {
        let e = IssueError::ChainNotEnabled(code.to_owned());
        return render_choice(&state, device, o, token, None, Some(&e));
    };
    if f.get("confirm") != "1" {
        if o.checkout.status != CheckoutStatus::Open
            || flow::issued_for_checkout(&state.db, &o.checkout.id)
                .await?
                .is_some()
        {
            return Ok(Redirect::to(&format!("/pay/{token}/konbini")).into_response());
        }
        ensure_offered(o, device, Method::Konbini)?;
        return match flow::check(o, IssueTarget::Konbini(chain)) {
            Ok(_) => render_choice(&state, device, o, token, Some(chain), None),
            Err(e) => render_choice(&state, device, o, token, None, Some(&e)),
        };
    }
    issue_and_show(
        &state,
        device,
        o,
        token,
        IssueTarget::Konbini(chain),
        Method::Konbini,
    )
    .await
}

/// `GET /pay/{token}/payeasy`: the issued numbers, or the confirmation form.
pub async fn payeasy_get(State(state): State<AppState>, page: ShopperPage) -> AppResult<Response> {
    confirm_get(&state, page, IssueTarget::Payeasy, Method::Payeasy).await
}

/// `POST /pay/{token}/payeasy`: issue the Pay-easy numbers, then show them (PRG).
pub async fn payeasy_post(State(state): State<AppState>, f: ShopperForm) -> AppResult<Response> {
    let p = &f.page;
    issue_and_show(
        &state,
        p.device,
        &p.o,
        &p.token,
        IssueTarget::Payeasy,
        Method::Payeasy,
    )
    .await
}

/// `GET /pay/{token}/bank_transfer`: the issued 振込先, or the confirmation form.
pub async fn bank_transfer_get(
    State(state): State<AppState>,
    page: ShopperPage,
) -> AppResult<Response> {
    confirm_get(
        &state,
        page,
        IssueTarget::BankTransfer,
        Method::BankTransfer,
    )
    .await
}

/// `POST /pay/{token}/bank_transfer`: issue the 振込先, then show it (PRG).
pub async fn bank_transfer_post(
    State(state): State<AppState>,
    f: ShopperForm,
) -> AppResult<Response> {
    let p = &f.page;
    issue_and_show(
        &state,
        p.device,
        &p.o,
        &p.token,
        IssueTarget::BankTransfer,
        Method::BankTransfer,
    )
    .await
}

/// The GET of a method whose number is issued after one confirmation (Pay-easy, bank
/// transfer): the number already issued for the checkout, else the confirmation form.
async fn confirm_get(
    state: &AppState,
    ShopperPage { token, o, device }: ShopperPage,
    target: IssueTarget,
    method: Method,
) -> AppResult<Response> {
    if let Some(p) = flow::issued_for_checkout(&state.db, &o.checkout.id).await? {
        return number_page(state, device, &o, &token, &p);
    }
    if o.checkout.status != CheckoutStatus::Open {
        return Ok(Redirect::to(&format!("/pay/{token}")).into_response());
    }
    ensure_offered(&o, device, method)?;
    render_start(state, device, &o, &token, target, None)
}

/// `POST /pay/{token}/number/retry`: asks the institution again for a number whose issue did
/// not complete (`issuing`), under the same payment id (idempotency key).
pub async fn number_retry_post(
    State(state): State<AppState>,
    f: ShopperForm,
) -> AppResult<Response> {
    let (o, device, token) = (&f.page.o, f.page.device, &f.page.token);
    let Some(p) = flow::issued_for_checkout(&state.db, &o.checkout.id).await? else {
        return Ok(Redirect::to(&format!("/pay/{token}")).into_response());
    };
    let Some(target) = flow::target_of(&p) else {
        return Ok(Redirect::to(&format!("/pay/{token}")).into_response());
    };
    let path = format!("/pay/{token}/{}", target.method().code());
    if p.status.number() != Some(NumberStatus::Issuing) {
        return Ok(Redirect::to(&path).into_response());
    }
    retry_outcome(&state, device, o, token, target, &path).await
}

/// Issues (or retries) and answers: the number page on success (PRG); while the issue is still
/// unanswered, the number page saying so with a "try again" button (503); when the
/// institution refused, the method's form with the reason (the checkout is open again).
async fn retry_outcome(
    state: &AppState,
    device: Device,
    o: &Opened,
    token: &str,
    target: IssueTarget,
    path: &str,
) -> AppResult<Response> {
    match flow::issue(&state.db, o, target, state.now_ms()).await {
        Ok(_) => {
            state.wake_notifier();
            Ok(Redirect::to(path).into_response())
        }
        Err(IssueError::Db(e)) => Err(e.into()),
        Err(IssueError::OtherPayment) => Ok(Redirect::to(&format!("/pay/{token}")).into_response()),
        Err(e) => {
            state.wake_notifier();
            let en = o.checkout.lang == "en";
            if let Some(p) = flow::issued_for_checkout(&state.db, &o.checkout.id).await? {
                // Still `issuing`: the number page offers to try again (same idempotency key).
                let (status, view) = form_error(&e, en);
                return number_page_with(
                    state,
                    device,
                    o,
                    token,
                    &p,
                    status,
                    Some(&format!("{} ({})", view.message, view.code)),
                    None,
                );
            }
            match target {
                IssueTarget::Konbini(_) => render_choice(state, device, o, token, None, Some(&e)),
                IssueTarget::Payeasy | IssueTarget::BankTransfer => {
                    render_start(state, device, o, token, target, Some(&e))
                }
            }
        }
    }
}

/// For the checkout page: when the checkout already has a konbini / Pay-easy number, its page
/// (so reopening the link or reloading shows the number and never issues another).
pub async fn issued_page(
    state: &AppState,
    device: Device,
    o: &Opened,
    token: &str,
) -> AppResult<Option<Response>> {
    // Issuing sets the checkout to pending in the same transaction: open ones have no number.
    if o.checkout.status == CheckoutStatus::Open {
        return Ok(None);
    }
    match flow::issued_for_checkout(&state.db, &o.checkout.id).await? {
        Some(p) => number_page(state, device, o, token, &p).map(Some),
        None => Ok(None),
    }
}

async fn issue_and_show(
    state: &AppState,
    device: Device,
    o: &Opened,
    token: &str,
    target: IssueTarget,
    method: Method,
) -> AppResult<Response> {
    let path = format!("/pay/{token}/{}", method.code());
    if let Some(p) = flow::issued_for_checkout(&state.db, &o.checkout.id).await? {
        // A re-post (double click, back button): show the number already issued, or ask again
        // for one whose issue did not complete.
        if p.status.number() == Some(NumberStatus::Issuing) {
            if let Some(t) = flow::target_of(&p) {
                let path = format!("/pay/{token}/{}", t.method().code());
                return retry_outcome(state, device, o, token, t, &path).await;
            }
        }
        return Ok(Redirect::to(&path).into_response());
    }
    if o.checkout.status != CheckoutStatus::Open {
        return Ok(Redirect::to(&format!("/pay/{token}")).into_response());
    }
    ensure_offered(o, device, method)?;
    retry_outcome(state, device, o, token, target, &path).await
}

fn ensure_offered(o: &Opened, device: Device, method: Method) -> AppResult<()> {
    if checkout::offered(o, device).contains(&method) {
        Ok(())
    } else {
        Err(AppError::shopper(Reason::MethodNotAvailable))
    }
}

fn chrome(state: &AppState, device: Device, o: &Opened, token: &str) -> Chrome {
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

fn order_view(o: &Opened) -> OrderView {
    OrderView::new(
        &o.checkout.order_id,
        &o.checkout.item_name,
        o.checkout.amount,
    )
}

/// The deadline a number issued at `now` would get (preview on the forms).
fn deadline_preview(o: &Opened, now: i64) -> String {
    let days = flow::days_for(o).clamp(0, i64::from(rules::MAX_DAYS)) as u32;
    crate::pages::shopper_deadline(rules::deadline_ms(now, days), o.checkout.lang == "en")
}

fn form_error(e: &IssueError, en: bool) -> (StatusCode, FormErrorView) {
    let status = match e {
        IssueError::Connector(_) | IssueError::NoConnector => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_REQUEST,
    };
    let message = if en { e.message_en() } else { e.message_ja() };
    tracing::info!(code = e.code(), error = %e, "number not issued");
    (
        status,
        FormErrorView {
            code: e.code(),
            message,
        },
    )
}

/// The chain choice, or with `confirm` the confirm step for that chain.
fn render_choice(
    state: &AppState,
    device: Device,
    o: &Opened,
    token: &str,
    confirm: Option<Chain>,
    error: Option<&IssueError>,
) -> AppResult<Response> {
    let en = o.checkout.lang == "en";
    let view = |chain: Chain, accesskey: usize| ChainView {
        code: chain.code(),
        name: if en { chain.name_en() } else { chain.name_ja() },
        accesskey,
    };
    let mut chains = Vec::new();
    let mut notes = Vec::new();
    for chain in flow::enabled_chains(o) {
        match flow::check(o, IssueTarget::Konbini(chain)) {
            Ok(_) => chains.push(view(chain, chains.len() + 1)),
            // Shown but not offered: the shopper learns why the store is missing.
            Err(e) => notes.push(if en { e.message_en() } else { e.message_ja() }),
        }
    }
    if chains.is_empty() && notes.is_empty() {
        return Err(AppError::shopper(Reason::MethodNotAvailable));
    }
    let (status, error) = match error {
        Some(e) => {
            let (s, v) = form_error(e, en);
            (s, Some(v))
        }
        None => (StatusCode::OK, None),
    };
    let f = KonbiniChoice {
        confirm: confirm.map(|c| view(c, 1)),
        chains,
        note: (!notes.is_empty()).then(|| notes.join(" ")),
        deadline: deadline_preview(o, state.now_ms()),
        action: format!("/pay/{token}/konbini"),
        csrf: Session::csrf(token, &state.secret),
        back_url: format!("/pay/{token}"),
        error,
    };
    let (c, order) = (chrome(state, device, o, token), order_view(o));
    KonbiniChoicePage { c, order, f }.render(device, status)
}

/// The Pay-easy or bank-transfer confirmation form.
fn render_start(
    state: &AppState,
    device: Device,
    o: &Opened,
    token: &str,
    target: IssueTarget,
    error: Option<&IssueError>,
) -> AppResult<Response> {
    let en = o.checkout.lang == "en";
    let (status, error) = match error {
        Some(e) => {
            let (s, v) = form_error(e, en);
            (s, Some(v))
        }
        None => (StatusCode::OK, None),
    };
    let f = PayeasyStart {
        kind: target.code(),
        deadline: deadline_preview(o, state.now_ms()),
        action: format!("/pay/{token}/{}", target.method().code()),
        csrf: Session::csrf(token, &state.secret),
        back_url: format!("/pay/{token}"),
        error,
    };
    let (c, order) = (chrome(state, device, o, token), order_view(o));
    PayeasyStartPage { c, order, f }.render(device, status)
}

fn status_text(s: NumberStatus, en: bool) -> &'static str {
    match (s, en) {
        (NumberStatus::Issuing, false) => {
            "お支払番号の発行が完了していません。「もう一度試す」を押してください。"
        }
        (NumberStatus::Issuing, true) => {
            "Your payment number has not been issued yet. Please press \"Try again\"."
        }
        (NumberStatus::IssueFailed, false) => {
            "お支払番号を発行できませんでした。別のお支払い方法をお選びください。"
        }
        (NumberStatus::IssueFailed, true) => {
            "No payment number could be issued. Please choose another way to pay."
        }
        (NumberStatus::AwaitingPayment, false) => {
            "お支払番号を発行しました。お支払期限までにお支払いください。"
        }
        (NumberStatus::AwaitingPayment, true) => {
            "Your payment number has been issued. Please pay by the deadline."
        }
        (NumberStatus::Reversed, false) => {
            "店舗・ATMでのお支払いが取り消されました。お支払期限までに、同じ番号で改めてお支払いください。"
        }
        (NumberStatus::Reversed, true) => {
            "The payment at the store or ATM was cancelled. Please pay again with the same number by the deadline."
        }
        (NumberStatus::Paid | NumberStatus::Confirmed, false) => {
            "お支払いを確認しました。ありがとうございました。"
        }
        (NumberStatus::Paid | NumberStatus::Confirmed, true) => {
            "We have received your payment. Thank you."
        }
        (NumberStatus::LatePaid, false) => {
            "お支払期限後のお支払いを受け付けました。ショップからのご連絡をお待ちください。"
        }
        (NumberStatus::LatePaid, true) => {
            "Your payment arrived after the deadline. The shop will contact you."
        }
        (NumberStatus::Expired, false) => {
            "お支払期限を過ぎたため、このお支払番号はご利用いただけません。ショップにお問い合わせください。"
        }
        (NumberStatus::Expired, true) => {
            "The payment deadline has passed: this number can no longer be used. Please contact the shop."
        }
        (NumberStatus::Cancelled, false) => {
            "このお支払番号は取り消しました。別のお支払い方法をお選びください。"
        }
        (NumberStatus::Cancelled, true) => {
            "This payment number was withdrawn. Please choose another way to pay."
        }
    }
}

/// `POST /pay/{token}/number/change`: withdraw the unpaid number (the institution cancels it
/// first), then back to the method choice, where the shopper picks another store or method.
pub async fn number_change_post(
    State(state): State<AppState>,
    f: ShopperForm,
) -> AppResult<Response> {
    let (o, device, token) = (&f.page.o, f.page.device, &f.page.token);
    let Some(p) = flow::issued_for_checkout(&state.db, &o.checkout.id).await? else {
        // Withdrawn already (a double click): the choice is open again.
        return Ok(Redirect::to(&format!("/pay/{token}")).into_response());
    };
    let en = o.checkout.lang == "en";
    match flow::withdraw(&state, o, &p).await {
        Ok(_) => Ok(Redirect::to(&format!("/pay/{token}")).into_response()),
        Err(WithdrawError::Db(e)) => Err(e.into()),
        Err(e) => {
            tracing::info!(payment = %p.id, error = %e, "number not withdrawn");
            // Paid meanwhile, or the institution could not be asked: the number stays; say so.
            let fresh = crate::db::payments::get(&state.db, &p.id)
                .await?
                .unwrap_or(p);
            let notice = match (e, en) {
                (WithdrawError::NotUnpaid, false) => "このお支払番号は変更できません（お支払い済みか、期限切れです）。",
                (WithdrawError::NotUnpaid, true) => "This payment number can no longer be changed (it was paid or has expired).",
                (_, false) => "ただいまお支払い方法を変更できません。しばらくしてからもう一度お試しください。この番号は引き続きご利用いただけます。",
                (_, true) => "The payment method cannot be changed right now. Please try again shortly; this number can still be used.",
            };
            number_page_with(
                &state,
                device,
                o,
                token,
                &fresh,
                StatusCode::OK,
                Some(notice),
                None,
            )
        }
    }
}

pub(crate) fn number_page(
    state: &AppState,
    device: Device,
    o: &Opened,
    token: &str,
    p: &PaymentRow,
) -> AppResult<Response> {
    number_page_with(state, device, o, token, p, StatusCode::OK, None, None)
}

/// The number page, with the outcome of a change attempt (`notice`) or of its e-mail form
/// (`mail_notice`) when one was just posted.
#[allow(clippy::too_many_arguments)]
pub(crate) fn number_page_with(
    state: &AppState,
    device: Device,
    o: &Opened,
    token: &str,
    p: &PaymentRow,
    code: StatusCode,
    notice: Option<&str>,
    mail_notice: Option<String>,
) -> AppResult<Response> {
    let en = o.checkout.lang == "en";
    let target = flow::target_of(p)
        .ok_or_else(|| anyhow::anyhow!("payment {} is not a number payment", p.id))?;
    let status = p
        .status
        .number()
        .ok_or_else(|| anyhow::anyhow!("payment {} has status {:?}", p.id, p.status))?;
    let details = NumberDetails::of(p);
    let fields = target
        .shape()
        .fields()
        .iter()
        .map(|f| NumberFieldView {
            key: f.key,
            label: if en { f.label_en } else { f.label_ja },
            value: details.get(f.key).unwrap_or("").to_owned(),
        })
        .collect();
    let account = details
        .account
        .as_ref()
        .map(|a| flow::account_lines(a, en))
        .unwrap_or_default();
    let (title, steps) = match target {
        IssueTarget::Konbini(chain) if en => {
            (format!("Pay at {}", chain.name_en()), chain.how_to_pay_en())
        }
        IssueTarget::Konbini(chain) => (
            format!("{}でのお支払い", chain.name_ja()),
            chain.how_to_pay_ja(),
        ),
        IssueTarget::Payeasy if en => (
            "Pay with Pay-easy (ATM / online banking)".to_owned(),
            rules::payeasy_how_to_pay_en(),
        ),
        IssueTarget::Payeasy => (
            "Pay-easy（ペイジー）でのお支払い".to_owned(),
            rules::payeasy_how_to_pay_ja(),
        ),
        IssueTarget::BankTransfer if en => (
            "Pay by bank transfer".to_owned(),
            rules::bank_transfer_how_to_pay_en(),
        ),
        IssueTarget::BankTransfer => (
            "銀行振込でのお支払い".to_owned(),
            rules::bank_transfer_how_to_pay_ja(),
        ),
    };
    let n = NumberPage {
        payment_id: p.id.clone(),
        title,
        status: status.code(),
        status_text: status_text(status, en).to_owned(),
        payable: matches!(
            status,
            NumberStatus::AwaitingPayment | NumberStatus::Reversed
        ),
        fields,
        account,
        retry: (status == NumberStatus::Issuing).then(|| NumberChange {
            action: format!("/pay/{token}/number/retry"),
            csrf: Session::csrf(token, &state.secret),
        }),
        deadline: p
            .deadline_at
            .map(|ms| crate::pages::shopper_deadline(ms, en))
            .unwrap_or_default(),
        amount: crate::util::format_yen(p.amount),
        steps: steps.to_vec(),
        test_mode: o.merchant.mode() == Mode::Test,
        return_url: o.checkout.return_url.clone(),
        instructions_url: details.payment_url.clone(),
        // Until it is paid, the shopper may withdraw the number and pay another way (or give
        // up on one whose issue did not complete).
        change: matches!(
            status,
            NumberStatus::AwaitingPayment | NumberStatus::Issuing
        )
        .then(|| NumberChange {
            action: format!("/pay/{token}/number/change"),
            csrf: Session::csrf(token, &state.secret),
        }),
        notice: notice.map(str::to_owned),
        badge: crate::badges::chain(target.code()),
        script: state.number_js.to_string(),
        mail: mail_form(state, token, status, mail_notice),
    };
    let (c, order) = (chrome(state, device, o, token), order_view(o));
    IssuedNumberPage { c, order, n }.render(device, code)
}

/// The number page's e-mail form: only when this server sends e-mail and the number can still
/// be paid.
pub fn mail_form(
    state: &AppState,
    token: &str,
    status: NumberStatus,
    notice: Option<String>,
) -> Option<crate::pages::MailForm> {
    let usable = state.config.mail.smtp_host.is_some() && status == NumberStatus::AwaitingPayment;
    usable.then(|| crate::pages::MailForm {
        action: format!("/pay/{token}/email-instructions"),
        csrf: Session::csrf(token, &state.secret),
        notice,
    })
}
