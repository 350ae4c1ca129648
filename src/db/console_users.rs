//! Console users (`console_users`): accounts and the last TOTP step. Sign-in failures and
//! locks are per account + address, in [`crate::db::console_login_locks`].

use crate::db::Db;
use crate::domain::Role;
use crate::{args, exec_tx, on_db};

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct UserRow {
    pub id: String,
    pub merchant_id: Option<String>,
    /// Owner staff (テナントオプション): set instead of `merchant_id`.
    pub owner_id: Option<String>,
    pub email: String,
    #[sqlx(try_from = "String")]
    pub role: Role,
    pub password_hash: String,
    /// Sealed under the master key when one is configured (seal context [`totp_context`]).
    #[sqlx(rename = "totp_secret")]
    pub totp_stored: String,
    pub totp_enrolled_at: Option<i64>,
    pub totp_last_step: i64,
    pub failed_logins: i64,
    pub locked_until: Option<i64>,
    pub created_at: i64,
    /// Set while the account may not sign in.
    pub disabled_at: Option<i64>,
    /// The last completed sign-in (both factors).
    pub last_sign_in_at: Option<i64>,
}

const COLS: &str =
    "id, merchant_id, owner_id, email, role, password_hash, totp_secret, totp_enrolled_at, \
totp_last_step, failed_logins, locked_until, created_at, disabled_at, last_sign_in_at";

/// The seal context of a user's TOTP secret.
pub fn totp_context(user_id: &str) -> String {
    format!("console_users:{user_id}:totp_secret")
}

/// A user to insert; the password hash and the (sealed) TOTP secret are computed by the caller.
pub struct NewUser<'a> {
    pub id: &'a str,
    pub merchant_id: Option<&'a str>,
    /// Owner staff only (then `merchant_id` is `None`).
    pub owner_id: Option<&'a str>,
    pub email: &'a str,
    pub role: Role,
    pub password_hash: &'a str,
    pub totp_stored: &'a str,
}

/// Inserts a user; a taken e-mail is a unique violation ([`crate::db::is_unique_violation`]).
pub async fn insert(db: &Db, u: &NewUser<'_>, now: i64) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    exec_tx!(&mut tx, c => sqlx::query(
        "INSERT INTO console_users (id, merchant_id, owner_id, email, role, password_hash, totp_secret, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(u.id)
    .bind(u.merchant_id)
    .bind(u.owner_id)
    .bind(u.email)
    .bind(u.role.code())
    .bind(u.password_hash)
    .bind(u.totp_stored)
    .bind(now)
    .execute(c)
    .await)?;
    tx.commit().await
}

/// The user with this (already normalised) e-mail.
pub async fn by_email(db: &Db, email: &str) -> Result<Option<UserRow>, sqlx::Error> {
    let sql = format!("SELECT {COLS} FROM console_users WHERE email = $1");
    on_db!(db, c => sqlx::query_as(&sql).bind(email).fetch_optional(c).await)
}

pub async fn get(db: &Db, id: &str) -> Result<Option<UserRow>, sqlx::Error> {
    let sql = format!("SELECT {COLS} FROM console_users WHERE id = $1");
    on_db!(db, c => sqlx::query_as(&sql).bind(id).fetch_optional(c).await)
}

/// Accepts TOTP step `step`: completes enrolment and resets the failure count of (`account`,
/// `ip`), only if the step is newer than the last one used and that pair is not locked at
/// `now` (one statement checks both, so a good code never clears a lock). False when refused.
pub async fn accept_totp_step(
    db: &Db,
    user_id: &str,
    account: &str,
    ip: &str,
    step: i64,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let mut tx = db.begin().await?;
    let n = exec_tx!(&mut tx, c => sqlx::query(
        "UPDATE console_users SET totp_last_step = $1, last_sign_in_at = $2, \
         totp_enrolled_at = COALESCE(totp_enrolled_at, $2) \
         WHERE id = $3 AND totp_last_step < $1 AND NOT EXISTS ( \
           SELECT 1 FROM console_login_locks \
           WHERE account = $4 AND ip = $5 AND locked_until IS NOT NULL AND locked_until > $2)",
    )
    .bind(step)
    .bind(now)
    .bind(user_id)
    .bind(account)
    .bind(ip)
    .execute(c)
    .await)?;
    if n == 1 {
        exec_tx!(&mut tx, c => sqlx::query(
            "UPDATE console_login_locks SET failures = 0, updated_at = $1 \
             WHERE account = $2 AND ip = $3 AND (locked_until IS NULL OR locked_until <= $1)",
        )
        .bind(now)
        .bind(account)
        .bind(ip)
        .execute(c)
        .await)?;
    }
    tx.commit().await?;
    Ok(n == 1)
}

/// Users of one merchant, or every user when `merchant_id` is `None` (operators), by e-mail.
pub async fn list(db: &Db, merchant_id: Option<&str>) -> Result<Vec<UserRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLS} FROM console_users WHERE ($1 IS NULL OR merchant_id = $2) ORDER BY email"
    );
    on_db!(db, c => sqlx::query_as(&sql).bind(merchant_id).bind(merchant_id).fetch_all(c).await)
}

/// Replaces a user's password hash with `new` if it is still `old` (a sign-in rehashing to the
/// current parameters must not undo a reset made meanwhile). False when it changed.
pub async fn replace_password_hash(
    db: &Db,
    user_id: &str,
    old: &str,
    new: &str,
) -> Result<bool, sqlx::Error> {
    let n = db
        .write_exec(
            "UPDATE console_users SET password_hash = $1 WHERE id = $2 AND password_hash = $3",
            args![new, user_id, old],
        )
        .await?;
    Ok(n == 1)
}

/// Changes a user's role if it is still `from` (two admins editing at once cannot undo each
/// other silently). False when the user changed meanwhile.
pub async fn set_role(db: &Db, user_id: &str, from: Role, to: Role) -> Result<bool, sqlx::Error> {
    let mut tx = db.begin().await?;
    let n = exec_tx!(&mut tx, c => sqlx::query(
        "UPDATE console_users SET role = $1 WHERE id = $2 AND role = $3",
    )
    .bind(to.code())
    .bind(user_id)
    .bind(from.code())
    .execute(c)
    .await)?;
    tx.commit().await?;
    Ok(n == 1)
}

/// Disables (`Some(now)`) or enables (`None`) a user. Disabling deletes the user's sessions in
/// the same transaction, so a signed-in user is out at their next request.
pub async fn set_disabled(
    db: &Db,
    user_id: &str,
    disabled_at: Option<i64>,
) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    exec_tx!(&mut tx, c => sqlx::query("UPDATE console_users SET disabled_at = $1 WHERE id = $2")
        .bind(disabled_at)
        .bind(user_id)
        .execute(c)
        .await)?;
    if disabled_at.is_some() {
        exec_tx!(&mut tx, c => sqlx::query("DELETE FROM console_sessions WHERE user_id = $1")
            .bind(user_id)
            .execute(c)
            .await)?;
    }
    tx.commit().await
}
