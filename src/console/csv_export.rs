//! CSV download of a search result, streamed page by page (keyset pages of 500 rows; the whole
//! result is never in memory), in UTF-8 with BOM or Shift_JIS for Excel in Japan.
//! Column names are stable and documented in docs/console.md.

use axum::body::Bytes;
use futures_util::Stream;

use crate::console::search::{self, Cursor, Filter};
use crate::db::payments::PaymentRow;
use crate::db::Db;
use crate::util::format_jst;

/// Rows fetched per database round trip.
pub const PAGE: i64 = 500;

/// The header row. Stable: merchants' spreadsheets and import scripts depend on it.
pub const COLUMNS: [&str; 14] = [
    "取引ID",
    "決済ID",
    "加盟店ID",
    "決済種別",
    "支払機関名",
    "決済ステータス",
    "ステータスコード",
    "取引日時",
    "支払期限日",
    "消込日時",
    "決済金額",
    "売上金額",
    "返金金額",
    "手数料",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// UTF-8 with a byte-order mark, so Excel detects it.
    Utf8Bom,
    /// Shift_JIS (Windows-31J), what older Excel versions in Japan open by default.
    ShiftJis,
}

impl Encoding {
    pub fn parse(s: &str) -> Option<Encoding> {
        match s {
            "" | "utf8" | "utf-8" => Some(Encoding::Utf8Bom),
            "sjis" | "shift_jis" => Some(Encoding::ShiftJis),
            _ => None,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Encoding::Utf8Bom => "text/csv; charset=utf-8",
            Encoding::ShiftJis => "text/csv; charset=Shift_JIS",
        }
    }

    pub fn encode(self, text: String) -> Bytes {
        match self {
            Encoding::Utf8Bom => Bytes::from(text),
            Encoding::ShiftJis => Bytes::from(crate::render::to_shift_jis(&text)),
        }
    }
}

pub use crate::console::labels::institution_ja;

fn record(p: &PaymentRow) -> [String; 14] {
    [
        p.order_id.clone(),
        p.id.clone(),
        p.merchant_id.clone(),
        p.method.name_ja().to_owned(),
        p.institution
            .as_deref()
            .map(institution_ja)
            .unwrap_or_default(),
        p.status.label_ja().to_owned(),
        p.status.code().to_owned(),
        format_jst(p.created_at),
        p.deadline_at.map(format_jst).unwrap_or_default(),
        p.paid_at.map(format_jst).unwrap_or_default(),
        p.amount.to_string(),
        p.captured_amount.to_string(),
        p.refunded_amount.to_string(),
        p.fee.to_string(),
    ]
}

/// Writes records with `csv` quoting (fields holding commas, quotes or newlines are quoted).
fn to_csv<I: IntoIterator<Item = [String; 14]>>(rows: I) -> Result<String, std::io::Error> {
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    for r in rows {
        w.write_record(&r).map_err(std::io::Error::other)?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    String::from_utf8(bytes).map_err(std::io::Error::other)
}

struct Progress {
    db: Db,
    filter: Filter,
    enc: Encoding,
    cursor: Option<Cursor>,
    started: bool,
    done: bool,
}

/// The CSV body: header first, then one chunk per page until the result ends.
pub fn stream(
    db: Db,
    filter: Filter,
    enc: Encoding,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send {
    let start = Progress {
        db,
        filter,
        enc,
        cursor: None,
        started: false,
        done: false,
    };
    futures_util::stream::unfold(start, |mut st| async move {
        if st.done {
            return None;
        }
        if !st.started {
            st.started = true;
            let header = COLUMNS.map(str::to_owned);
            let chunk = to_csv([header]).map(|text| {
                let text = match st.enc {
                    Encoding::Utf8Bom => format!("\u{FEFF}{text}"),
                    Encoding::ShiftJis => text,
                };
                st.enc.encode(text)
            });
            return Some((chunk, st));
        }
        match search::page(&st.db, &st.filter, st.cursor.as_ref(), PAGE).await {
            Ok((rows, next)) => {
                st.done = next.is_none();
                st.cursor = next;
                let chunk = to_csv(rows.iter().map(record)).map(|t| st.enc.encode(t));
                Some((chunk, st))
            }
            Err(e) => {
                // The status line is already sent: end the body with an error so the client
                // sees a broken download rather than a silently short file.
                tracing::error!(error = %e, "csv page failed");
                st.done = true;
                Some((Err(std::io::Error::other(e.to_string())), st))
            }
        }
    })
}
