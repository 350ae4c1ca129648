//! Who may manage which console user, and the changes themselves (role, disable / enable,
//! TOTP reset). Admins manage their own merchant's admin and general users; operators manage
//! everyone. Nobody changes their own account here, so nobody locks themselves out.

use crate::console::auth::Staff;
use crate::console::error::{ConsoleError, ConsoleResult};
use crate::console::users::{self, UserRow};
use crate::console::Role;
use crate::db::{console_users, Db};
use crate::domain::scope::Scope;

/// Whether `staff` may see user `u`: operators anyone, merchant admins their merchant's users.
/// Owner staff manage no users here (tenant staff are managed by the tenant's admins and by
/// operators; owner staff by operators with the CLI).
fn sees(staff: &Staff, u: &UserRow) -> bool {
    match staff.scope() {
        Scope::All => true,
        Scope::Merchant(m) => u.merchant_id.as_deref() == Some(m.as_str()),
        Scope::Owner(_) => false,
    }
}

/// A user the staff member can see ([`sees`]). Others are "not found", so ids of other
/// merchants' users tell nothing.
pub async fn visible(db: &Db, staff: &Staff, id: &str) -> ConsoleResult<UserRow> {
    users::get(db, id)
        .await?
        .filter(|u| sees(staff, u))
        .ok_or(ConsoleError::NotFound)
}

/// Refuses unless `staff` may use the users page: admins of a merchant and operators.
pub fn require_user_admin(staff: &Staff) -> ConsoleResult<()> {
    staff.require_admin()?;
    if matches!(staff.scope(), Scope::Owner(_)) {
        return Err(ConsoleError::Forbidden);
    }
    Ok(())
}

/// Whether `staff` may change `u`: an admin or operator, the user visible to them, not
/// themselves.
pub fn may_manage(staff: &Staff, u: &UserRow) -> bool {
    staff.role().can_act() && u.id != staff.user.id && sees(staff, u)
}

/// Loads a user `staff` may change, or the refusal.
pub async fn manageable(db: &Db, staff: &Staff, id: &str) -> ConsoleResult<UserRow> {
    staff.require_admin()?;
    let u = visible(db, staff, id).await?;
    if u.id == staff.user.id {
        return Err(ConsoleError::Bad(
            "自分自身のアカウントはここでは変更できません。".into(),
        ));
    }
    if !may_manage(staff, &u) {
        return Err(ConsoleError::Forbidden);
    }
    Ok(u)
}

/// Roles `staff` may give in an invitation: admins give admin or general of their merchant,
/// operators also operator.
pub fn invitable_roles(staff: &Staff) -> Vec<Role> {
    match staff.scope() {
        Scope::Merchant(_) => vec![Role::General, Role::Admin],
        Scope::All => vec![Role::General, Role::Admin, Role::Operator],
        Scope::Owner(_) => vec![],
    }
}

/// Switches a merchant user between admin and general; returns the audit detail
/// (`admin -> general`).
pub async fn set_role(db: &Db, u: &UserRow, to: Role) -> ConsoleResult<String> {
    if u.role == Role::Operator || to == Role::Operator {
        return Err(ConsoleError::Bad(
            "運用者の権限は変更できません（加盟店のユーザーは管理者と一般の間で変更できます）。"
                .into(),
        ));
    }
    if u.role == to {
        return Err(ConsoleError::Bad("権限は変わっていません。".into()));
    }
    if !console_users::set_role(db, &u.id, u.role, to).await? {
        return Err(ConsoleError::Conflict(
            "同時に更新されました。もう一度お試しください。".into(),
        ));
    }
    Ok(format!("{} -> {}", u.role.code(), to.code()))
}

/// Disables (signing the user out) or enables a user; returns the audit detail.
pub async fn set_disabled(db: &Db, u: &UserRow, disable: bool, now: i64) -> ConsoleResult<String> {
    let before = if u.disabled_at.is_some() {
        "disabled"
    } else {
        "active"
    };
    let after = if disable { "disabled" } else { "active" };
    if before == after {
        return Err(ConsoleError::Bad("状態は変わっていません。".into()));
    }
    console_users::set_disabled(db, &u.id, disable.then_some(now)).await?;
    Ok(format!("{before} -> {after}"))
}
