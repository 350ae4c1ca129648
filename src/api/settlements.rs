//! Settlements (精算) over the API, read only: the list (keyset pages), one settlement with its
//! ledger entries, its statement (支払明細書) as the PDF the console serves, and the merchant's
//! payout terms and fee schedules. A merchant key reads its own; an owner key reads every
//! tenant's (or the tenant it names). A settlement outside the key's scope is `404
//! settlement_not_found`, exactly like an unknown id.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{err, time, ApiMerchant, ApiQuery, ApiScope};
use crate::db::settlements::{self as db, EntryRow, SettlementRow};
use crate::domain::payout::Cycle;
use crate::domain::scope::Scope;
use crate::error::{AppError, AppResult};
use crate::flows::settlement_terms as terms_flow;
use crate::flows::settlements::{self as flow, Statement};
use crate::state::AppState;

/// A settlement: one merchant's payout for one period (docs/settlements.md).
#[derive(Debug, Serialize, ToSchema)]
pub struct Settlement {
    /// stl_…
    pub id: String,
    pub merchant_id: String,
    /// `month_end`, `half_month`, `every_10_days` or `every_5_days`.
    pub cycle: String,
    pub cycle_label_ja: String,
    /// First day of the period (Japan time), YYYY-MM-DD.
    pub period_start: String,
    /// Last day of the period, YYYY-MM-DD.
    pub period_end: String,
    /// 支払予定日, YYYY-MM-DD (a business day).
    pub payout_date: String,
    /// Collections in the settlement (件数).
    pub payment_count: i64,
    /// Collected amounts (収納金額), yen.
    pub gross: i64,
    /// Refunds and reversals (返金・取消), a positive number, deducted.
    pub refunds: i64,
    /// Per-payment fees, tax excluded (決済手数料).
    pub fees: i64,
    /// 精算入金手数料, tax excluded.
    pub settlement_fee: i64,
    /// 消費税 on `fees + settlement_fee`.
    pub fee_tax: i64,
    /// 印紙代.
    pub stamp_duty: i64,
    /// 差引支払額: gross − refunds − fees − settlement_fee − fee_tax − stamp_duty (may be
    /// negative: owed by the merchant, not paid out).
    pub net: i64,
    pub created_at: String,
}

impl From<SettlementRow> for Settlement {
    fn from(s: SettlementRow) -> Self {
        Settlement {
            cycle_label_ja: Cycle::parse(&s.cycle)
                .map_or(s.cycle.as_str(), |c| c.label_ja())
                .to_owned(),
            created_at: time(s.created_at),
            id: s.id,
            merchant_id: s.merchant_id,
            cycle: s.cycle,
            period_start: s.period_start,
            period_end: s.period_end,
            payout_date: s.payout_date,
            payment_count: s.payment_count,
            gross: s.gross,
            refunds: s.refunds,
            fees: s.fees,
            settlement_fee: s.settlement_fee,
            fee_tax: s.fee_tax,
            stamp_duty: s.stamp_duty,
            net: s.net,
        }
    }
}

/// A ledger entry of a settlement.
#[derive(Debug, Serialize, ToSchema)]
pub struct LedgerEntry {
    pub payment_id: String,
    pub order_id: String,
    pub method: String,
    pub institution: Option<String>,
    /// `collected` (収納), `refunded` (返金) or `reversed` (取消).
    pub kind: String,
    /// Signed yen: refunds and reversals are negative.
    pub amount: i64,
    /// Fixed fee, tax excluded (negative when a reversal undoes it).
    pub fixed_fee: i64,
    /// Percentage fee, tax excluded.
    pub rate_fee: i64,
    /// Consumption tax on the entry's fees, for reference (a settlement computes it once).
    pub fee_tax: i64,
    pub stamp_duty: i64,
    pub created_at: String,
}

impl From<EntryRow> for LedgerEntry {
    fn from(e: EntryRow) -> Self {
        LedgerEntry {
            created_at: time(e.created_at),
            payment_id: e.payment_id,
            order_id: e.order_id,
            method: e.method,
            institution: e.institution,
            kind: e.kind,
            amount: e.amount,
            fixed_fee: e.fixed_fee,
            rate_fee: e.rate_fee,
            fee_tax: e.fee_tax,
            stamp_duty: e.stamp_duty,
        }
    }
}

