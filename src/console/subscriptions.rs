//! Continuous-billing contracts (継続課金) in the console: the list, one contract's page, and
//! whether it may be cancelled (the subscription status machine decides).

use askama::Template;

use crate::console::views::Chrome;
use crate::db::subscriptions::SubscriptionRow;
use crate::domain::carrier::{apply_subscription, Carrier, SubscriptionAction, SubscriptionStatus};
use crate::util::{format_jst, format_yen};

/// A contract as the list and detail pages show it.
#[derive(Clone, Debug)]
pub struct SubView {
    pub id: String,
    pub merchant_id: String,
    pub payment_id: String,
    pub carrier_ja: String,
    pub amount: String,
    pub status: String,
    pub status_ja: String,
    pub started: String,
    pub charges: i64,
    /// Empty once the contract has ended: no charge is coming.
    pub next_charge: String,
    pub can_cancel: bool,
}

impl SubView {
    pub fn new(s: &SubscriptionRow) -> SubView {
        let status = SubscriptionStatus::parse(&s.status);
        let can_cancel =
            status.is_some_and(|st| apply_subscription(st, SubscriptionAction::Cancel).is_ok());
        SubView {
            id: s.id.clone(),
            merchant_id: s.merchant_id.clone(),
            payment_id: s.payment_id.clone(),
            carrier_ja: Carrier::parse(&s.carrier)
                .map(|c| c.name_ja().to_owned())
                .unwrap_or_else(|| s.carrier.clone()),
            amount: format_yen(s.amount),
            status: s.status.clone(),
            status_ja: status
                .map(|st| st.label_ja().to_owned())
                .unwrap_or_else(|| s.status.clone()),
            started: format_jst(s.first_charge_at),
            charges: s.charges,
            next_charge: if can_cancel {
                format_jst(s.next_charge_at)
            } else {
                String::new()
            },
            can_cancel,
        }
    }
}

#[derive(Template)]
#[template(path = "console/subscriptions.html")]
pub struct SubscriptionList {
    pub c: Chrome,
    pub rows: Vec<SubView>,
}

#[derive(Template)]
#[template(path = "console/subscription.html")]
pub struct SubscriptionDetail {
    pub c: Chrome,
    pub s: SubView,
    pub message: Option<String>,
}
