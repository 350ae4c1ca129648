//! One askama struct per console page (templates/console/), and the row views they show.

use askama::Template;

use crate::console::auth::Staff;
use crate::console::csv_export::institution_ja;
use crate::db::payments::PaymentRow;
use crate::state::AppState;
use crate::util::{format_jst, format_yen};

/// What every console page needs: stylesheet, the signed-in user (if any) and the CSRF token.
#[derive(Clone, Debug)]
pub struct Chrome {
    pub css: String,
    pub email: Option<String>,
    pub role: &'static str,
    pub admin: bool,
    /// Every merchant (operators): the merchants page and operator tools.
    pub operator: bool,
    /// Several merchants (operators and owner staff): lists show a merchant column and filter.
    pub multi: bool,
    /// Owner staff (テナントオプション): the tenants page instead of the users page.
    pub owner: bool,
    pub csrf: String,
}

impl Chrome {
    pub fn anon(state: &AppState, csrf: String) -> Chrome {
        Chrome {
            css: state.console_css.to_string(),
            email: None,
            role: "",
            admin: false,
            operator: false,
            multi: false,
            owner: false,
            csrf,
        }
    }

    pub fn staff(state: &AppState, s: &Staff) -> Chrome {
        Chrome {
            css: state.console_css.to_string(),
            email: Some(s.user.email.clone()),
            role: match s.scope() {
                crate::domain::scope::Scope::Owner(_) => s.role().label_owner_ja(),
                _ => s.role().label_ja(),
            },
            admin: s.role().can_act(),
            operator: s.scope().is_all(),
            multi: s.scope().is_multi(),
            owner: matches!(s.scope(), crate::domain::scope::Scope::Owner(_)),
            csrf: s.csrf.clone(),
        }
    }
}

/// A payment as the list and detail pages show it.
#[derive(Clone, Debug)]
pub struct RowView {
    pub id: String,
    pub merchant_id: String,
    pub order_id: String,
    pub method: String,
    pub method_ja: String,
    pub institution: String,
    pub status: String,
    pub status_ja: &'static str,
    pub created: String,
    pub deadline: String,
    pub paid: String,
    pub amount: String,
    pub captured: String,
    pub refunded: String,
    pub fee: String,
    pub card: bool,
}

impl RowView {
    pub fn new(p: &PaymentRow) -> RowView {
        RowView {
            id: p.id.clone(),
            merchant_id: p.merchant_id.clone(),
            order_id: p.order_id.clone(),
            method: p.method.code().to_owned(),
            method_ja: p.method.name_ja().to_owned(),
            institution: p
                .institution
                .as_deref()
                .map(institution_ja)
                .unwrap_or_else(|| "-".into()),
            status: p.status.code().to_owned(),
            status_ja: p.status.label_ja(),
            created: format_jst(p.created_at),
            deadline: p
                .deadline_at
                .map(|t| format_jst(t)[..10].to_owned())
                .unwrap_or_else(|| "-".into()),
            paid: p.paid_at.map(format_jst).unwrap_or_else(|| "-".into()),
            amount: format_yen(p.amount),
            captured: format_yen(p.captured_amount),
            refunded: format_yen(p.refunded_amount),
            fee: format_yen(p.fee),
            card: p.method == crate::domain::Method::Card,
        }
    }
}

#[derive(Template)]
#[template(path = "console/login.html")]
pub struct Login {
    pub c: Chrome,
    pub email: String,
    pub error: Option<String>,
    /// After an enrolment link was used: the account is ready.
    pub enrolled: bool,
}

#[derive(Template)]
#[template(path = "console/totp.html")]
pub struct Totp {
    pub c: Chrome,
    pub error: Option<String>,
}

/// A saved search in the list: its name and the list URL it opens.
pub struct SavedView {
    pub id: String,
    pub name: String,
    pub href: String,
}

/// A column header link of the list: sorts by it, toggling the direction.
pub struct SortLink {
    pub label: &'static str,
    pub href: String,
    /// `ascending`, `descending` or `none` (aria-sort).
    pub aria: &'static str,
}

pub struct Choice {
    pub code: String,
    pub label: String,
    pub selected: bool,
}

#[derive(Template)]
#[template(path = "console/payments.html")]
pub struct Payments {
    pub c: Chrome,
    pub f: crate::console::search::Filter,
    pub merchant: String,
    /// Owner staff's tenants for the merchant filter (empty: a text field, or none).
    pub tenants: Vec<Choice>,
    pub methods: Vec<Choice>,
    pub statuses: Vec<Choice>,
    pub sorts: Vec<SortLink>,
    pub rows: Vec<RowView>,
    pub next: Option<String>,
    pub first: Option<String>,
    pub csv_query: String,
    /// The search as hidden fields, for the bulk and save forms.
    pub filter_fields: Vec<(String, String)>,
    /// The user's saved searches.
    pub saved: Vec<SavedView>,
    pub notice: Option<String>,
    pub error: Option<String>,
}

