//! What flows work with: the store, the connector registry, the keys and the few settings
//! they need. The app state (the edge) holds one `Ctx` and derefs to it, so handlers pass
//! `&state` to flows; flows never see the edge's state (themes, assets, rendering).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::connectors::registry::Registry;
use crate::db::Db;
use crate::domain::card_form::CardInput;
use crate::secrets::Keyring;

/// The clock lives in its own leaf module (the notification worker reads it too); these are
/// its names as flows know them.
pub use crate::clock::{Clock, ManualClock, SystemClock};

/// How long a parsed card may wait in memory for a 3-D Secure challenge to finish.
pub const PENDING_TTL: Duration = Duration::from_secs(15 * 60);

/// The flows' context.
#[derive(Clone)]
pub struct Ctx {
    /// "Now" for expiry checks (links, sessions, console idle time).
    pub clock: Arc<dyn Clock>,
    pub db: Db,
    pub config: Arc<Config>,
    /// The master keys that seal stored secrets ([`crate::secrets`]).
    pub keys: Arc<Keyring>,
    /// Every connector: flows get theirs only from here ([`crate::connectors::registry`]).
    pub connectors: Arc<Registry>,
    /// Card data held in memory while the shopper answers a 3-D Secure challenge.
    pub pending_cards: Arc<PendingCards>,
    /// Server secret for session and CSRF tokens; shared by instances through the database.
    pub secret: Arc<[u8]>,
    /// The base URL shoppers reach us at, without a trailing slash.
    pub public_url: Arc<str>,
    /// SMS providers: the sandbox for test mode, the configured HTTP gateway for live.
    pub sms: Arc<crate::sms::SmsProviders>,
    /// Nudges the notification worker after a commit that queued events.
    pub wake: Arc<tokio::sync::Notify>,
}

impl Ctx {
    /// Tells the local notification worker that new events are waiting.
    pub fn wake_notifier(&self) {
        self.wake.notify_one();
    }

    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    pub fn now_s(&self) -> i64 {
        self.clock.now_ms() / 1000
    }
}

/// Cards waiting for a challenge to finish, in memory only.
#[derive(Default)]
pub struct PendingCards {
    map: Mutex<HashMap<String, (Instant, CardInput)>>,
}

impl PendingCards {
    pub fn put(&self, payment_id: &str, input: CardInput) {
        let mut m = self.map.lock().unwrap_or_else(|p| p.into_inner());
        m.retain(|_, (at, _)| at.elapsed() < PENDING_TTL);
        m.insert(payment_id.to_owned(), (Instant::now(), input));
    }
    pub fn take(&self, payment_id: &str) -> Option<CardInput> {
        let mut m = self.map.lock().unwrap_or_else(|p| p.into_inner());
        m.remove(payment_id)
            .filter(|(at, _)| at.elapsed() < PENDING_TTL)
            .map(|(_, c)| c)
    }
    pub fn peek_ok(&self, payment_id: &str) -> bool {
        let m = self.map.lock().unwrap_or_else(|p| p.into_inner());
        m.get(payment_id)
            .is_some_and(|(at, _)| at.elapsed() < PENDING_TTL)
    }
}
