//! Payment requests by SMS and e-mail (SMS決済 / メール決済) in the console: the list with each
//! request's state and its last SMS and e-mail delivery, and the form that sends a new one.

use askama::Template;

use crate::console::views::Chrome;
use crate::domain::message::MessageStatus;
use crate::domain::{RequestStatus, SmsStatus};
use crate::flows::payment_requests::{self as requests, RequestRow};
use crate::state::AppState;
use crate::util::{format_jst, format_yen};

fn status_ja(s: RequestStatus) -> &'static str {
    match s {
        RequestStatus::Open => "受付中",
        RequestStatus::Pending => "決済手続き中",
        RequestStatus::Paid => "支払済",
        RequestStatus::Expired => "期限切れ",
        RequestStatus::Cancelled => "取消済",
    }
}

fn sms_ja(s: SmsStatus) -> &'static str {
    match s {
        SmsStatus::Queued => "送信待ち",
        SmsStatus::Sent => "送信済",
        SmsStatus::Failed => "送信失敗",
    }
}

fn mail_ja(s: MessageStatus) -> &'static str {
    match s {
        MessageStatus::Pending => "送信待ち",
        MessageStatus::Sent => "送信済",
        MessageStatus::Failed => "送信失敗",
        MessageStatus::Cancelled => "不要（支払済・取消など）",
    }
}

/// A request as the list shows it.
#[derive(Clone, Debug)]
pub struct RequestView {
    pub id: String,
    pub order_id: String,
    /// Where it was sent: the mobile number and/or the e-mail address.
    pub phone: String,
    pub email: String,
    pub amount: String,
    pub item_name: String,
    pub url: String,
    pub status: &'static str,
    pub status_ja: &'static str,
    pub expires: String,
    pub created: String,
    /// The last SMS: its state, when, how many were sent in all, and the gateway's refusal.
    pub sms_ja: &'static str,
    pub sms_at: String,
    pub sms_count: usize,
    pub sms_error: String,
    /// The last e-mail's state and the mail server's refusal.
    pub mail_ja: &'static str,
    pub mail_error: String,
    /// Resend and cancel only while the request is open (no payment started, not expired).
    pub can_resend: bool,
    pub can_cancel: bool,
}

pub async fn view(state: &AppState, r: &RequestRow) -> Result<RequestView, crate::db::Error> {
    let status = requests::status_of(&state.db, r, state.now_ms()).await?;
    let sms = crate::sms::messages_of_request(&state.db, &r.id).await?;
    let last = sms.last();
    let mails = crate::db::messages::for_request(&state.db, &r.id).await?;
    let last_mail = mails.last();
    Ok(RequestView {
        id: r.id.clone(),
        order_id: r.order_id.clone(),
        phone: r.phone().unwrap_or_default().to_owned(),
        email: r.email.clone().unwrap_or_default(),
        amount: format_yen(r.amount),
        item_name: r.item_name.clone(),
        url: requests::short_url(state, &r.code),
        status: status.code(),
        status_ja: status_ja(status),
        expires: format_jst(r.expires_at),
        created: format_jst(r.created_at),
        sms_ja: last.map(|m| sms_ja(m.status)).unwrap_or("-"),
        sms_at: last.map(|m| format_jst(m.created_at)).unwrap_or_default(),
        sms_count: sms.len(),
        sms_error: last.and_then(|m| m.error.clone()).unwrap_or_default(),
        mail_ja: last_mail.map(|m| mail_ja(m.status)).unwrap_or("-"),
        mail_error: last_mail
            .and_then(|m| m.last_error.clone())
            .unwrap_or_default(),
        can_resend: status == RequestStatus::Open,
        can_cancel: status == RequestStatus::Open,
    })
}

#[derive(Template)]
#[template(path = "console/payment_requests.html")]
pub struct RequestList {
    pub c: Chrome,
    /// The merchant the page is about (operators name it with `?merchant=`).
    pub merchant: String,
    pub rows: Vec<RequestView>,
    pub message: Option<String>,
}
