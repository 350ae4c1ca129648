//! Console handlers for payment requests by SMS and e-mail (SMS決済 / メール決済): the list with
//! delivery status, sending a new one, resending and cancelling (admin role, CSRF, an audit
//! record each, done or refused).

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};

use crate::console::actions::{self, ActionError};
use crate::console::audit;
use crate::console::auth::Staff;
use crate::console::error::{ConsoleError, ConsoleResult};
use crate::console::payment_requests::{view, RequestList};
use crate::console::views::{self, Chrome};
use crate::db::merchants::{self, MerchantRow};
use crate::flows::payment_requests::NewRequest;
use crate::form;
use crate::routes::console::html;
use crate::routes::console_admin::admin_form;
use crate::state::AppState;

/// How many requests the list shows (newest first).
const LIST_LIMIT: i64 = 100;

/// The merchant the user works on: its own, or the one an operator names.
async fn merchant(state: &AppState, staff: &Staff, requested: &str) -> ConsoleResult<MerchantRow> {
    let id = staff.merchant_for(&state.db, requested.trim()).await?;
    merchants::get(&state.db, &id)
        .await?
        .ok_or(ConsoleError::NotFound)
}

fn page_url(m: &MerchantRow, staff: &Staff, done: &str) -> String {
    let mq = if staff.scope().is_multi() {
        format!(
            "merchant={}&",
            form_urlencoded::byte_serialize(m.id.as_bytes()).collect::<String>()
        )
    } else {
        String::new()
    };
    format!("/console/payment-requests?{mq}done={done}")
}

fn map_action(e: ActionError) -> ConsoleError {
    match e {
        ActionError::NotFound => ConsoleError::NotFound,
        ActionError::Refused(m) => ConsoleError::Conflict(m),
        ActionError::Db(e) => ConsoleError::Db(e),
    }
}

fn outcome<T>(r: &Result<T, ActionError>, ok: String) -> String {
    match r {
        Ok(_) => ok,
        Err(e) => format!("refused: {e}"),
    }
}

pub async fn list(
    State(state): State<AppState>,
    staff: Staff,
    RawQuery(q): RawQuery,
) -> ConsoleResult<Response> {
    let q = form::decode(q.unwrap_or_default().as_bytes(), encoding_rs::UTF_8);
    let m = merchant(&state, &staff, form::get(&q, "merchant")).await?;
    let mut rows = Vec::new();
    for r in crate::db::payment_requests::list(&state.db, &m.id, LIST_LIMIT).await? {
        rows.push(view(&state, &r).await?);
    }
    let message = match form::get(&q, "done") {
        "send" => Some("送信しました（メールは送信待ちを経て送られます）。".to_owned()),
        "resend" => Some("再送しました。".to_owned()),
        "cancel" => Some("決済依頼を取消しました。".to_owned()),
        _ => None,
    };
    let page = RequestList {
        c: Chrome::staff(&state, &staff),
        merchant: if staff.scope().is_multi() {
            m.id.clone()
        } else {
            String::new()
        },
        rows,
        message,
    };
    html(StatusCode::OK, &page)
}

