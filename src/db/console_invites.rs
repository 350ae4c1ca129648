//! Console enrolment links (`console_invites`): stored by the SHA-256 of their token, used once,
//! in the same transaction that creates the user (or replaces a reset user's credentials).

use crate::db::console_users::NewUser;
use crate::db::Db;
use crate::domain::Role;
use crate::{exec_tx, on_db};

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct InviteRow {
    pub id: String,
    /// The user whose TOTP was reset; `None` for a new user.
    pub user_id: Option<String>,
    pub merchant_id: Option<String>,
    pub email: String,
    #[sqlx(try_from = "String")]
    pub role: Role,
    /// Sealed under the master key when one is configured (seal context [`totp_context`]).
    #[sqlx(rename = "totp_secret")]
    pub totp_stored: String,
    pub created_by: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

const COLS: &str = "id, user_id, merchant_id, email, role, totp_secret, created_by, created_at, \
expires_at, used_at, revoked_at";

/// The seal context of an enrolment link's TOTP secret.
pub fn totp_context(invite_id: &str) -> String {
    format!("console_invites:{invite_id}:totp_secret")
}

/// An enrolment link to insert.
pub struct NewInvite<'a> {
    pub id: &'a str,
    pub token_hash: &'a str,
    pub user_id: Option<&'a str>,
    pub merchant_id: Option<&'a str>,
    pub email: &'a str,
    pub role: Role,
    pub totp_stored: &'a str,
    pub created_by: &'a str,
    pub expires_at: i64,
}

fn insert_sql() -> &'static str {
    "INSERT INTO console_invites (id, token_hash, user_id, merchant_id, email, role, totp_secret, \
     created_by, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
}

/// Inserts a link for a new user.
pub async fn insert(db: &Db, i: &NewInvite<'_>, now: i64) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    exec_tx!(&mut tx, c => sqlx::query(insert_sql())
        .bind(i.id).bind(i.token_hash).bind(i.user_id).bind(i.merchant_id).bind(i.email)
        .bind(i.role.code()).bind(i.totp_stored).bind(i.created_by).bind(now).bind(i.expires_at)
        .execute(c)
        .await)?;
    tx.commit().await
}

/// Resets a user's second factor: in one transaction the user can no longer sign in (empty
/// password hash, which no password matches; sessions deleted), earlier open links for the
/// user are revoked, and the new link is inserted.
pub async fn insert_reset(db: &Db, i: &NewInvite<'_>, now: i64) -> Result<(), sqlx::Error> {
    let user_id = i.user_id.unwrap_or_default();
    let mut tx = db.begin().await?;
    exec_tx!(&mut tx, c => sqlx::query(
        "UPDATE console_users SET password_hash = '', totp_enrolled_at = NULL WHERE id = $1")
        .bind(user_id)
        .execute(c)
        .await)?;
    exec_tx!(&mut tx, c => sqlx::query("DELETE FROM console_sessions WHERE user_id = $1")
        .bind(user_id)
        .execute(c)
        .await)?;
    exec_tx!(&mut tx, c => sqlx::query(
        "UPDATE console_invites SET revoked_at = $1 \
         WHERE user_id = $2 AND used_at IS NULL AND revoked_at IS NULL")
        .bind(now)
        .bind(user_id)
        .execute(c)
        .await)?;
    exec_tx!(&mut tx, c => sqlx::query(insert_sql())
        .bind(i.id).bind(i.token_hash).bind(i.user_id).bind(i.merchant_id).bind(i.email)
        .bind(i.role.code()).bind(i.totp_stored).bind(i.created_by).bind(now).bind(i.expires_at)
        .execute(c)
        .await)?;
    tx.commit().await
}

/// The link with this token hash, used or not.
pub async fn by_token_hash(db: &Db, token_hash: &str) -> Result<Option<InviteRow>, sqlx::Error> {
    let sql = format!("SELECT {COLS} FROM console_invites WHERE token_hash = $1");
    on_db!(db, c => sqlx::query_as(&sql).bind(token_hash).fetch_optional(c).await)
}

