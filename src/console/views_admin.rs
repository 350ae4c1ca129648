//! Console pages of user administration (users, enrolment links, the enrolment page) and the
//! row views they show. Kept apart from `views.rs`, which holds the payment pages.

use askama::Template;

use crate::console::views::Chrome;

/// A user as the list shows it, with what the viewer may do to it.
pub struct UserLine {
    pub id: String,
    pub email: String,
    pub merchant: String,
    pub role: &'static str,
    pub role_code: &'static str,
    /// 有効 / 無効 / 登録待ち (TOTP reset, link not used yet).
    pub state: &'static str,
    pub disabled: bool,
    pub last_sign_in: String,
    pub created: String,
    /// The viewer may change this user (not themselves; admins only their merchant's users).
    pub manageable: bool,
    /// Role can switch between admin and general (merchant users only).
    pub role_editable: bool,
}

/// An open enrolment link.
pub struct InviteLine {
    pub id: String,
    pub email: String,
    pub merchant: String,
    pub role: &'static str,
    pub kind: &'static str,
    pub created_by: String,
    pub expires: String,
}

#[derive(Template)]
#[template(path = "console/users.html")]
pub struct Users {
    pub c: Chrome,
    /// The merchant filter of an operator (empty: every merchant); the own one otherwise.
    pub merchant: String,
    pub users: Vec<UserLine>,
    pub invites: Vec<InviteLine>,
    /// Roles the viewer may give in an invitation: (code, label).
    pub roles: Vec<(&'static str, &'static str)>,
    pub notice: Option<String>,
}

#[derive(Template)]
#[template(path = "console/enrol.html")]
pub struct Enrol {
    pub c: Chrome,
    pub token: String,
    pub email: String,
    pub secret: String,
    pub reset: bool,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "console/invite_link.html")]
pub struct InviteLink {
    pub c: Chrome,
    pub title: String,
    pub email: String,
    pub url: String,
    pub expires: String,
    pub back: String,
}

/// A merchant in the operators' list.
pub struct MerchantLine {
    pub id: String,
    pub name: String,
    pub mode: &'static str,
    pub status: &'static str,
    pub created: String,
}

#[derive(Template)]
#[template(path = "console/merchants.html")]
pub struct Merchants {
    pub c: Chrome,
    pub merchants: Vec<MerchantLine>,
    pub error: Option<String>,
    /// The create form's values after a refusal.
    pub name: String,
    pub id: String,
}

#[derive(Template)]
#[template(path = "console/merchant_created.html")]
pub struct MerchantCreated {
    pub c: Chrome,
    pub id: String,
    pub key_id: String,
    pub secret: String,
    pub webhook_secret: String,
    pub famima_note: bool,
}

#[derive(Template)]
#[template(path = "console/merchant_edit.html")]
pub struct MerchantEdit {
    pub c: Chrome,
    pub id: String,
    pub name: String,
    pub active: bool,
    pub compat: bool,
    pub card_options: String,
    pub continuous: bool,
    pub autopay: String,
    pub sms_template: String,
    pub error: Option<String>,
    pub saved: bool,
}

/// One delivery attempt of a test notification.
pub struct AttemptLine {
    pub at: String,
    pub status: String,
    pub latency_ms: i64,
    pub outcome: String,
    pub response: String,
}

#[derive(Template)]
#[template(path = "console/test_notification.html")]
pub struct TestNotification {
    pub c: Chrome,
    pub merchant_id: String,
    pub event_id: String,
    pub callback_url: String,
    /// 配信待ち / 配信済 / 配信失敗 …
    pub state: String,
    pub delivered: bool,
    pub attempts: Vec<AttemptLine>,
    pub refresh: String,
}