/// A settlement with every ledger entry it took, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct SettlementDetail {
    #[serde(flatten)]
    pub settlement: Settlement,
    pub entries: Vec<LedgerEntry>,
}

/// A page of settlements, newest period first.
#[derive(Debug, Serialize, ToSchema)]
pub struct SettlementList {
    pub data: Vec<Settlement>,
    /// Whether more settlements follow; pass the last id as `starting_after` to get them.
    pub has_more: bool,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// One merchant of the key's scope (an owner key's tenant); another merchant is
    /// `404 merchant_not_found`.
    pub merchant: Option<String>,
    /// Page size, 1–100 (default 20).
    pub limit: Option<i64>,
    /// Cursor: the id of the last settlement of the previous page.
    pub starting_after: Option<String>,
}

/// The statement PDF's body.
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)]
pub struct Pdf(Vec<u8>);

fn not_found(id: &str) -> AppError {
    err(
        StatusCode::NOT_FOUND,
        "settlement_not_found",
        format!("no settlement {id}"),
    )
}

fn invalid(message: &'static str) -> AppError {
    err(StatusCode::BAD_REQUEST, "invalid_parameter", message)
}

/// The settlement `id` with its entries, if inside the scope; else 404 (never 403: an id of
/// another merchant's settlement tells nothing).
async fn visible(state: &AppState, scope: &Scope, id: &str) -> AppResult<Statement> {
    flow::statement(&state.db, scope, id)
        .await?
        .ok_or_else(|| not_found(id))
}

/// List settlements, newest period first, with keyset pagination.
#[utoipa::path(
    get,
    path = "/api/v1/settlements",
    operation_id = "listSettlements",
    tag = "settlements",
    params(ListQuery),
    responses(
        (status = 200, body = SettlementList),
        (status = 400, description = "invalid_parameter", body = super::openapi::ApiError),
        (status = 401, body = super::openapi::ApiError),
        (status = 404, description = "merchant_not_found (`merchant` outside the key's scope)", body = super::openapi::ApiError),
    ),
    security(("api_key" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    ApiScope(scope): ApiScope,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> AppResult<Json<SettlementList>> {
    let limit = q.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(invalid("limit must be 1 to 100"));
    }
    let merchant = match q.merchant.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(m) => Some(
            crate::db::owners::merchant_in_scope(&state.db, &scope, m)
                .await?
                .ok_or_else(|| {
                    err(
                        StatusCode::NOT_FOUND,
                        "merchant_not_found",
                        "no such merchant for this API key",
                    )
                })?
                .id,
        ),
    };
    let after = match q.starting_after.filter(|s| !s.is_empty()) {
        None => None,
        Some(id) => Some(
            db::get_in(&state.db, &scope, &id)
                .await?
                .ok_or_else(|| invalid("starting_after is not one of your settlements"))?,
        ),
    };
    let mut rows = db::page(
        &state.db,
        &scope,
        merchant.as_deref(),
        after
            .as_ref()
            .map(|s| (s.period_start.as_str(), s.id.as_str())),
        limit + 1,
    )
    .await?;
    let has_more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    Ok(Json(SettlementList {
        data: rows.into_iter().map(Settlement::from).collect(),
        has_more,
    }))
}

/// Retrieve a settlement with its totals and ledger entries.
#[utoipa::path(
    get,
    path = "/api/v1/settlements/{id}",
    operation_id = "getSettlement",
    tag = "settlements",
    params(("id" = String, Path, description = "Settlement id (stl_…)")),
    responses(
        (status = 200, body = SettlementDetail),
        (status = 401, body = super::openapi::ApiError),
        (status = 404, description = "settlement_not_found", body = super::openapi::ApiError),
    ),
    security(("api_key" = []))
)]
pub async fn get(
    State(state): State<AppState>,
    ApiScope(scope): ApiScope,
    Path(id): Path<String>,
) -> AppResult<Json<SettlementDetail>> {
    let st = visible(&state, &scope, &id).await?;
    Ok(Json(SettlementDetail {
        settlement: st.settlement.into(),
        entries: st.entries.into_iter().map(LedgerEntry::from).collect(),
    }))
}

