//! Result notifications to merchants: signing, retry schedule, SSRF guard, delivery, worker.

pub mod deliver;
/// The notification types (a domain list; kept here under its old path too).
pub use crate::domain::events;
pub mod schedule;
pub mod sign;
pub mod ssrf;
pub mod worker;

use crate::config::Config;
use crate::domain::Mode;
use ssrf::UrlPolicy;

/// The address policy for a merchant's callback URL: live merchants need https on public
/// addresses; test-mode merchants may use http; loopback only when the server allows it.
pub fn policy_for(config: &Config, mode: Mode) -> UrlPolicy {
    if config.allow_loopback_callbacks {
        UrlPolicy::AllowLoopback
    } else {
        match mode {
            Mode::Live => UrlPolicy::Production,
            Mode::Test => UrlPolicy::TestMode,
        }
    }
}
