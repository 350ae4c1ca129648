//! Console handlers for reusable payment numbers (リピート): list, detail with the store
//! payments, the printable member card, and retire (admin role, CSRF, a confirmation page, an
//! audit record). Another merchant's number is "not found".

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};

use crate::console::audit;
use crate::console::auth::Staff;
use crate::console::error::{ConsoleError, ConsoleResult};
use crate::console::repeat_numbers::{RepeatCard, RepeatDetail, RepeatList, RepeatView};
use crate::console::views::{self, Chrome, RowView};
use crate::db::repeat_numbers as store;
use crate::flows::repeat::{self as flow, RepeatRow};
use crate::form;
use crate::routes::console::html;
use crate::routes::console_admin::admin_form;
use crate::state::AppState;

/// How many numbers the list shows (newest first).
const LIST_LIMIT: i64 = 200;

/// Loads a number the user may see (another merchant's is "not found").
async fn visible(state: &AppState, staff: &Staff, id: &str) -> ConsoleResult<RepeatRow> {
    store::get_in(&state.db, staff.scope(), id)
        .await?
        .ok_or(ConsoleError::NotFound)
}

pub async fn list(State(state): State<AppState>, staff: Staff) -> ConsoleResult<Response> {
    let now = state.now_ms();
    let rows = store::list(&state.db, staff.scope(), LIST_LIMIT).await?;
    let page = RepeatList {
        c: Chrome::staff(&state, &staff),
        rows: rows.iter().map(|r| RepeatView::new(r, now)).collect(),
    };
    html(StatusCode::OK, &page)
}

pub async fn detail(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> ConsoleResult<Response> {
    let r = visible(&state, &staff, &id).await?;
    let q = form::decode(q.unwrap_or_default().as_bytes(), encoding_rs::UTF_8);
    let message = (form::get(&q, "done") == "retire")
        .then(|| "リピート番号を利用停止にしました。".to_owned());
    let payments = flow::payments_of(&state.db, &r)
        .await
        .map_err(flow_error)?
        .iter()
        .map(RowView::new)
        .collect();
    let page = RepeatDetail {
        c: Chrome::staff(&state, &staff),
        r: RepeatView::new(&r, state.now_ms()),
        payments,
        message,
    };
    html(StatusCode::OK, &page)
}

/// The member card to print (`@media print` in console.css gives the card-sized layout).
pub async fn card(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
) -> ConsoleResult<Response> {
    let r = visible(&state, &staff, &id).await?;
    let m = crate::db::merchants::get(&state.db, &r.merchant_id)
        .await?
        .ok_or(ConsoleError::NotFound)?;
    let page = RepeatCard {
        c: Chrome::staff(&state, &staff),
        r: RepeatView::new(&r, state.now_ms()),
        merchant_name: m.name,
    };
    html(StatusCode::OK, &page)
}

fn flow_error(e: crate::flows::error::FlowError) -> ConsoleError {
    use crate::flows::error::{FlowError, Refused};
    match e {
        FlowError::Refused {
            kind: Refused::NotFound,
            ..
        } => ConsoleError::NotFound,
        FlowError::Db(e) => ConsoleError::Db(e),
        other => ConsoleError::Internal(other.into()),
    }
}

/// `POST /console/repeat-numbers/{id}/retire`: without `confirm=yes` shows the confirmation.
pub async fn retire(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ConsoleResult<Response> {
    let f = admin_form(&state, &staff, &headers, &body)?;
    let before = visible(&state, &staff, &id).await?;
    if form::get(&f, "confirm") != "yes" {
        let v = RepeatView::new(&before, state.now_ms());
        let page = views::Confirm {
            c: Chrome::staff(&state, &staff),
            title: "リピート番号の利用停止の確認".into(),
            lines: vec![
                format!("番号: {}", v.number_grouped),
                format!("お客様番号（参照）: {}", v.reference),
                format!("請求名: {}", v.name),
                "利用停止にすると、この番号ではコンビニで支払えなくなります。元には戻せません。"
                    .into(),
            ],
            action: format!("/console/repeat-numbers/{id}/retire"),
            fields: vec![],
            back: format!("/console/repeat-numbers/{id}"),
        };
        return html(StatusCode::OK, &page);
    }
    let r = flow::retire(&state, &before.merchant_id, &id).await;
    let detail = match &r {
        Ok(after) => format!("ok {} -> {}", before.status, after.status),
        Err(e) => format!("refused {}: {e}", before.status),
    };
    audit::staff(
        &state.db,
        &staff,
        Some(&before.merchant_id),
        "repeat_number.retire",
        &id,
        &detail,
    )
    .await?;
    r.map_err(flow_error)?;
    Ok(Redirect::to(&format!("/console/repeat-numbers/{id}?done=retire")).into_response())
}
