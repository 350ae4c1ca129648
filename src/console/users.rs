//! Console user accounts: creation (CLI and the demo admin), argon2 password hashes, TOTP.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use totp_rs::{Algorithm, Secret, TOTP};

use crate::console::Role;
use crate::db::Db;
use crate::secrets::{Keyring, SealError};
use crate::util::{now_ms, random_id};
use crate::{exec_tx, on_db};
use zeroize::Zeroizing;

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct UserRow {
    pub id: String,
    pub merchant_id: Option<String>,
    pub email: String,
    pub role: String,
    pub password_hash: String,
    /// Sealed under the master key when one is configured: read with [`UserRow::totp_secret`].
    #[sqlx(rename = "totp_secret")]
    pub totp_stored: String,
    pub totp_enrolled_at: Option<i64>,
    pub totp_last_step: i64,
    pub failed_logins: i64,
    pub locked_until: Option<i64>,
    pub created_at: i64,
}

pub const COLS: &str =
    "id, merchant_id, email, role, password_hash, totp_secret, totp_enrolled_at, \
totp_last_step, failed_logins, locked_until, created_at";

impl UserRow {
    /// Unknown role codes (impossible by the CHECK constraint) get the least rights.
    pub fn role(&self) -> Role {
        Role::parse(&self.role).unwrap_or(Role::General)
    }
}

/// Credentials of a new user, shown once.
#[derive(Debug)]
pub struct Created {
    pub id: String,
    pub email: String,
    pub password: String,
    pub totp_secret: String,
    pub otpauth_url: String,
}

/// The issuer name authenticator apps show next to the account.
pub const ISSUER: &str = "Kakehashi";

/// A TOTP (RFC 6238: SHA-1, 6 digits, 30 s) for a base32 secret. Authenticator apps only
/// support these parameters reliably.
pub fn totp(secret_b32: &str, email: &str) -> anyhow::Result<TOTP> {
    let bytes = Secret::Encoded(secret_b32.to_owned())
        .to_bytes()
        .map_err(|e| anyhow::anyhow!("bad TOTP secret: {e:?}"))?;
    TOTP::new(
        Algorithm::SHA1,
        6,
        1,
        30,
        bytes,
        Some(ISSUER.to_owned()),
        email.to_owned(),
    )
    .map_err(|e| anyhow::anyhow!("TOTP: {e}"))
}

pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("argon2: {e}"))
}

pub fn verify_password(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// Normalises and checks an e-mail address used as login name.
pub fn parse_email(input: &str) -> Option<String> {
    let e = input.trim().to_lowercase();
    let (local, domain) = e.split_once('@')?;
    let ok = !local.is_empty()
        && domain.contains('.')
        && e.len() <= 254
        && !e.chars().any(|c| c.is_whitespace() || c.is_control());
    ok.then_some(e)
}

/// Creates a user with a generated password and TOTP secret (both returned once).
pub async fn create(
    db: &Db,
    keys: &Keyring,
    merchant_id: Option<&str>,
    email: &str,
    role: Role,
) -> anyhow::Result<Created> {
    let email = parse_email(email).ok_or_else(|| anyhow::anyhow!("not an e-mail address"))?;
    anyhow::ensure!(
        (role == Role::Operator) == merchant_id.is_none(),
        "operators belong to no merchant; admin and general users need --merchant"
    );
    if let Some(m) = merchant_id {
        anyhow::ensure!(
            crate::db::merchants::get(db, m).await?.is_some(),
            "no merchant {m}"
        );
    }
    // 20 characters of the unambiguous alphabet: about 100 bits.
    let password = random_id("pw", 20);
    let secret = Secret::generate_secret().to_encoded().to_string();
    let otpauth_url = totp(&secret, &email)?.get_url();
    let hash = {
        let p = password.clone();
        tokio::task::spawn_blocking(move || hash_password(&p)).await??
    };
    let id = random_id("usr", 16);
    let mut tx = db.begin().await?;
    let r = exec_tx!(&mut tx, c => sqlx::query(
        "INSERT INTO console_users (id, merchant_id, email, role, password_hash, totp_secret, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&id)
    .bind(merchant_id)
    .bind(&email)
    .bind(role.as_str())
    .bind(&hash)
    .bind(keys.seal_or_clear(&secret, &totp_context(&id))?)
    .bind(now_ms())
    .execute(c)
    .await);
    if let Err(e) = &r {
        if crate::db::is_unique_violation(e) {
            anyhow::bail!("a user {email} already exists");
        }
    }
    r?;
    tx.commit().await?;
    Ok(Created {
        id,
        email,
        password,
        totp_secret: secret,
        otpauth_url,
    })
}

/// The seal context of a user's TOTP secret.
pub fn totp_context(user_id: &str) -> String {
    format!("console_users:{user_id}:totp_secret")
}

impl UserRow {
    /// The TOTP secret, opened with the master key when sealed.
    pub fn totp_secret(&self, keys: &Keyring) -> Result<Zeroizing<String>, SealError> {
        keys.reveal(&self.totp_stored, &totp_context(&self.id))
    }
}

pub async fn by_email(db: &Db, email: &str) -> Result<Option<UserRow>, sqlx::Error> {
    let sql = format!("SELECT {COLS} FROM console_users WHERE email = $1");
    let email = email.trim().to_lowercase();
    on_db!(db, c => sqlx::query_as(&sql).bind(&email).fetch_optional(c).await)
}

pub async fn get(db: &Db, id: &str) -> Result<Option<UserRow>, sqlx::Error> {
    let sql = format!("SELECT {COLS} FROM console_users WHERE id = $1");
    on_db!(db, c => sqlx::query_as(&sql).bind(id).fetch_optional(c).await)
}

/// The demo admin of `m_demo`, created together with the demo merchant on first start.
pub const DEMO_EMAIL: &str = "admin@demo.example";

pub async fn ensure_demo_admin(db: &Db, keys: &Keyring) -> anyhow::Result<Option<Created>> {
    if by_email(db, DEMO_EMAIL).await?.is_some() {
        return Ok(None);
    }
    create(db, keys, Some("m_demo"), DEMO_EMAIL, Role::Admin)
        .await
        .map(Some)
}
