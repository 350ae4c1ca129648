//! PDF reports (帳票): the settlement statement (支払明細書) of one payout and the konbini
//! collection report (収納明細書) of a period. A4, Japanese text set in the embedded Noto Sans
//! CJK JP subset (static/fonts, SIL OFL 1.1); krilla embeds only the glyphs a report uses and a
//! ToUnicode map, so the text can be searched and copied. Used by the console and the API (the
//! same statement from `/console/settlements/{id}/pdf` and `/api/v1/settlements/{id}/statement.pdf`).

use std::sync::LazyLock;

use krilla::geom::{PathBuilder, Point};
use krilla::page::PageSettings;
use krilla::text::{Font, TextDirection};
use krilla::Document;

use crate::db::settlements::{EntryKind, EntryRow, SettlementRow};
use crate::domain::konbini::Chain;
use crate::domain::payout::Cycle;
use crate::domain::Method;
use crate::util::{format_jst, format_yen};

/// Noto Sans CJK JP Regular, cut to the Windows-31J repertoire (JIS X 0208 and NEC extensions,
/// ASCII, half-width kana): every character a Japanese merchant name or order id normally
/// holds. Licence: static/fonts/OFL.txt.
static FONT_DATA: &[u8] = include_bytes!("../static/fonts/NotoSansJP-Subset.otf");

static FONT: LazyLock<Option<Font>> = LazyLock::new(|| Font::new(FONT_DATA.into(), 0));
static FACE: LazyLock<Option<ttf_parser::Face<'static>>> =
    LazyLock::new(|| ttf_parser::Face::parse(FONT_DATA, 0).ok());

/// A report could not be written (a broken font or a PDF writer refusal: a bug, not input).
#[derive(Debug, thiserror::Error)]
#[error("PDF report: {0}")]
pub struct ReportError(String);

const PAGE_W: f32 = 595.28;
const PAGE_H: f32 = 841.89;
const MARGIN: f32 = 48.0;
const LINE: f32 = 15.0;

/// Width of `text` at `size` points, from the font's advances.
fn width(text: &str, size: f32) -> f32 {
    let Some(face) = FACE.as_ref() else {
        return 0.0;
    };
    let units: u32 = text
        .chars()
        .map(|c| {
            face.glyph_index(c)
                .and_then(|g| face.glyph_hor_advance(g))
                .map_or(0, u32::from)
        })
        .sum();
    units as f32 * size / f32::from(face.units_per_em())
}

/// One column of a table: its header, right edge or left edge, and alignment.
struct Col {
    title: &'static str,
    x: f32,
    right: bool,
}

fn col(title: &'static str, x: f32, right: bool) -> Col {
    Col { title, x, right }
}

/// Table text size: a 24-character payment id fits its column.
const ROW_SIZE: f32 = 7.5;

/// Page-by-page writer: text at a position, rules, and a cursor that starts a new page (with
/// the table header repeated) when the page is full.
struct Writer {
    font: Font,
    pages: Vec<Vec<Op>>,
    y: f32,
}

enum Op {
    Text {
        x: f32,
        y: f32,
        size: f32,
        text: String,
    },
    Rule {
        y: f32,
    },
}

impl Writer {
    fn new() -> Result<Writer, ReportError> {
        let font = FONT
            .clone()
            .ok_or_else(|| ReportError("the embedded font does not load".into()))?;
        Ok(Writer {
            font,
            pages: vec![Vec::new()],
            y: MARGIN,
        })
    }

    fn ops(&mut self) -> &mut Vec<Op> {
        if self.pages.is_empty() {
            self.pages.push(Vec::new());
        }
        let last = self.pages.len() - 1;
        &mut self.pages[last]
    }

    fn text(&mut self, x: f32, size: f32, text: impl Into<String>) {
        let y = self.y;
        self.ops().push(Op::Text {
            x,
            y,
            size,
            text: text.into(),
        });
    }

    /// Text ending at `right`.
    fn text_right(&mut self, right: f32, size: f32, text: impl Into<String>) {
        let text = text.into();
        let x = right - width(&text, size);
        self.text(x, size, text);
    }

    fn rule(&mut self) {
        let y = self.y;
        self.ops().push(Op::Rule { y });
    }

    fn down(&mut self, by: f32) {
        self.y += by;
    }

    /// Room for one more line, or a new page with `cols`' header.
    fn need_line(&mut self, cols: &[Col]) {
        if self.y + LINE > PAGE_H - MARGIN {
            self.pages.push(Vec::new());
            self.y = MARGIN;
            self.header_row(cols);
        }
    }

    fn header_row(&mut self, cols: &[Col]) {
        self.row(
            cols,
            &cols.iter().map(|c| c.title.to_owned()).collect::<Vec<_>>(),
        );
        self.down(-LINE + 4.0);
        self.rule();
        self.down(LINE - 4.0);
    }

