//! 決済新規登録 in the console: staff create a payment link for an order (amount, order id, item,
//! methods, validity) through the same flow as `POST /api/v1/checkouts`, then copy it to the
//! shopper; or, given a mobile number and/or an e-mail address, send it as a payment request
//! (SMS決済 / メール決済, the flow of `POST /api/v1/payment-requests`). Admin role, CSRF, an audit
//! record (done or refused).

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use crate::console::actions;
use crate::console::audit;
use crate::console::auth::Staff;
use crate::console::error::{ConsoleError, ConsoleResult};
use crate::console::views::{self, Choice, Chrome, LinkCreated};
use crate::db::merchants::{self, MerchantRow};
use crate::domain::Method;
use crate::form;
use crate::routes::console::html;
use crate::routes::console_admin::{admin_form, map_action};
use crate::state::AppState;
use crate::util::{format_jst, format_yen};

/// Longest validity staff may give a link, in days (the link rules allow 30).
const MAX_DAYS: i64 = 30;

async fn merchant(state: &AppState, staff: &Staff, requested: &str) -> ConsoleResult<MerchantRow> {
    let id = staff.merchant_for(&state.db, requested.trim()).await?;
    merchants::get(&state.db, &id)
        .await?
        .ok_or(ConsoleError::NotFound)
}

/// What the form shows again after a refusal (or empty for a new link).
#[derive(Default)]
struct Typed {
    order_id: String,
    amount: String,
    item_name: String,
    days: String,
    methods: Vec<String>,
    phone: String,
    email: String,
}

fn page(
    state: &AppState,
    staff: &Staff,
    m: &MerchantRow,
    t: Typed,
    error: Option<String>,
    created: Option<LinkCreated>,
) -> views::CheckoutNew {
    views::CheckoutNew {
        c: Chrome::staff(state, staff),
        merchant: if staff.scope().is_multi() {
            m.id.clone()
        } else {
            String::new()
        },
        methods: m
            .methods()
            .iter()
            .map(|x| Choice {
                code: x.code().into(),
                label: x.name_ja().into(),
                selected: t.methods.iter().any(|c| c == x.code()),
            })
            .collect(),
        order_id: t.order_id,
        amount: t.amount,
        item_name: t.item_name,
        days: t.days,
        phone: t.phone,
        email: t.email,
        error,
        created,
    }
}

/// `GET /console/checkouts/new`: the form (operators add `?merchant=<id>`).
pub async fn new(
    State(state): State<AppState>,
    staff: Staff,
    RawQuery(q): RawQuery,
) -> ConsoleResult<Response> {
    staff.require_admin()?;
    let q = form::decode(q.unwrap_or_default().as_bytes(), encoding_rs::UTF_8);
    let m = merchant(&state, &staff, form::get(&q, "merchant")).await?;
    html(
        StatusCode::OK,
        &page(&state, &staff, &m, Typed::default(), None, None),
    )
}

