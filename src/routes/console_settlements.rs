//! Console handlers of settlements (精算): list and detail pages, CSV files, the settlement
//! statement PDF (支払明細書), the konbini collection report PDF (収納明細書), and the
//! 手数料・支払条件 page (payout terms and fees: operators change them, staff read them).

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};

use crate::console::audit;
use crate::console::auth::Staff;
use crate::console::csv_export::Encoding;
use crate::console::error::{ConsoleError, ConsoleResult};
use crate::console::settlements::{self as view, visible};
use crate::console::views::{self, Chrome};
use crate::db::merchants::{self, MerchantRow};
use crate::db::settlements;
use crate::domain::payout::Cycle;
use crate::domain::Method;
use crate::flows::settlement_terms as terms_flow;
use crate::form;
use crate::reports;
use crate::routes::console::{fields, html};
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

/// 支払明細書 of one settlement (the API serves the same document).
pub async fn statement_pdf(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
) -> ConsoleResult<Response> {
    let st = crate::flows::settlements::statement(&state.db, staff.scope(), &id)
        .await?
        .ok_or(ConsoleError::NotFound)?;
    audit::staff(
        &state.db,
        &staff,
        Some(&st.settlement.merchant_id),
        "settlements.statement_pdf",
        &st.settlement.id,
        "",
    )
    .await?;
    let body = reports::statement_pdf(st, staff.now).await?;
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

// ---------------------------------------------------------------------------
// 手数料・支払条件: payout terms and fee schedules
// ---------------------------------------------------------------------------

/// Operators set terms and fees (they pay the merchants out); merchant and owner staff, admins
/// included, only read them (docs/owners.md: owner admins do what merchant admins do).
fn require_operator(staff: &Staff) -> ConsoleResult<()> {
    if staff.role() == crate::console::Role::Operator {
        Ok(())
    } else {
        Err(ConsoleError::Forbidden)
    }
}

/// The values the forms show: the stored ones, or what was posted when it was refused.
#[derive(Default)]
struct TermsForm {
    cycle: String,
    payout_delay_days: String,
    settlement_fee: String,
    goods_taxable: bool,
    method: String,
    fixed: String,
    rate: String,
}

impl TermsForm {
    fn stored(cur: &terms_flow::Current) -> TermsForm {
        match &cur.terms {
            Some(t) => TermsForm {
                cycle: t.cycle.code().to_owned(),
                payout_delay_days: t.payout_delay_days.to_string(),
                settlement_fee: t.settlement_fee.to_string(),
                goods_taxable: t.goods_taxable,
                ..TermsForm::default()
            },
            None => TermsForm {
                cycle: Cycle::MonthEnd.code().to_owned(),
                payout_delay_days: crate::domain::payout::DEFAULT_PAYOUT_DELAY_DAYS.to_string(),
                settlement_fee: "0".into(),
                ..TermsForm::default()
            },
        }
    }
}

/// The merchant a terms page or form is about: for operators the one named (404 when unknown),
/// for owner staff one of their tenants, for merchant staff their own.
async fn terms_merchant(
    state: &AppState,
    staff: &Staff,
    requested: &str,
) -> ConsoleResult<MerchantRow> {
    let id = staff.merchant_for(&state.db, requested).await?;
    merchants::get(&state.db, &id)
        .await?
        .ok_or(ConsoleError::NotFound)
}

async fn terms_page(
    state: &AppState,
    staff: &Staff,
    m: Option<&MerchantRow>,
    f: TermsForm,
    status: StatusCode,
    error: Option<String>,
    saved: bool,
) -> ConsoleResult<Response> {
    let cur = match m {
        Some(m) => Some(terms_flow::current(&state.db, &m.id).await?),
        None => None,
    };
    let (terms, fees) = view::terms_view(cur.as_ref());
    let page = views::SettlementTerms {
        c: Chrome::staff(state, staff),
        merchant: m.map(|m| m.id.clone()).unwrap_or_default(),
        merchant_name: m.map(|m| m.name.clone()).unwrap_or_default(),
        editable: staff.role() == crate::console::Role::Operator,
        terms,
        fees,
        cycles: Cycle::ALL
            .iter()
            .map(|c| (c.code(), c.label_ja(), c.code() == f.cycle))
            .collect(),
        methods: Method::ALL
            .iter()
            .map(|x| (x.code(), x.name_ja(), x.code() == f.method))
            .collect(),
        payout_delay_days: f.payout_delay_days,
        settlement_fee: f.settlement_fee,
        goods_taxable: f.goods_taxable,
        fixed: f.fixed,
        rate: f.rate,
        error,
        saved,
    };
    html(status, &page)
}

/// `GET /console/settlements/terms?merchant=…`: a merchant's payout terms and fees (operators
/// and owner staff choose the merchant; merchant staff see their own).
pub async fn terms(
    State(state): State<AppState>,
    staff: Staff,
    RawQuery(q): RawQuery,
) -> ConsoleResult<Response> {
    let q = query(q);
    let requested = form::get(&q, "merchant").trim();
    if staff.scope().is_multi() && requested.is_empty() {
        return terms_page(
            &state,
            &staff,
            None,
            TermsForm::default(),
            StatusCode::OK,
            None,
            false,
        )
        .await;
    }
    let m = terms_merchant(&state, &staff, requested).await?;
    let cur = terms_flow::current(&state.db, &m.id).await?;
    let saved = form::get(&q, "saved") == "1";
    terms_page(
        &state,
        &staff,
        Some(&m),
        TermsForm::stored(&cur),
        StatusCode::OK,
        None,
        saved,
    )
    .await
}

/// Role, CSRF and merchant of a terms or fee form (operators only).
async fn terms_form(
    state: &AppState,
    staff: &Staff,
    q: Option<String>,
    headers: &HeaderMap,
    body: &Bytes,
) -> ConsoleResult<(MerchantRow, Vec<(String, String)>)> {
    require_operator(staff)?;
    let f = fields(headers, body);
    staff.check_csrf(&state.secret, form::get(&f, "csrf"))?;
    let m = terms_merchant(state, staff, form::get(&query(q), "merchant").trim()).await?;
    Ok((m, f))
}

/// What a refused change shows, and the audit's word for it.
async fn refused(
    state: &AppState,
    staff: &Staff,
    m: &MerchantRow,
    f: TermsForm,
    e: terms_flow::TermsError,
) -> ConsoleResult<Response> {
    match e {
        terms_flow::TermsError::Invalid(i) => {
            terms_page(
                state,
                staff,
                Some(m),
                f,
                StatusCode::BAD_REQUEST,
                Some(i.message_ja()),
                false,
            )
            .await
        }
        terms_flow::TermsError::UnknownMerchant(_) => Err(ConsoleError::NotFound),
        terms_flow::TermsError::Db(e) => Err(e.into()),
    }
}

fn saved_to(m: &MerchantRow) -> Response {
    let q = form_urlencoded::Serializer::new(String::new())
        .append_pair("merchant", &m.id)
        .append_pair("saved", "1")
        .finish();
    Redirect::to(&format!("/console/settlements/terms?{q}")).into_response()
}

/// `POST /console/settlements/terms?merchant=…` (operators): payout terms, through the flow
/// `kakehashi settlement terms` uses; audited (`payout_terms.update`, before → after).
pub async fn terms_post(
    State(state): State<AppState>,
    staff: Staff,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> ConsoleResult<Response> {
    let (m, f) = terms_form(&state, &staff, q, &headers, &body).await?;
    let posted = TermsForm {
        cycle: form::get(&f, "cycle").to_owned(),
        payout_delay_days: form::get(&f, "payout_delay_days").to_owned(),
        settlement_fee: form::get(&f, "settlement_fee").to_owned(),
        goods_taxable: form::get(&f, "goods_taxable") == "yes",
        ..TermsForm::default()
    };
    let input = terms_flow::TermsInput {
        cycle: &posted.cycle,
        payout_delay_days: &posted.payout_delay_days,
        settlement_fee: &posted.settlement_fee,
        goods_taxable: posted.goods_taxable,
    };
    let r = terms_flow::set_terms(&state.db, &m.id, &input, staff.now).await;
    let detail = match &r {
        Ok((before, after)) => terms_flow::terms_change(before.as_ref(), after),
        Err(e) => format!("refused {e}"),
    };
    audit::staff(
        &state.db,
        &staff,
        Some(&m.id),
        "payout_terms.update",
        &m.id,
        &detail,
    )
    .await?;
    match r {
        Ok(_) => Ok(saved_to(&m)),
        // The terms form keeps what was posted.
        Err(e) => refused(&state, &staff, &m, posted, e).await,
    }
}

/// `POST /console/settlements/terms/fee?merchant=…` (operators): one method's fees, through the
/// flow `kakehashi settlement fee` uses; audited (`fee_schedule.update`, before → after).
pub async fn fee_post(
    State(state): State<AppState>,
    staff: Staff,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> ConsoleResult<Response> {
    let (m, f) = terms_form(&state, &staff, q, &headers, &body).await?;
    let method = form::get(&f, "method").to_owned();
    let fixed = form::get(&f, "fixed").to_owned();
    let rate = form::get(&f, "rate").to_owned();
    let input = terms_flow::FeeInput {
        method: &method,
        fixed: &fixed,
        rate: &rate,
    };
    let r = terms_flow::set_fee(&state.db, &m.id, &input, staff.now).await;
    let detail = match &r {
        Ok((x, before, after)) => terms_flow::fee_change(*x, before.as_ref(), after),
        Err(e) => format!("refused {method}: {e}"),
    };
    audit::staff(
        &state.db,
        &staff,
        Some(&m.id),
        "fee_schedule.update",
        &m.id,
        &detail,
    )
    .await?;
    match r {
        Ok(_) => Ok(saved_to(&m)),
        Err(e) => {
            // The terms form shows the stored terms; the fee form keeps what was posted.
            let cur = terms_flow::current(&state.db, &m.id).await?;
            let shown = TermsForm {
                method,
                fixed,
                rate,
                ..TermsForm::stored(&cur)
            };
            refused(&state, &staff, &m, shown, e).await
        }
    }
}
