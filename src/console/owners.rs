//! Console pages of owners and tenants (テナントオプション): the tenants page of owner staff
//! (which tenant's payments, settings and themes to open) and the owners page of operators
//! (create owners, put merchants under them).

use askama::Template;

use crate::console::views::Chrome;

/// A tenant (or any merchant, on the operators' page) as a line.
pub struct TenantLine {
    pub id: String,
    pub name: String,
    pub mode: &'static str,
    /// Its owner's id, `-` for an independent merchant (operators' page).
    pub owner: String,
}

/// An owner as the operators' page shows it.
pub struct OwnerLine {
    pub id: String,
    pub name: String,
    pub tenants: Vec<String>,
    pub created: String,
}

#[derive(Template)]
#[template(path = "console/tenants.html")]
pub struct Tenants {
    pub c: Chrome,
    pub owner: String,
    pub tenants: Vec<TenantLine>,
}

#[derive(Template)]
#[template(path = "console/owners.html")]
pub struct Owners {
    pub c: Chrome,
    pub owners: Vec<OwnerLine>,
    pub merchants: Vec<TenantLine>,
    pub notice: Option<String>,
    pub error: Option<String>,
}
