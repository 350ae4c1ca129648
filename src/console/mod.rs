//! Merchant console (管理画面): staff accounts and sign-in with a second factor, payment search,
//! payment actions (card, carrier 取消, number cancel; one by one or in bulk on a search), payment
//! links (決済新規登録), saved searches, SMS payment requests, continuous-billing contracts, CSV
//! download, payout summary, merchant settings, user administration with one-time enrolment
//! links, and the audit log.
//!
//! HTTP handlers live in `routes/console*.rs`; everything they call is here. Actions go through
//! [`actions`] only, the one place that maps flow refusals to sentences for staff.

pub mod actions;
pub mod audit;
pub mod auth;
pub mod csv_export;
pub mod detail;
pub mod error;
pub mod invites;
pub mod labels;
pub mod messages;
pub mod owners;
pub mod payment_requests;
pub mod preview;
pub mod repeat_numbers;
pub mod saved_searches;
pub mod search;
pub mod settings;
pub mod settlements;
pub mod subscriptions;
pub mod summary;
pub mod theme_upload;
pub mod user_admin;
pub mod users;
pub mod views;
pub mod views_admin;

/// What a console user may do (stored as `console_users.role`).
pub use crate::domain::Role;