pub struct EventView {
    pub at: String,
    pub kind: String,
    pub from: String,
    pub to: String,
    pub amount: String,
    pub actor: String,
}

pub struct AttemptView {
    pub at: String,
    pub status_code: String,
    pub outcome: String,
}

pub struct NotificationView {
    pub id: String,
    pub kind: String,
    pub status: String,
    pub attempts: Vec<AttemptView>,
}

#[derive(Template)]
#[template(path = "console/detail.html")]
pub struct Detail {
    pub c: Chrome,
    pub p: RowView,
    pub details: Vec<crate::console::labels::DetailLine>,
    pub events: Vec<EventView>,
    pub notifications: Vec<NotificationView>,
    /// Messages to the shopper (docs/messages.md).
    pub messages: Vec<MessageView>,
    pub can_capture: bool,
    pub can_cancel: bool,
    pub can_refund: bool,
    /// A completed carrier charge may be cancelled (refunded whole).
    pub can_carrier_cancel: bool,
    /// An unpaid konbini / Pay-easy number may be cancelled.
    pub can_number_cancel: bool,
    pub refundable: i64,
    pub message: Option<String>,
    /// The payment is refunded by refund requests (paid konbini / Pay-easy / bank).
    pub can_request_refund: bool,
    /// Yen not yet promised by a refund request.
    pub requestable: i64,
    pub refund_requests: Vec<RefundRequestView>,
    /// Its payout ledger entries: fees charged when collected, refunds, reversals.
    pub fees: Vec<LedgerView>,
}

/// A refund request (返金依頼) on the payment detail page.
pub struct RefundRequestView {
    pub id: String,
    pub amount: String,
    pub status: &'static str,
    pub status_ja: &'static str,
    pub created: String,
    /// The shopper's page, for staff to send or read out while the account may be given.
    pub link: Option<String>,
    /// The account the shopper gave, for the transfer.
    pub account: Option<String>,
    pub can_mark_paid: bool,
    pub can_cancel: bool,
}

/// One payout ledger entry (a payment's fees, or a line of a settlement), formatted.
pub struct LedgerView {
    pub at: String,
    pub payment_id: String,
    pub order_id: String,
    pub method: String,
    pub kind: String,
    pub amount: String,
    /// Fees tax excluded (税別).
    pub fees: String,
    pub fee_tax: String,
    pub stamp_duty: String,
    /// The settlement that took it, if any.
    pub settlement_id: String,
}

/// One settlement in the list.
pub struct SettlementView {
    pub id: String,
    pub merchant_id: String,
    pub period: String,
    pub payout_date: String,
    pub payment_count: i64,
    pub gross: String,
    pub refunds: String,
    pub fees: String,
    pub settlement_fee: String,
    pub fee_tax: String,
    pub stamp_duty: String,
    pub net: String,
    pub cycle: String,
}

#[derive(Template)]
#[template(path = "console/settlements.html")]
pub struct Settlements {
    pub c: Chrome,
    pub rows: Vec<SettlementView>,
    /// The konbini report form's default period.
    pub from: String,
    pub to: String,
    pub merchant: String,
}

#[derive(Template)]
#[template(path = "console/settlement.html")]
pub struct SettlementDetail {
    pub c: Chrome,
    pub s: SettlementView,
    pub entries: Vec<LedgerView>,
}

/// A merchant's payout terms in words.
pub struct TermsView {
    pub cycle: String,
    pub payout: String,
    pub settlement_fee: String,
    /// 課税 or 非課税: whether the merchant's goods are subject to consumption tax.
    pub goods: &'static str,
}

/// One method's fees on the 手数料・支払条件 page.
pub struct FeeLine {
    pub code: &'static str,
    pub method: &'static str,
    /// `None`: no schedule, so no fees.
    pub fixed: Option<String>,
    pub rate: Option<String>,
}

/// 手数料・支払条件 (`/console/settlements/terms`): a merchant's payout terms and fees, with
/// the forms to change them for operators.
#[derive(Template)]
#[template(path = "console/settlement_terms.html")]
pub struct SettlementTerms {
    pub c: Chrome,
    /// The merchant shown; empty while an operator or owner staff has not chosen one.
    pub merchant: String,
    pub merchant_name: String,
    /// Operators change terms and fees; everyone else reads them.
    pub editable: bool,
    /// The stored terms; none: the merchant is not settled.
    pub terms: Option<TermsView>,
    pub fees: Vec<FeeLine>,
    /// (code, label, selected) for the cycle picker.
    pub cycles: Vec<(&'static str, &'static str, bool)>,
    /// (code, label, selected) for the method picker.
    pub methods: Vec<(&'static str, &'static str, bool)>,
    pub payout_delay_days: String,
    pub settlement_fee: String,
    pub goods_taxable: bool,
    pub fixed: String,
    pub rate: String,
    pub error: Option<String>,
    pub saved: bool,
}

#[derive(Template)]
#[template(path = "console/confirm.html")]
pub struct Confirm {
    pub c: Chrome,
    pub title: String,
    pub lines: Vec<String>,
    pub action: String,
    pub fields: Vec<(String, String)>,
    pub back: String,
}

