//! Merchant console (管理画面): staff accounts and sign-in with a second factor, payment search,
//! payment actions (card, carrier 取消, number cancel), SMS payment requests, continuous-billing
//! contracts, CSV download, payout summary, merchant settings and the audit log.
//!
//! HTTP handlers live in `routes/console*.rs`; everything they call is here. Actions go through
//! [`actions`] only, the one place that maps flow refusals to sentences for staff.

pub mod actions;
pub mod audit;
pub mod auth;
pub mod csv_export;
pub mod detail;
pub mod error;
pub mod labels;
pub mod messages;
pub mod payment_requests;
pub mod preview;
pub mod reports;
pub mod search;
pub mod settings;
pub mod settlements;
pub mod subscriptions;
pub mod summary;
pub mod users;
pub mod views;

/// What a console user may do (stored as `console_users.role`).
pub use crate::domain::Role;