/// The settlement's statement (支払明細書) as a PDF, the document the console serves.
#[utoipa::path(
    get,
    path = "/api/v1/settlements/{id}/statement.pdf",
    operation_id = "getSettlementStatement",
    tag = "settlements",
    params(("id" = String, Path, description = "Settlement id (stl_…)")),
    responses(
        (status = 200, description = "A4 PDF with searchable Japanese text", content_type = "application/pdf", body = Pdf),
        (status = 401, body = super::openapi::ApiError),
        (status = 404, description = "settlement_not_found", body = super::openapi::ApiError),
    ),
    security(("api_key" = []))
)]
pub async fn statement_pdf(
    State(state): State<AppState>,
    ApiScope(scope): ApiScope,
    Path(id): Path<String>,
) -> AppResult<Response> {
    let st = visible(&state, &scope, &id).await?;
    let name = format!("statement-{}.pdf", st.settlement.id);
    let body = crate::reports::statement_pdf(st, state.now_ms())
        .await
        .map_err(AppError::Internal)?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/pdf".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        body,
    )
        .into_response())
}

/// Payout terms (支払条件).
#[derive(Debug, Serialize, ToSchema)]
pub struct PayoutTerms {
    /// `month_end`, `half_month`, `every_10_days` or `every_5_days`.
    pub cycle: String,
    pub cycle_label_ja: String,
    /// Days from a period's last day to its payout (then moved to a business day).
    pub payout_delay_days: i64,
    /// 精算入金手数料 per payout, yen, tax excluded.
    pub settlement_fee: i64,
    /// The merchant's goods are subject to consumption tax (stamp-duty rule).
    pub goods_taxable: bool,
}

/// One method's fees, tax excluded.
#[derive(Debug, Serialize, ToSchema)]
pub struct FeeSchedule {
    pub method: String,
    /// Yen per collected payment.
    pub fixed_fee: i64,
    /// Percentage of the collected amount as entered, e.g. `"3.25"`.
    pub rate_percent: String,
    /// The same in basis points (325 = 3.25 %).
    pub rate_bp: i64,
}

/// A merchant's payout terms and fee schedules.
#[derive(Debug, Serialize, ToSchema)]
pub struct SettlementTerms {
    pub merchant_id: String,
    /// `null`: no payout terms, the merchant is not settled.
    pub terms: Option<PayoutTerms>,
    /// Methods with a fee schedule; a method not listed has no fees.
    pub fees: Vec<FeeSchedule>,
}

/// Your payout terms and fee schedules (read only; the operator sets them).
#[utoipa::path(
    get,
    path = "/api/v1/settlement-terms",
    operation_id = "getSettlementTerms",
    tag = "settlements",
    responses(
        (status = 200, body = SettlementTerms),
        (status = 400, description = "merchant_required (owner key without `Kakehashi-Merchant`)", body = super::openapi::ApiError),
        (status = 401, body = super::openapi::ApiError),
    ),
    security(("api_key" = []))
)]
pub async fn terms(
    State(state): State<AppState>,
    ApiMerchant(m): ApiMerchant,
) -> AppResult<Json<SettlementTerms>> {
    let cur = terms_flow::current(&state.db, &m.id).await?;
    Ok(Json(SettlementTerms {
        merchant_id: m.id,
        terms: cur.terms.map(|t| PayoutTerms {
            cycle: t.cycle.code().to_owned(),
            cycle_label_ja: t.cycle.label_ja().to_owned(),
            payout_delay_days: t.payout_delay_days,
            settlement_fee: t.settlement_fee,
            goods_taxable: t.goods_taxable,
        }),
        fees: cur
            .fees
            .into_iter()
            .map(|(method, s)| FeeSchedule {
                method: method.code().to_owned(),
                fixed_fee: s.fixed_fee,
                rate_percent: terms_flow::percent(s.rate_bp),
                rate_bp: s.rate_bp,
            })
            .collect(),
    }))
}