pub async fn get(db: &Db, id: &str) -> Result<Option<InviteRow>, sqlx::Error> {
    let sql = format!("SELECT {COLS} FROM console_invites WHERE id = $1");
    on_db!(db, c => sqlx::query_as(&sql).bind(id).fetch_optional(c).await)
}

/// Links not used, revoked or expired at `now`, of one merchant or all (operators), newest first.
pub async fn list_open(
    db: &Db,
    merchant_id: Option<&str>,
    now: i64,
) -> Result<Vec<InviteRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLS} FROM console_invites WHERE ($1 IS NULL OR merchant_id = $2) \
         AND used_at IS NULL AND revoked_at IS NULL AND expires_at > $3 ORDER BY created_at DESC"
    );
    on_db!(db, c => sqlx::query_as(&sql).bind(merchant_id).bind(merchant_id).bind(now)
        .fetch_all(c).await)
}

/// An open link for this e-mail exists at `now`.
pub async fn open_for_email(db: &Db, email: &str, now: i64) -> Result<bool, sqlx::Error> {
    let n: i64 = on_db!(db, c => sqlx::query_scalar(
        "SELECT COUNT(*) FROM console_invites WHERE email = $1 AND used_at IS NULL \
         AND revoked_at IS NULL AND expires_at > $2")
        .bind(email)
        .bind(now)
        .fetch_one(c)
        .await)?;
    Ok(n > 0)
}

/// Revokes an open link; false when it was no longer open.
pub async fn revoke(db: &Db, id: &str, now: i64) -> Result<bool, sqlx::Error> {
    let mut tx = db.begin().await?;
    let n = exec_tx!(&mut tx, c => sqlx::query(
        "UPDATE console_invites SET revoked_at = $1 \
         WHERE id = $2 AND used_at IS NULL AND revoked_at IS NULL")
        .bind(now)
        .bind(id)
        .execute(c)
        .await)?;
    tx.commit().await?;
    Ok(n == 1)
}

/// What using a link writes: the new password hash and TOTP secret (sealed for the user), and
/// the TOTP step the enrolment code matched (so that code cannot sign in again).
pub struct Enrolment<'a> {
    pub password_hash: &'a str,
    pub totp_stored: &'a str,
    pub step: i64,
}

/// Uses a link at `now`: marks it used (only if still open and unexpired) and, in the same
/// transaction, creates the user `new` (a new-user link) or replaces the reset user's password
/// and TOTP. `Ok(false)` when the link was no longer open; a taken e-mail is a unique violation.
pub async fn consume(
    db: &Db,
    invite_id: &str,
    new: Option<&NewUser<'_>>,
    e: &Enrolment<'_>,
    user_id: &str,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let mut tx = db.begin().await?;
    let n = exec_tx!(&mut tx, c => sqlx::query(
        "UPDATE console_invites SET used_at = $1 \
         WHERE id = $2 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > $1")
        .bind(now)
        .bind(invite_id)
        .execute(c)
        .await)?;
    if n != 1 {
        return Ok(false);
    }
    match new {
        Some(u) => {
            exec_tx!(&mut tx, c => sqlx::query(
                "INSERT INTO console_users (id, merchant_id, email, role, password_hash, \
                 totp_secret, totp_enrolled_at, totp_last_step, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $7)")
                .bind(u.id).bind(u.merchant_id).bind(u.email).bind(u.role.code())
                .bind(e.password_hash).bind(e.totp_stored).bind(now).bind(e.step)
                .execute(c)
                .await)?;
        }
        None => {
            let n = exec_tx!(&mut tx, c => sqlx::query(
                "UPDATE console_users SET password_hash = $1, totp_secret = $2, \
                 totp_enrolled_at = $3, totp_last_step = $4 WHERE id = $5")
                .bind(e.password_hash).bind(e.totp_stored).bind(now).bind(e.step).bind(user_id)
                .execute(c)
                .await)?;
            if n != 1 {
                return Ok(false);
            }
        }
    }
    tx.commit().await?;
    Ok(true)
}