#[derive(Template)]
#[template(path = "console/secret.html")]
pub struct SecretShown {
    pub c: Chrome,
    pub title: String,
    pub label: String,
    pub secret: String,
    pub note: String,
}

pub struct ThemeChoice {
    pub code: String,
    pub label: String,
    pub selected: bool,
    pub pc: String,
    pub sp: String,
    pub fp: String,
}

#[derive(Template)]
#[template(path = "console/settings.html")]
pub struct Settings {
    pub c: Chrome,
    pub merchant_id: String,
    pub merchant_name: String,
    pub callback_url: String,
    pub return_origins: String,
    pub methods: Vec<Choice>,
    pub chains: Vec<Choice>,
    /// Wallet brands (スマホ決済) the shopper may choose.
    pub wallets: Vec<Choice>,
    pub konbini_days: i64,
    pub manual: bool,
    /// Saved cards are paid with their security code re-entered.
    pub saved_card_cvc: bool,
    pub themes: Vec<ThemeChoice>,
    pub key_ids: Vec<String>,
    /// API keys: (id, created, active), newest first.
    pub api_keys: Vec<(String, String, bool)>,
    pub webhook_secrets: usize,
    pub upload_max_kb: usize,
    pub error: Option<String>,
    pub notice: Option<&'static str>,
}

pub struct SummaryLine {
    pub method: String,
    pub count: i64,
    pub amount: String,
    pub fee: String,
    pub net: String,
}

#[derive(Template)]
#[template(path = "console/summary.html")]
pub struct Summary {
    pub c: Chrome,
    pub merchant: String,
    pub from: String,
    pub to: String,
    pub lines: Vec<SummaryLine>,
    pub total: SummaryLine,
}

pub struct AuditView {
    pub at: String,
    pub email: String,
    pub merchant: String,
    pub action: String,
    pub target: String,
    pub detail: String,
    pub ip: String,
}

#[derive(Template)]
#[template(path = "console/audit.html")]
pub struct Audit {
    pub c: Chrome,
    pub rows: Vec<AuditView>,
    pub next: Option<String>,
}

#[derive(Template)]
#[template(path = "console/error.html")]
pub struct ErrorPage {
    pub c: Chrome,
    pub status: u16,
    pub message: String,
}

/// One processor account as the live-mode page lists it (never its credentials).
pub struct AccountRow {
    pub id: String,
    pub processor: &'static str,
    pub mode: &'static str,
    pub active: bool,
    pub fingerprint: String,
    pub created: String,
    /// `(method name, None)` when usable, or `(method name, Some(why not))`.
    pub methods: Vec<(&'static str, Option<String>)>,
}

#[derive(Template)]
#[template(path = "console/processors.html")]
pub struct Processors {
    pub c: Chrome,
    pub merchant_id: String,
    pub merchant_name: String,
    pub live: bool,
    /// Methods offered to shoppers in the current mode.
    pub offered: Vec<&'static str>,
    /// Methods that would be offered in live mode.
    pub live_methods: Vec<&'static str>,
    pub accounts: Vec<AccountRow>,
    pub processors: Vec<Choice>,
    pub methods: Vec<Choice>,
    pub master_key: bool,
    pub error: Option<String>,
    pub notice: Option<String>,
}

/// One shopper message on the payment detail page (`console::messages` fills it).
pub struct MessageView {
    pub id: String,
    pub created: String,
    pub kind: &'static str,
    pub kind_label: &'static str,
    pub channel_label: &'static str,
    pub recipient: String,
    pub status: &'static str,
    pub status_label: &'static str,
    /// When a pending message is due (a reminder, or the next retry); empty otherwise.
    pub due: String,
    pub attempts: i64,
    pub sent: String,
    pub error: String,
}

/// The result of an action that ran (e.g. a bulk action): one line per payment, and a way back.
#[derive(Template)]
#[template(path = "console/outcome.html")]
pub struct Outcome {
    pub c: Chrome,
    pub title: String,
    pub lines: Vec<String>,
    pub back: String,
}

/// A payment link just created in the console.
pub struct LinkCreated {
    pub order_id: String,
    pub amount: String,
    pub url: String,
    pub expires: String,
    /// Where the link was sent (SMS number and/or e-mail address); empty: copy it yourself.
    pub sent_to: String,
}

/// 決済新規登録: the form, and the link once created.
#[derive(Template)]
#[template(path = "console/checkout_new.html")]
pub struct CheckoutNew {
    pub c: Chrome,
    /// The merchant id for operators (empty for merchant staff).
    pub merchant: String,
    pub methods: Vec<Choice>,
    pub order_id: String,
    pub amount: String,
    pub item_name: String,
    pub days: String,
    /// Optional: send the link by SMS to this number and/or by e-mail to this address.
    pub phone: String,
    pub email: String,
    pub error: Option<String>,
    pub created: Option<LinkCreated>,
}
