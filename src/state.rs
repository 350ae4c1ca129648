//! Shared application state handed to every handler.

use std::sync::Arc;

use crate::assets::Assets;
use crate::config::Config;
use crate::db::Db;
use crate::themes::Themes;

#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub config: Arc<Config>,
    pub themes: Arc<Themes>,
    pub assets: Arc<Assets>,
    /// URL of the main stylesheet (content-hashed).
    pub app_css: Arc<str>,
    /// URL of the favicon asset.
    pub favicon: Arc<str>,
    /// URL of the merchant console stylesheet (content-hashed).
    pub console_css: Arc<str>,
    /// Server secret for session and CSRF tokens; shared by instances through the database.
    pub secret: Arc<[u8]>,
    /// The base URL shoppers reach us at, without a trailing slash.
    pub public_url: Arc<str>,
    /// The master keys that seal stored secrets ([`crate::secrets`]).
    pub keys: Arc<crate::secrets::Keyring>,
    /// Every connector: flows get theirs only from here ([`crate::connectors::registry`]).
    pub connectors: Arc<crate::connectors::registry::Registry>,
    /// Card data held in memory while the shopper answers a 3-D Secure challenge.
    pub pending_cards: Arc<crate::flows::card::PendingCards>,
    /// SMS providers: the sandbox for test mode, the configured HTTP gateway for live.
    pub sms: Arc<crate::sms::SmsProviders>,
    /// Nudges the notification worker after a commit that queued events.
    pub wake: Arc<tokio::sync::Notify>,
}

impl AppState {
    /// Tells the local notification worker that new events are waiting.
    pub fn wake_notifier(&self) {
        self.wake.notify_one();
    }

    pub fn now_s(&self) -> i64 {
        crate::util::now_ms() / 1000
    }
}
