//! The payment detail's list of shopper messages (docs/messages.md): kind, channel, recipient,
//! status, attempts and the last refusal, for staff deciding whether to resend.

use crate::console::error::ConsoleResult;
use crate::console::views::MessageView;
use crate::db::payments::PaymentRow;
use crate::domain::message::{Channel, MessageKind, MessageStatus};
use crate::state::AppState;
use crate::util::format_jst;

fn kind_label(k: MessageKind) -> &'static str {
    match k {
        MessageKind::Instructions => "お支払い方法のご案内",
        MessageKind::Reminder => "お支払期限のリマインド",
        MessageKind::Receipt => "お支払い完了（領収）",
        MessageKind::Refund => "返金のお知らせ",
        MessageKind::Cancellation => "取消のお知らせ",
        MessageKind::RefundRequest => "返金先口座のご登録依頼",
        MessageKind::PaymentRequest => "お支払いのお願い（決済URL）",
    }
}

fn status_label(s: MessageStatus) -> &'static str {
    match s {
        MessageStatus::Pending => "送信待ち",
        MessageStatus::Sent => "送信済",
        MessageStatus::Failed => "送信失敗",
        MessageStatus::Cancelled => "不要（支払済など）",
    }
}

pub async fn list(state: &AppState, p: &PaymentRow) -> ConsoleResult<Vec<MessageView>> {
    let rows = crate::db::messages::for_payment(&state.db, &p.id).await?;
    Ok(rows
        .into_iter()
        .map(|m| MessageView {
            created: format_jst(m.created_at),
            kind: m.kind.code(),
            kind_label: kind_label(m.kind),
            channel_label: match m.channel {
                Channel::Email => "メール",
                Channel::Sms => "SMS",
            },
            recipient: m.recipient,
            status: m.status.code(),
            status_label: status_label(m.status),
            due: if m.status == MessageStatus::Pending {
                format_jst(m.send_at)
            } else {
                String::new()
            },
            attempts: m.attempts,
            sent: m.sent_at.map(format_jst).unwrap_or_default(),
            error: m.last_error.unwrap_or_default(),
            id: m.id,
        })
        .collect())
}

/// The merchant's message settings page (`/console/settings/messages`, admins).
#[derive(askama::Template)]
#[template(path = "console/message_settings.html")]
pub struct SettingsPage {
    pub c: crate::console::views::Chrome,
    pub merchant_id: String,
    pub merchant_name: String,
    pub sender_name: String,
    pub reply_to: String,
    pub reminder_hours: i64,
    pub receipts: bool,
    pub sms: bool,
    /// Whether this server sends e-mail at all (`KAKEHASHI_SMTP_HOST`).
    pub mail_on: bool,
    pub error: Option<String>,
    pub saved: bool,
}

/// Reads the posted settings form; the error is the sentence shown above the form.
pub fn parse(f: &[(String, String)]) -> Result<crate::db::messages::Settings, String> {
    use crate::domain::message::{valid_email, REMINDER_HOURS};
    let get = |n: &str| crate::form::get(f, n).trim().to_owned();
    let sender_name = get("sender_name");
    if sender_name.chars().count() > 60 || sender_name.chars().any(char::is_control) {
        return Err("差出人名は60文字以内で入力してください。".into());
    }
    let reply_to = get("reply_to");
    if !reply_to.is_empty() && !valid_email(&reply_to) {
        return Err("返信先メールアドレスの形式が正しくありません。".into());
    }
    let reminder_hours: i64 = get("reminder_hours").parse().unwrap_or(-1);
    if !REMINDER_HOURS.contains(&reminder_hours) {
        return Err("リマインドは「送らない」「24時間前」「48時間前」から選んでください。".into());
    }
    Ok(crate::db::messages::Settings {
        sender_name: (!sender_name.is_empty()).then_some(sender_name),
        reply_to: (!reply_to.is_empty()).then_some(reply_to),
        reminder_hours,
        receipts: get("receipts") == "1",
        sms: get("sms") == "1",
    })
}
