//! Merchant console (管理画面): staff accounts and sign-in with a second factor, payment search,
//! card actions, CSV download, payout summary, merchant settings and the audit log.
//!
//! HTTP handlers live in `routes/console*.rs`; everything they call is here. Card actions go
//! through [`actions`] only, so the shared card flow functions can replace it in one place.

pub mod actions;
pub mod audit;
pub mod auth;
pub mod csv_export;
pub mod detail;
pub mod error;
pub mod messages;
pub mod preview;
pub mod search;
pub mod settings;
pub mod summary;
pub mod users;
pub mod views;

/// What a console user may do. Admins and general users belong to one merchant; operators run
/// the server and see every merchant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Everything for their merchant: view, download, card actions, settings.
    Admin,
    /// View and download only (一般).
    General,
    /// Every merchant, with admin rights.
    Operator,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "general" => Some(Role::General),
            "operator" => Some(Role::Operator),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::General => "general",
            Role::Operator => "operator",
        }
    }

    pub fn label_ja(self) -> &'static str {
        match self {
            Role::Admin => "管理者",
            Role::General => "一般",
            Role::Operator => "運用者",
        }
    }

    /// May change payments and settings (not only view and download).
    pub fn can_act(self) -> bool {
        matches!(self, Role::Admin | Role::Operator)
    }
}
