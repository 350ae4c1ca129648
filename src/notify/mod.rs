//! Result notifications to merchants: signing, retry schedule, delivery, worker (the SSRF
//! guard they share with connectors is `crate::ssrf`).

pub mod deliver;
/// The notification types (a domain list; kept here under its old path too).
pub use crate::domain::events;
pub mod schedule;
pub mod sign;
pub mod worker;
