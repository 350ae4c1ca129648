//! Reusable payment numbers (リピート) in the console: the list, one number's page with its
//! store payments, and the printable member card (ジョイントカード) carrying the number.

use askama::Template;

use crate::console::views::{Chrome, RowView};
use crate::domain::repeat::{AmountRule, RepeatState};
use crate::flows::repeat::RepeatRow;
use crate::util::{format_jst, format_yen};

/// A number as the pages show it.
#[derive(Clone, Debug)]
pub struct RepeatView {
    pub id: String,
    pub merchant_id: String,
    pub reference: String,
    pub name: String,
    pub customer_name: String,
    /// `5,000円`, or 「店頭で決定」 for top-ups.
    pub amount: String,
    pub number: String,
    /// The number in groups of four, as it is read out at the register.
    pub number_grouped: String,
    pub status: &'static str,
    pub status_ja: &'static str,
    pub valid_until: String,
    pub payments_count: i64,
    pub created: String,
    pub retired: String,
    pub can_retire: bool,
}

impl RepeatView {
    pub fn new(r: &RepeatRow, now: i64) -> RepeatView {
        let state = r.state(now);
        let grouped: Vec<String> = r
            .number
            .as_bytes()
            .chunks(4)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect();
        RepeatView {
            id: r.id.clone(),
            merchant_id: r.merchant_id.clone(),
            reference: r.reference.clone(),
            name: r.name.clone(),
            customer_name: r.customer_name.clone().unwrap_or_default(),
            amount: match r.rule() {
                AmountRule::Fixed(a) => format!("{}円", format_yen(a)),
                AmountRule::PerPayment => "店頭で決定".into(),
            },
            number: r.number.clone(),
            number_grouped: grouped.join(" "),
            status: state.code(),
            status_ja: state.label_ja(),
            valid_until: format_jst(r.valid_until),
            payments_count: r.payments_count,
            created: format_jst(r.created_at),
            retired: r.retired_at.map(format_jst).unwrap_or_default(),
            // Retiring an expired number still stops it for good (validity cannot come back,
            // but the record says the merchant ended it).
            can_retire: state != RepeatState::Retired,
        }
    }
}

#[derive(Template)]
#[template(path = "console/repeat_numbers.html")]
pub struct RepeatList {
    pub c: Chrome,
    pub rows: Vec<RepeatView>,
}

#[derive(Template)]
#[template(path = "console/repeat_number.html")]
pub struct RepeatDetail {
    pub c: Chrome,
    pub r: RepeatView,
    pub payments: Vec<RowView>,
    pub message: Option<String>,
}

/// The member card: print CSS lays it out at card size, without the console's chrome.
#[derive(Template)]
#[template(path = "console/repeat_card.html")]
pub struct RepeatCard {
    pub c: Chrome,
    pub r: RepeatView,
    pub merchant_name: String,
}
