//! Console handlers for continuous-billing contracts (継続課金): list, detail and cancel
//! (admin role, CSRF, a confirmation page, an audit record with the status before and after).

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};

use crate::console::actions::{self, ActionError};
use crate::console::audit;
use crate::console::auth::Staff;
use crate::console::error::{ConsoleError, ConsoleResult};
use crate::console::subscriptions::{SubView, SubscriptionDetail, SubscriptionList};
use crate::console::views::{self, Chrome};
use crate::db::subscriptions::{self, SubscriptionRow};
use crate::form;
use crate::routes::console::html;
use crate::routes::console_admin::admin_form;
use crate::state::AppState;

/// How many contracts the list shows (newest first).
const LIST_LIMIT: i64 = 200;

/// Loads a contract the user may see (another merchant's is "not found").
async fn visible(state: &AppState, staff: &Staff, id: &str) -> ConsoleResult<SubscriptionRow> {
    subscriptions::get_in(&state.db, staff.scope(), id)
        .await?
        .ok_or(ConsoleError::NotFound)
}

pub async fn list(State(state): State<AppState>, staff: Staff) -> ConsoleResult<Response> {
    let rows = subscriptions::list(&state.db, staff.scope(), LIST_LIMIT).await?;
    let page = SubscriptionList {
        c: Chrome::staff(&state, &staff),
        rows: rows.iter().map(SubView::new).collect(),
    };
    html(StatusCode::OK, &page)
}

pub async fn detail(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> ConsoleResult<Response> {
    let s = visible(&state, &staff, &id).await?;
    let q = form::decode(q.unwrap_or_default().as_bytes(), encoding_rs::UTF_8);
    let message =
        (form::get(&q, "done") == "cancel").then(|| "継続課金契約を解約しました。".to_owned());
    let page = SubscriptionDetail {
        c: Chrome::staff(&state, &staff),
        s: SubView::new(&s),
        message,
    };
    html(StatusCode::OK, &page)
}

/// `POST /console/subscriptions/{id}/cancel`: without `confirm=yes` shows the confirmation page.
pub async fn cancel(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ConsoleResult<Response> {
    let f = admin_form(&state, &staff, &headers, &body)?;
    let before = visible(&state, &staff, &id).await?;
    if form::get(&f, "confirm") != "yes" {
        let v = SubView::new(&before);
        let page = views::Confirm {
            c: Chrome::staff(&state, &staff),
            title: "継続課金契約の解約の確認".into(),
            lines: vec![
                format!("契約ID: {}", v.id),
                format!("キャリア: {}", v.carrier_ja),
                format!("月額: {}円", v.amount),
                "解約すると、次回以降の課金は行われません。".into(),
            ],
            action: format!("/console/subscriptions/{id}/cancel"),
            fields: vec![],
            back: format!("/console/subscriptions/{id}"),
        };
        return html(StatusCode::OK, &page);
    }
    let r = actions::subscription_cancel(&state, staff.scope(), &id, &staff.actor()).await;
    let detail = match &r {
        Ok(after) => format!("ok {} -> {}", before.status, after.status),
        Err(e) => format!("refused {}: {e}", before.status),
    };
    audit::staff(
        &state.db,
        &staff,
        Some(&before.merchant_id),
        "subscription_contract.cancel",
        &id,
        &detail,
    )
    .await?;
    r.map_err(|e| match e {
        ActionError::NotFound => ConsoleError::NotFound,
        ActionError::Refused(m) => ConsoleError::Conflict(m),
        ActionError::Db(e) => ConsoleError::Db(e),
    })?;
    Ok(Redirect::to(&format!("/console/subscriptions/{id}?done=cancel")).into_response())
}
