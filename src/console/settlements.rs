//! Settlements (精算) in the console: the list, one settlement with its ledger entries, their
//! CSV files and PDF reports (`reports`), and a merchant's payout terms and fees in words. Staff
//! of a merchant see only its own settlements.

use axum::body::Bytes;

use crate::console::auth::Staff;
use crate::console::csv_export::{institution_ja, Encoding};
use crate::console::error::{ConsoleError, ConsoleResult};
use crate::console::views::{FeeLine, LedgerView, SettlementView, TermsView};
use crate::db::settlements::{self, EntryKind, EntryRow, SettlementRow};
use crate::db::Db;
use crate::domain::payout::Cycle;
use crate::domain::Method;
use crate::flows::settlement_terms::{percent, Current};
use crate::util::{format_jst, format_yen};

fn method_ja(method: &str, institution: Option<&str>) -> String {
    let name = Method::parse(method).map_or(method, |v| v.name_ja());
    match institution {
        Some(i) if Method::parse(method) == Some(Method::Konbini) => {
            format!("{name}（{}）", institution_ja(i))
        }
        _ => name.to_owned(),
    }
}

pub fn ledger_view(e: &EntryRow) -> LedgerView {
    LedgerView {
        at: format_jst(e.created_at),
        payment_id: e.payment_id.clone(),
        order_id: e.order_id.clone(),
        method: method_ja(&e.method, e.institution.as_deref()),
        kind: EntryKind::parse(&e.kind)
            .map_or(e.kind.as_str(), |v| v.label_ja())
            .to_owned(),
        amount: format_yen(e.amount),
        fees: format_yen(e.fixed_fee + e.rate_fee),
        fee_tax: format_yen(e.fee_tax),
        stamp_duty: format_yen(e.stamp_duty),
        settlement_id: e.settlement_id.clone().unwrap_or_default(),
    }
}

pub fn settlement_view(s: &SettlementRow) -> SettlementView {
    SettlementView {
        id: s.id.clone(),
        merchant_id: s.merchant_id.clone(),
        period: format!("{} 〜 {}", s.period_start, s.period_end),
        payout_date: s.payout_date.clone(),
        payment_count: s.payment_count,
        gross: format_yen(s.gross),
        refunds: format_yen(s.refunds),
        fees: format_yen(s.fees),
        settlement_fee: format_yen(s.settlement_fee),
        fee_tax: format_yen(s.fee_tax),
        stamp_duty: format_yen(s.stamp_duty),
        net: format_yen(s.net),
        cycle: Cycle::parse(&s.cycle)
            .map_or(s.cycle.as_str(), |v| v.label_ja())
            .to_owned(),
    }
}

/// Payout terms in words (none: the merchant is not settled) and every method's fees (`None`
/// for a method without a schedule, so without fees).
pub fn terms_view(cur: Option<&Current>) -> (Option<TermsView>, Vec<FeeLine>) {
    let terms = cur.and_then(|c| c.terms.as_ref()).map(|t| TermsView {
        cycle: t.cycle.label_ja().to_owned(),
        payout: format!("締め日の{}日後（土日祝は翌営業日）", t.payout_delay_days),
        settlement_fee: format!("{}円", format_yen(t.settlement_fee)),
        goods: if t.goods_taxable {
            "課税"
        } else {
            "非課税"
        },
    });
    let fees = Method::ALL
        .iter()
        .map(|&method| {
            let s = cur
                .and_then(|c| c.fees.iter().find(|(x, _)| *x == method))
                .map(|(_, s)| *s);
            FeeLine {
                code: method.code(),
                method: method.name_ja(),
                fixed: s.map(|s| format!("{}円", format_yen(s.fixed_fee))),
                rate: s.map(|s| format!("{}%", percent(s.rate_bp))),
            }
        })
        .collect();
    (terms, fees)
}

/// A settlement the staff member may see; any other id is "not found" (never "forbidden",
/// which would confirm that another merchant's settlement exists).
pub async fn visible(db: &Db, staff: &Staff, id: &str) -> ConsoleResult<SettlementRow> {
    settlements::get_in(db, staff.scope(), id)
        .await?
        .ok_or(ConsoleError::NotFound)
}

/// Header of the settlement list CSV. Stable (docs/settlements.md).
pub const LIST_COLUMNS: [&str; 14] = [
    "精算ID",
    "加盟店ID",
    "精算周期",
    "対象期間開始",
    "対象期間終了",
    "支払予定日",
    "件数",
    "収納金額",
    "返金・取消",
    "決済手数料(税別)",
    "精算入金手数料(税別)",
    "消費税",
    "印紙代",
    "差引支払額",
];

/// Header of a settlement's entries CSV. Stable (docs/settlements.md).
pub const ENTRY_COLUMNS: [&str; 11] = [
    "日時",
    "決済ID",
    "取引ID",
    "決済種別",
    "区分",
    "区分コード",
    "金額",
    "固定手数料(税別)",
    "料率手数料(税別)",
    "消費税",
    "印紙代",
];

fn write_csv<const N: usize>(
    header: [&str; N],
    rows: impl Iterator<Item = [String; N]>,
    enc: Encoding,
) -> ConsoleResult<Bytes> {
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    w.write_record(header)
        .map_err(|e| anyhow::anyhow!("csv: {e}"))?;
    for r in rows {
        w.write_record(&r)
            .map_err(|e| anyhow::anyhow!("csv: {e}"))?;
    }
    let bytes = w.into_inner().map_err(|e| anyhow::anyhow!("csv: {e}"))?;
    let mut text = String::from_utf8(bytes).map_err(|e| anyhow::anyhow!("csv: {e}"))?;
    if enc == Encoding::Utf8Bom {
        text.insert(0, '\u{feff}');
    }
    Ok(enc.encode(text))
}

pub fn list_csv(rows: &[SettlementRow], enc: Encoding) -> ConsoleResult<Bytes> {
    write_csv(
        LIST_COLUMNS,
        rows.iter().map(|s| {
            [
                s.id.clone(),
                s.merchant_id.clone(),
                s.cycle.clone(),
                s.period_start.clone(),
                s.period_end.clone(),
                s.payout_date.clone(),
                s.payment_count.to_string(),
                s.gross.to_string(),
                s.refunds.to_string(),
                s.fees.to_string(),
                s.settlement_fee.to_string(),
                s.fee_tax.to_string(),
                s.stamp_duty.to_string(),
                s.net.to_string(),
            ]
        }),
        enc,
    )
}

pub fn entries_csv(rows: &[EntryRow], enc: Encoding) -> ConsoleResult<Bytes> {
    write_csv(
        ENTRY_COLUMNS,
        rows.iter().map(|e| {
            [
                format_jst(e.created_at),
                e.payment_id.clone(),
                e.order_id.clone(),
                method_ja(&e.method, e.institution.as_deref()),
                EntryKind::parse(&e.kind)
                    .map_or(e.kind.as_str(), |v| v.label_ja())
                    .to_owned(),
                e.kind.clone(),
                e.amount.to_string(),
                e.fixed_fee.to_string(),
                e.rate_fee.to_string(),
                e.fee_tax.to_string(),
                e.stamp_duty.to_string(),
            ]
        }),
        enc,
    )
}
