//! Console: resend a shopper message, and the merchant's message settings (docs/messages.md).
//! Admin role, CSRF token, audit record.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};

use crate::console::audit;
use crate::console::auth::Staff;
use crate::console::error::{ConsoleError, ConsoleResult};
use crate::form;
use crate::routes::console::{html, visible_payment};
use crate::routes::console_admin::{admin_form, merchant_of};
use crate::state::AppState;

/// `POST /console/payments/{id}/messages/resend`: a new copy of the message, due now.
pub async fn resend(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ConsoleResult<Response> {
    let f = admin_form(&state, &staff, &headers, &body)?;
    let p = visible_payment(&state, &staff, &id).await?;
    let message_id = form::get(&f, "message_id");
    let copy = crate::flows::messages::resend(&state, &p.merchant_id, message_id)
        .await?
        .ok_or(ConsoleError::NotFound)?;
    audit::staff(
        &state.db,
        &staff,
        Some(&p.merchant_id),
        "message.resend",
        message_id,
        &format!("payment {id}, new message {copy}"),
    )
    .await?;
    Ok(Redirect::to(&format!("/console/payments/{id}?done=resend")).into_response())
}

fn settings_page(
    state: &AppState,
    staff: &Staff,
    m: &crate::db::merchants::MerchantRow,
    s: &crate::db::messages::Settings,
    error: Option<String>,
    saved: bool,
) -> crate::console::messages::SettingsPage {
    crate::console::messages::SettingsPage {
        c: crate::console::views::Chrome::staff(state, staff),
        merchant_id: m.id.clone(),
        merchant_name: m.name.clone(),
        sender_name: s.sender_name.clone().unwrap_or_default(),
        reply_to: s.reply_to.clone().unwrap_or_default(),
        reminder_hours: s.reminder_hours,
        receipts: s.receipts,
        sms: s.sms,
        mail_on: state.config.mail.smtp_host.is_some(),
        error,
        saved,
    }
}

/// `GET /console/settings/messages`: the merchant's message settings (admins).
pub async fn settings_get(
    State(state): State<AppState>,
    staff: Staff,
    RawQuery(q): RawQuery,
) -> ConsoleResult<Response> {
    staff.require_admin()?;
    let q = form::decode(q.unwrap_or_default().as_bytes(), encoding_rs::UTF_8);
    let m = merchant_of(&state, &staff, &q).await?;
    let s = crate::db::messages::settings(&state.db, &m.id).await?;
    let saved = form::get(&q, "saved") == "1";
    html(
        StatusCode::OK,
        &settings_page(&state, &staff, &m, &s, None, saved),
    )
}

/// `POST /console/settings/messages`: saves them (CSRF, audited as `message_settings.update`).
pub async fn settings_post(
    State(state): State<AppState>,
    staff: Staff,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> ConsoleResult<Response> {
    let f = admin_form(&state, &staff, &headers, &body)?;
    let q = form::decode(q.unwrap_or_default().as_bytes(), encoding_rs::UTF_8);
    let m = merchant_of(&state, &staff, &q).await?;
    match crate::console::messages::parse(&f) {
        Ok(s) => {
            crate::db::messages::set_settings(&state.db, &m.id, &s, state.now_ms()).await?;
            audit::staff(
                &state.db,
                &staff,
                Some(&m.id),
                "message_settings.update",
                &m.id,
                &format!("{s:?}"),
            )
            .await?;
            Ok(Redirect::to(&format!(
                "/console/settings/messages?merchant={}&saved=1",
                m.id
            ))
            .into_response())
        }
        Err(e) => {
            let current = crate::db::messages::settings(&state.db, &m.id).await?;
            html(
                StatusCode::BAD_REQUEST,
                &settings_page(&state, &staff, &m, &current, Some(e), false),
            )
        }
    }
}
