//! Console handlers for refund requests (返金依頼) of paid konbini / Pay-easy / online-banking
//! payments: create one (amount), mark it paid out (振込済) once the shopper gave an account, or
//! withdraw it (取消). Admin role, CSRF, a confirmation page, an audit record each (done or
//! refused).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};

use crate::console::actions;
use crate::console::audit;
use crate::console::auth::Staff;
use crate::console::error::{ConsoleError, ConsoleResult};
use crate::console::views::{self, Chrome};
use crate::form;
use crate::routes::console::{html, visible_payment};
use crate::routes::console_admin::{admin_form, map_action};
use crate::state::AppState;
use crate::util::format_yen;

/// `POST /console/payments/{id}/refund-requests`: `amount`; without `confirm=yes` the
/// confirmation page.
pub async fn create(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ConsoleResult<Response> {
    let f = admin_form(&state, &staff, &headers, &body)?;
    let p = visible_payment(&state, &staff, &id).await?;
    let amount = form::get(&f, "amount")
        .trim()
        .replace(',', "")
        .parse::<i64>()
        .ok()
        .filter(|a| *a > 0)
        .ok_or_else(|| ConsoleError::Bad("返金額は1以上の整数（円）で入力してください。".into()))?;
    if form::get(&f, "confirm") != "yes" {
        let page = views::Confirm {
            c: Chrome::staff(&state, &staff),
            title: "返金依頼の作成の確認".into(),
            lines: vec![
                format!("取引ID: {}", p.order_id),
                format!("決済ID: {}", p.id),
                format!("決済金額: {}円", format_yen(p.amount)),
                format!("返金額: {}円", format_yen(amount)),
                "作成後に表示されるURLから、お客様に返金先の口座を登録していただきます。".into(),
                match form::get(&f, "email").trim() {
                    "" => "URLのご案内メール: 決済時のメールアドレスがあれば、そこへ送信します。"
                        .into(),
                    e => format!("URLのご案内メールの送信先: {e}"),
                },
            ],
            action: format!("/console/payments/{id}/refund-requests"),
            fields: vec![
                ("amount".into(), amount.to_string()),
                ("email".into(), form::get(&f, "email").trim().to_owned()),
            ],
            back: format!("/console/payments/{id}"),
        };
        return html(StatusCode::OK, &page);
    }
    let email = Some(form::get(&f, "email").trim()).filter(|e| !e.is_empty());
    let r =
        actions::refund_request_create(&state, staff.scope(), &id, amount, email, &staff.actor())
            .await;
    let (target, detail) = match &r {
        // The address is the shopper's personal data: the audit says only whether one was used.
        Ok((r, to)) => (
            r.row.id.clone(),
            format!(
                "ok -> requested payment={id} amount={amount} mailed={}",
                to.is_some()
            ),
        ),
        Err(e) => (
            String::new(),
            format!("refused payment={id} amount={amount}: {e}"),
        ),
    };
    audit::staff(
        &state.db,
        &staff,
        Some(&p.merchant_id),
        "refund_request.create",
        &target,
        &detail,
    )
    .await?;
    let (_, mailed_to) = r.map_err(map_action)?;
    let done = if mailed_to.is_some() {
        "refund_request_mailed"
    } else {
        "refund_request"
    };
    Ok(Redirect::to(&format!(
        "/console/payments/{id}?done={done}#refund-requests"
    ))
    .into_response())
}

/// `POST /console/refund-requests/{id}/paid` or `…/cancel`.
pub async fn act(
    State(state): State<AppState>,
    staff: Staff,
    Path((id, op)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> ConsoleResult<Response> {
    let f = admin_form(&state, &staff, &headers, &body)?;
    let (paid, label) = match op.as_str() {
        "paid" => (true, "振込済にする"),
        "cancel" => (false, "取消"),
        _ => return Err(ConsoleError::NotFound),
    };
    let r = actions::refund_request_get(&state, staff.scope(), &id)
        .await
        .map_err(map_action)?;
    let payment_id = r.row.payment_id.clone();
    if form::get(&f, "confirm") != "yes" {
        let page = views::Confirm {
            c: Chrome::staff(&state, &staff),
            title: format!("返金依頼を{label}の確認"),
            lines: vec![
                format!("返金依頼ID: {}", r.row.id),
                format!("決済ID: {payment_id}"),
                format!("返金額: {}円", format_yen(r.row.amount)),
            ],
            action: format!("/console/refund-requests/{id}/{op}"),
            fields: vec![],
            back: format!("/console/payments/{payment_id}"),
        };
        return html(StatusCode::OK, &page);
    }
    let out = actions::refund_request_step(&state, &r, paid, &staff.actor()).await;
    let detail = match &out {
        Ok(after) => format!("ok {} -> {}", r.status.code(), after.status.code()),
        Err(e) => format!("refused {}: {e}", r.status.code()),
    };
    audit::staff(
        &state.db,
        &staff,
        Some(&r.row.merchant_id),
        &format!("refund_request.{op}"),
        &id,
        &detail,
    )
    .await?;
    out.map_err(map_action)?;
    let done = if paid { "refund_paid" } else { "refund_cancel" };
    Ok(Redirect::to(&format!(
        "/console/payments/{payment_id}?done={done}#refund-requests"
    ))
    .into_response())
}