/// `POST /console/payment-requests`: a checkout for the order and the SMS carrying its link.
pub async fn send(
    State(state): State<AppState>,
    staff: Staff,
    headers: HeaderMap,
    body: Bytes,
) -> ConsoleResult<Response> {
    let f = admin_form(&state, &staff, &headers, &body)?;
    let m = merchant(&state, &staff, form::get(&f, "merchant")).await?;
    let field = |k: &str| form::get(&f, k).trim().to_owned();
    let amount = field("amount")
        .replace(',', "")
        .parse::<i64>()
        .ok()
        .filter(|a| *a > 0)
        .ok_or_else(|| ConsoleError::Bad("金額は1以上の整数（円）で入力してください。".into()))?;
    let expires_in_s = match field("days").as_str() {
        "" => crate::flows::checkout::DEFAULT_EXPIRES_IN,
        d => d
            .parse::<i64>()
            .ok()
            .filter(|d| (1..=60).contains(d))
            .map(|d| d * 86_400)
            .ok_or_else(|| ConsoleError::Bad("有効期間は1〜60日で入力してください。".into()))?,
    };
    // As the API does without `return_url`: the shop's first registered origin.
    let return_url = m
        .origins()
        .first()
        .map(|o| format!("{o}/"))
        .ok_or_else(|| {
            ConsoleError::Bad(
                "戻り先のオリジンが登録されていません。設定で登録してください。".into(),
            )
        })?;
    let (order_id, item_name) = (field("order_id"), field("item_name"));
    let new = NewRequest {
        phone: field("phone"),
        email: field("email"),
        order_fields: vec![
            ("order_id".into(), order_id.clone()),
            ("amount".into(), amount.to_string()),
            ("item_name".into(), item_name.clone()),
            ("return_url".into(), return_url),
        ],
        amount,
        item_name,
        expires_in_s,
    };
    let r = actions::request_send(&state, &m, new).await;
    let target = r.as_ref().map(|r| r.id.clone()).unwrap_or_default();
    let detail = outcome(&r, format!("ok -> open order={order_id} amount={amount}"));
    let detail = if r.is_err() {
        format!("{detail} order={order_id} amount={amount}")
    } else {
        detail
    };
    audit::staff(
        &state.db,
        &staff,
        Some(&m.id),
        "payment_request.send",
        &target,
        &detail,
    )
    .await?;
    r.map_err(map_action)?;
    Ok(Redirect::to(&page_url(&m, &staff, "send")).into_response())
}

/// `POST /console/payment-requests/{id}/resend`: the same link by SMS again.
pub async fn resend(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ConsoleResult<Response> {
    let f = admin_form(&state, &staff, &headers, &body)?;
    let m = merchant(&state, &staff, form::get(&f, "merchant")).await?;
    let r = actions::request_resend(&state, &m, &id).await;
    if matches!(r, Err(ActionError::NotFound)) {
        return Err(ConsoleError::NotFound);
    }
    let detail = outcome(&r, "ok open -> open".into());
    audit::staff(
        &state.db,
        &staff,
        Some(&m.id),
        "payment_request.resend",
        &id,
        &detail,
    )
    .await?;
    r.map_err(map_action)?;
    Ok(Redirect::to(&page_url(&m, &staff, "resend")).into_response())
}

/// `POST /console/payment-requests/{id}/cancel`: without `confirm=yes` shows the confirmation.
pub async fn cancel(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ConsoleResult<Response> {
    let f = admin_form(&state, &staff, &headers, &body)?;
    let m = merchant(&state, &staff, form::get(&f, "merchant")).await?;
    let before = crate::db::payment_requests::get(&state.db, &m.id, &id)
        .await?
        .ok_or(ConsoleError::NotFound)?;
    if form::get(&f, "confirm") != "yes" {
        let page = views::Confirm {
            c: Chrome::staff(&state, &staff),
            title: "決済依頼の取消の確認".into(),
            lines: vec![
                format!("取引ID: {}", before.order_id),
                format!(
                    "送信先: {}",
                    [before.phone(), before.email.as_deref()]
                        .into_iter()
                        .flatten()
                        .collect::<Vec<_>>()
                        .join(" / ")
                ),
                format!("金額: {}円", crate::util::format_yen(before.amount)),
                "取消すと、送信したリンクからは支払えなくなります。".into(),
            ],
            action: format!("/console/payment-requests/{id}/cancel"),
            fields: vec![("merchant".into(), form::get(&f, "merchant").to_owned())],
            back: page_url(&m, &staff, ""),
        };
        return html(StatusCode::OK, &page);
    }
    let r = actions::request_cancel(&state, &m, &id).await;
    let detail = outcome(&r, format!("ok {} -> cancelled", before.status));
    audit::staff(
        &state.db,
        &staff,
        Some(&m.id),
        "payment_request.cancel",
        &id,
        &detail,
    )
    .await?;
    r.map_err(map_action)?;
    Ok(Redirect::to(&page_url(&m, &staff, "cancel")).into_response())
}