    fn row(&mut self, cols: &[Col], cells: &[String]) {
        for (c, v) in cols.iter().zip(cells) {
            if c.right {
                self.text_right(c.x, ROW_SIZE, v.clone());
            } else {
                self.text(c.x, ROW_SIZE, v.clone());
            }
        }
        self.down(LINE);
    }

    /// A label and an amount on one line of the summary box.
    fn amount_line(&mut self, label: &str, amount: String) {
        self.text(MARGIN + 8.0, 11.0, label);
        self.text_right(PAGE_W / 2.0 + 90.0, 11.0, amount);
        self.down(LINE + 3.0);
    }

    fn finish(self) -> Result<Vec<u8>, ReportError> {
        let mut doc = Document::new();
        let total = self.pages.len();
        for (n, ops) in self.pages.iter().enumerate() {
            let settings = PageSettings::from_wh(PAGE_W, PAGE_H)
                .ok_or_else(|| ReportError("page size".into()))?;
            let mut page = doc.start_page_with(settings);
            let mut surface = page.surface();
            for op in ops {
                match op {
                    Op::Text { x, y, size, text } => surface.draw_text(
                        Point::from_xy(*x, *y),
                        self.font.clone(),
                        *size,
                        text,
                        false,
                        TextDirection::Auto,
                    ),
                    Op::Rule { y } => {
                        let mut pb = PathBuilder::new();
                        pb.move_to(MARGIN, *y);
                        pb.line_to(PAGE_W - MARGIN, *y);
                        pb.line_to(PAGE_W - MARGIN, *y + 0.6);
                        pb.line_to(MARGIN, *y + 0.6);
                        pb.close();
                        if let Some(path) = pb.finish() {
                            surface.draw_path(&path);
                        }
                    }
                }
            }
            let label = format!("{} / {}", n + 1, total);
            surface.draw_text(
                Point::from_xy(PAGE_W - MARGIN - width(&label, 8.0), PAGE_H - MARGIN / 2.0),
                self.font.clone(),
                8.0,
                &label,
                false,
                TextDirection::Auto,
            );
            surface.finish();
            page.finish();
        }
        doc.finish().map_err(|e| ReportError(format!("{e:?}")))
    }
}

fn yen(amount: i64) -> String {
    format!("{}円", format_yen(amount))
}

/// The method and institution of an entry, in the console's words.
fn method_label(method: &str, institution: Option<&str>) -> String {
    // Konbini lines name the store (the column is narrow); other methods their name.
    match (Method::parse(method), institution) {
        (Some(Method::Konbini), Some(i)) => Chain::parse(i).map_or(i, |c| c.name_ja()).to_owned(),
        (Some(m), _) => m.name_ja().to_owned(),
        (None, _) => method.to_owned(),
    }
}

fn kind_label(kind: &str) -> &str {
    EntryKind::parse(kind).map_or(kind, |v| v.label_ja())
}

/// The heading block shared by both reports.
fn heading(w: &mut Writer, title: &str, merchant_name: &str, merchant_id: &str, issued_at: i64) {
    w.down(10.0);
    w.text(MARGIN, 20.0, title);
    w.text_right(
        PAGE_W - MARGIN,
        9.0,
        format!("発行日時 {}", format_jst(issued_at)),
    );
    w.down(36.0);
    w.text(MARGIN, 13.0, format!("{merchant_name} 様"));
    w.down(LINE + 2.0);
    w.text(MARGIN, 9.0, format!("加盟店ID {merchant_id}"));
    w.down(LINE + 6.0);
}

