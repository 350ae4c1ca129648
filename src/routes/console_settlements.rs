//! Console handlers of settlements (精算): list and detail pages, CSV files, the settlement
//! statement PDF (支払明細書) and the konbini collection report PDF (収納明細書).

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::console::auth::Staff;
use crate::console::csv_export::Encoding;
use crate::console::error::{ConsoleError, ConsoleResult};
use crate::console::settlements::{self as view, visible};
use crate::console::views::{self, Chrome};
use crate::console::{audit, reports};
use crate::db::{merchants, settlements};
use crate::form;
use crate::routes::console::html;
use crate::state::AppState;

/// Settlements shown on the list page and in its CSV.
const LIST_LIMIT: i64 = 500;

fn query(q: Option<String>) -> Vec<(String, String)> {
    form::decode(q.unwrap_or_default().as_bytes(), encoding_rs::UTF_8)
}

/// The merchant filter: the staff member's own, or the choice of an operator or owner staff
/// (empty: every one of the scope; the scope itself is applied in SQL).
fn merchant_filter(staff: &Staff, q: &[(String, String)]) -> Option<String> {
    match staff.scope().merchant() {
        Some(m) => Some(m.to_owned()),
        None => Some(form::get(q, "merchant").trim().to_owned()).filter(|m| !m.is_empty()),
    }
}

fn download(content_type: &str, name: &str, body: Bytes) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        body,
    )
        .into_response()
}

fn encoding(q: &[(String, String)]) -> ConsoleResult<Encoding> {
    Encoding::parse(form::get(q, "enc"))
        .ok_or_else(|| ConsoleError::Bad("文字コードが正しくありません。".into()))
}

pub async fn list(
    State(state): State<AppState>,
    staff: Staff,
    RawQuery(q): RawQuery,
) -> ConsoleResult<Response> {
    let q = query(q);
    let merchant = merchant_filter(&staff, &q);
    let rows = settlements::list(&state.db, staff.scope(), merchant.as_deref(), LIST_LIMIT).await?;
    let (from, to, _, _) =
        crate::console::summary::period("", "", staff.now).map_err(ConsoleError::Bad)?;
    let page = views::Settlements {
        c: Chrome::staff(&state, &staff),
        rows: rows.iter().map(view::settlement_view).collect(),
        from,
        to,
        merchant: merchant.unwrap_or_default(),
    };
    html(StatusCode::OK, &page)
}

pub async fn list_csv(
    State(state): State<AppState>,
    staff: Staff,
    RawQuery(q): RawQuery,
) -> ConsoleResult<Response> {
    let q = query(q);
    let enc = encoding(&q)?;
    let merchant = merchant_filter(&staff, &q);
    let rows = settlements::list(&state.db, staff.scope(), merchant.as_deref(), LIST_LIMIT).await?;
    audit::staff(
        &state.db,
        &staff,
        merchant.as_deref(),
        "settlements.list_csv",
        "",
        "",
    )
    .await?;
    let body = view::list_csv(&rows, enc)?;
    Ok(download(enc.content_type(), "settlements.csv", body))
}

pub async fn detail(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
) -> ConsoleResult<Response> {
    let s = visible(&state.db, &staff, &id).await?;
    let entries = settlements::entries_of_settlement(&state.db, &s.id).await?;
    let page = views::SettlementDetail {
        c: Chrome::staff(&state, &staff),
        s: view::settlement_view(&s),
        entries: entries.iter().map(view::ledger_view).collect(),
    };
    html(StatusCode::OK, &page)
}

pub async fn detail_csv(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> ConsoleResult<Response> {
    let enc = encoding(&query(q))?;
    let s = visible(&state.db, &staff, &id).await?;
    let entries = settlements::entries_of_settlement(&state.db, &s.id).await?;
    audit::staff(
        &state.db,
        &staff,
        Some(&s.merchant_id),
        "settlements.entries_csv",
        &s.id,
        "",
    )
    .await?;
    let body = view::entries_csv(&entries, enc)?;
    Ok(download(
        enc.content_type(),
        &format!("settlement-{}.csv", s.id),
        body,
    ))
}

fn pdf(name: &str, body: Vec<u8>) -> Response {
    download("application/pdf", name, Bytes::from(body))
}

/// 支払明細書 of one settlement.
pub async fn statement_pdf(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
) -> ConsoleResult<Response> {
    let s = visible(&state.db, &staff, &id).await?;
    let entries = settlements::entries_of_settlement(&state.db, &s.id).await?;
    let name = merchants::get(&state.db, &s.merchant_id)
        .await?
        .map(|m| m.name)
        .unwrap_or_default();
    audit::staff(
        &state.db,
        &staff,
        Some(&s.merchant_id),
        "settlements.statement_pdf",
        &s.id,
        "",
    )
    .await?;
    let now = staff.now;
    // Typesetting is CPU work: off the async workers.
    let body = tokio::task::spawn_blocking(move || {
        reports::settlement_statement(&s, &name, &entries, now)
    })
    .await
    .map_err(|e| anyhow::anyhow!("report task: {e}"))?
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(pdf(&format!("statement-{id}.pdf"), body))
}

/// 収納明細書 of the konbini payments collected in a period (default: this month).
pub async fn konbini_pdf(
    State(state): State<AppState>,
    staff: Staff,
    RawQuery(q): RawQuery,
) -> ConsoleResult<Response> {
    let q = query(q);
    let merchant_id = staff
        .merchant_for(&state.db, form::get(&q, "merchant").trim())
        .await?;
    let m = merchants::get(&state.db, &merchant_id)
        .await?
        .ok_or(ConsoleError::NotFound)?;
    let (from, to, from_ms, to_ms) =
        crate::console::summary::period(form::get(&q, "from"), form::get(&q, "to"), staff.now)
            .map_err(ConsoleError::Bad)?;
    // A bounded period keeps the report (and the work of one request) bounded.
    if to_ms - from_ms > 366 * crate::domain::jst::DAY_MS {
        return Err(ConsoleError::Bad(
            "期間は1年以内で指定してください。".into(),
        ));
    }
    let entries = settlements::konbini_collections(&state.db, &m.id, from_ms, to_ms).await?;
    audit::staff(
        &state.db,
        &staff,
        Some(&m.id),
        "report.konbini",
        "",
        &format!("{from}..{to}"),
    )
    .await?;
    let now = staff.now;
    let name = format!("konbini-{}-{from}-{to}.pdf", m.id);
    let body = tokio::task::spawn_blocking(move || {
        reports::konbini_report(&m.name, &m.id, &from, &to, &entries, now)
    })
    .await
    .map_err(|e| anyhow::anyhow!("report task: {e}"))?
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(pdf(&name, body))
}
