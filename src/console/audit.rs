//! The console audit log: who did what to which target, when and from where.

use crate::console::auth::Staff;
use crate::db::Db;

pub use crate::db::audit::{list, AuditRow, Entry};

/// Records `e` at `now`.
pub async fn write(db: &Db, e: &Entry<'_>, now: i64) -> Result<(), crate::db::Error> {
    crate::db::audit::insert(db, e, now).await
}

/// Records an action of a signed-in user on `merchant_id`'s data, at the request's time.
pub async fn staff(
    db: &Db,
    s: &Staff,
    merchant_id: Option<&str>,
    action: &str,
    target: &str,
    detail: &str,
) -> Result<(), crate::db::Error> {
    write(
        db,
        &Entry {
            user_id: Some(&s.user.id),
            email: &s.user.email,
            merchant_id: merchant_id.or(s.user.merchant_id.as_deref()),
            action,
            target,
            detail,
            ip: &s.ip,
        },
        s.now,
    )
    .await
}
