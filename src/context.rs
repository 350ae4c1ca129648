//! What flows work with: the store, the connector registry, the keys and the few settings
//! they need. The app state (the edge) holds one `Ctx` and derefs to it, so handlers pass
//! `&state` to flows; flows never see the edge's state (themes, assets, rendering).

use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;
use crate::connectors::registry::Registry;
use crate::db::Db;
use crate::secrets::Keyring;

/// The clock lives in its own leaf module (the notification worker reads it too); these are
/// its names as flows know them.
pub use crate::clock::{Clock, ManualClock, SystemClock};

/// How long a card may be held (sealed, `flows::card_hold`) for a 3-D Secure challenge to
/// finish.
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
    /// The keys that seal card data held while the shopper answers a 3-D Secure challenge
    /// (`flows::card_hold`): the master keys, or without one a key derived from the server
    /// secret, so every instance can open what another sealed.
    pub card_keys: Arc<Keyring>,
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