/// `POST /console/checkouts`: signs and opens the checkout, then shows its link.
pub async fn create(
    State(state): State<AppState>,
    staff: Staff,
    headers: HeaderMap,
    body: Bytes,
) -> ConsoleResult<Response> {
    let f = admin_form(&state, &staff, &headers, &body)?;
    let m = merchant(&state, &staff, form::get(&f, "merchant")).await?;
    let field = |k: &str| form::get(&f, k).trim().to_owned();
    let typed = Typed {
        order_id: field("order_id"),
        amount: field("amount"),
        item_name: field("item_name"),
        days: field("days"),
        methods: f
            .iter()
            .filter(|(k, _)| k == "methods")
            .map(|(_, v)| v.trim().to_owned())
            .collect(),
        phone: field("phone"),
        email: field("email"),
    };
    let refuse = |typed: Typed, msg: String| -> ConsoleResult<Response> {
        html(
            StatusCode::UNPROCESSABLE_ENTITY,
            &page(&state, &staff, &m, typed, Some(msg), None),
        )
    };
    let Some(amount) = typed
        .amount
        .replace(',', "")
        .parse::<i64>()
        .ok()
        .filter(|a| *a > 0)
    else {
        return refuse(typed, "金額は1以上の整数（円）で入力してください。".into());
    };
    let days = match typed.days.as_str() {
        "" => None,
        d => match d.parse::<i64>().ok().filter(|d| (1..=MAX_DAYS).contains(d)) {
            Some(d) => Some(d),
            None => {
                return refuse(
                    typed,
                    format!("有効期間は1〜{MAX_DAYS}日で入力してください。"),
                )
            }
        },
    };
    if typed.methods.iter().any(|c| Method::parse(c).is_none()) {
        return refuse(typed, "決済方法が正しくありません。".into());
    }
    // As the API does without `return_url`: the shop's first registered origin.
    let Some(return_url) = m.origins().first().map(|o| format!("{o}/")) else {
        return refuse(
            typed,
            "戻り先のオリジンが登録されていません。設定で登録してください。".into(),
        );
    };
    let mut fields = vec![
        ("order_id".to_owned(), typed.order_id.clone()),
        ("amount".to_owned(), amount.to_string()),
        ("item_name".to_owned(), typed.item_name.clone()),
        ("return_url".to_owned(), return_url),
    ];
    if !typed.methods.is_empty() {
        fields.push(("methods".into(), typed.methods.join(",")));
    }
    let lifetime = days.map_or(crate::flows::checkout::DEFAULT_EXPIRES_IN, |d| d * 86_400);
    if !typed.phone.is_empty() || !typed.email.is_empty() {
        return send_request(&state, &staff, &m, typed, fields, amount, lifetime).await;
    }
    let expires_at_s = state.now_s() + lifetime;
    let r = actions::checkout_create(&state, &m, &fields, expires_at_s).await;
    let detail = match &r {
        Ok(_) => format!("ok order={} amount={amount}", typed.order_id),
        Err(e) => format!("refused order={} amount={amount}: {e}", typed.order_id),
    };
    let target = r
        .as_ref()
        .map(|(o, _)| o.checkout.id.clone())
        .unwrap_or_default();
    audit::staff(
        &state.db,
        &staff,
        Some(&m.id),
        "checkout.create",
        &target,
        &detail,
    )
    .await?;
    let (opened, url) = match r {
        Ok(v) => v,
        Err(actions::ActionError::Refused(msg)) => return refuse(typed, msg),
        Err(e) => return Err(map_action(e)),
    };
    let created = LinkCreated {
        order_id: opened.checkout.order_id.clone(),
        amount: format_yen(amount),
        url,
        expires: format_jst(expires_at_s * 1000),
        sent_to: String::new(),
    };
    html(
        StatusCode::OK,
        &page(&state, &staff, &m, Typed::default(), None, Some(created)),
    )
}

/// The form with a number or an address: the link goes out as a payment request (its short
/// URL, sent by SMS and/or e-mail), audited as `payment_request.send` like the request page.
async fn send_request(
    state: &AppState,
    staff: &Staff,
    m: &MerchantRow,
    typed: Typed,
    fields: Vec<(String, String)>,
    amount: i64,
    lifetime: i64,
) -> ConsoleResult<Response> {
    let new = crate::flows::payment_requests::NewRequest {
        phone: typed.phone.clone(),
        email: typed.email.clone(),
        order_fields: fields,
        amount,
        item_name: typed.item_name.clone(),
        expires_in_s: lifetime,
    };
    let r = actions::request_send(state, m, new).await;
    let (target, detail) = match &r {
        Ok(req) => (
            req.id.clone(),
            format!("ok -> open order={} amount={amount}", typed.order_id),
        ),
        Err(e) => (
            String::new(),
            format!("refused: {e} order={} amount={amount}", typed.order_id),
        ),
    };
    audit::staff(
        &state.db,
        staff,
        Some(&m.id),
        "payment_request.send",
        &target,
        &detail,
    )
    .await?;
    let req = match r {
        Ok(req) => req,
        Err(actions::ActionError::Refused(msg)) => {
            return html(
                StatusCode::UNPROCESSABLE_ENTITY,
                &page(state, staff, m, typed, Some(msg), None),
            )
        }
        Err(e) => return Err(map_action(e)),
    };
    let created = LinkCreated {
        order_id: req.order_id.clone(),
        amount: format_yen(amount),
        url: crate::flows::payment_requests::short_url(state, &req.code),
        expires: format_jst(req.expires_at),
        sent_to: [req.phone(), req.email.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" / "),
    };
    html(
        StatusCode::OK,
        &page(state, staff, m, Typed::default(), None, Some(created)),
    )
}