/// 支払明細書: one settlement, its totals and every ledger entry it took.
pub fn settlement_statement(
    s: &SettlementRow,
    merchant_name: &str,
    entries: &[EntryRow],
    issued_at: i64,
) -> Result<Vec<u8>, ReportError> {
    let mut w = Writer::new()?;
    heading(
        &mut w,
        "支払明細書",
        merchant_name,
        &s.merchant_id,
        issued_at,
    );
    let cycle = Cycle::parse(&s.cycle).map_or(s.cycle.as_str(), |v| v.label_ja());
    w.text(MARGIN, 10.0, format!("精算ID {}", s.id));
    w.down(LINE);
    w.text(
        MARGIN,
        10.0,
        format!("対象期間 {} 〜 {}（{cycle}）", s.period_start, s.period_end),
    );
    w.down(LINE);
    w.text(MARGIN, 10.0, format!("お支払予定日 {}", s.payout_date));
    w.down(LINE + 10.0);
    w.rule();
    w.down(LINE + 2.0);
    w.amount_line(&format!("収納金額（{}件）", s.payment_count), yen(s.gross));
    w.amount_line("返金・取消", yen(-s.refunds));
    w.amount_line("決済手数料（税別）", yen(-s.fees));
    w.amount_line("精算入金手数料（税別）", yen(-s.settlement_fee));
    w.amount_line("消費税（10%）", yen(-s.fee_tax));
    w.amount_line("印紙代", yen(-s.stamp_duty));
    w.rule();
    w.down(LINE + 2.0);
    w.text(MARGIN + 8.0, 13.0, "差引支払額");
    w.text_right(PAGE_W / 2.0 + 90.0, 13.0, yen(s.net));
    w.down(LINE + 4.0);
    w.text(
        MARGIN,
        8.0,
        "手数料の1円未満は切り捨て。消費税は本明細の税別手数料の合計に対して計算しています。",
    );
    w.down(LINE * 2.0);
    let cols = [
        col("日時", MARGIN, false),
        col("決済ID", MARGIN + 64.0, false),
        col("取引ID", MARGIN + 180.0, false),
        col("決済種別", MARGIN + 254.0, false),
        col("区分", MARGIN + 320.0, false),
        col("金額", MARGIN + 392.0, true),
        col("手数料", MARGIN + 442.0, true),
        col("印紙代", PAGE_W - MARGIN, true),
    ];
    w.header_row(&cols);
    for e in entries {
        w.need_line(&cols);
        let cells = [
            format_jst(e.created_at),
            e.payment_id.clone(),
            e.order_id.clone(),
            method_label(&e.method, e.institution.as_deref()),
            kind_label(&e.kind).to_owned(),
            format_yen(e.amount),
            format_yen(e.fixed_fee + e.rate_fee),
            format_yen(e.stamp_duty),
        ];
        w.row(&cols, &cells);
    }
    w.finish()
}

/// 収納明細書: a merchant's konbini collections in a period, with totals.
pub fn konbini_report(
    merchant_name: &str,
    merchant_id: &str,
    from: &str,
    to: &str,
    entries: &[EntryRow],
    issued_at: i64,
) -> Result<Vec<u8>, ReportError> {
    let mut w = Writer::new()?;
    heading(
        &mut w,
        "収納明細書（コンビニ決済）",
        merchant_name,
        merchant_id,
        issued_at,
    );
    w.text(MARGIN, 10.0, format!("収納期間 {from} 〜 {to}"));
    w.down(LINE + 10.0);
    let amount: i64 = entries.iter().map(|e| e.amount).sum();
    let stamp: i64 = entries.iter().map(|e| e.stamp_duty).sum();
    let count: i64 = entries
        .iter()
        .map(|e| match EntryKind::parse(&e.kind) {
            Some(EntryKind::Collected) => 1,
            Some(EntryKind::Reversed) => -1,
            _ => 0,
        })
        .sum();
    w.rule();
    w.down(LINE + 2.0);
    w.amount_line("収納件数（速報取消を除く）", format!("{count}件"));
    w.amount_line("収納金額合計", yen(amount));
    w.amount_line("印紙代合計", yen(stamp));
    w.rule();
    w.down(LINE * 2.0);
    let cols = [
        col("収納日時", MARGIN, false),
        col("決済ID", MARGIN + 64.0, false),
        col("取引ID", MARGIN + 180.0, false),
        col("コンビニ", MARGIN + 254.0, false),
        col("区分", MARGIN + 320.0, false),
        col("金額", MARGIN + 422.0, true),
        col("印紙代", PAGE_W - MARGIN, true),
    ];
    w.header_row(&cols);
    for e in entries {
        w.need_line(&cols);
        let chain = e
            .institution
            .as_deref()
            .map(|i| Chain::parse(i).map_or(i, |v| v.name_ja()))
            .unwrap_or("");
        let cells = [
            format_jst(e.created_at),
            e.payment_id.clone(),
            e.order_id.clone(),
            chain.to_owned(),
            kind_label(&e.kind).to_owned(),
            format_yen(e.amount),
            format_yen(e.stamp_duty),
        ];
        w.row(&cols, &cells);
    }
    w.finish()
}

/// The 支払明細書 of a settlement read by [`crate::flows::settlements::statement`], typeset off
/// the async workers (it is CPU work).
pub async fn statement_pdf(
    st: crate::flows::settlements::Statement,
    issued_at: i64,
) -> anyhow::Result<Vec<u8>> {
    tokio::task::spawn_blocking(move || {
        settlement_statement(&st.settlement, &st.merchant_name, &st.entries, issued_at)
    })
    .await
    .map_err(|e| anyhow::anyhow!("report task: {e}"))?
    .map_err(|e| anyhow::anyhow!("{e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_font_loads_and_measures() {
        assert!(FONT.is_some());
        // Wider text is wider; a missing glyph adds nothing.
        assert!(width("1,000,000円", 10.0) > width("1,000円", 10.0));
        assert!(width("支払明細書", 10.0) > 40.0);
    }
}
