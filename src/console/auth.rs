//! Console sign-in: password (argon2) then TOTP, lockout, server-side sessions with an idle
//! timeout, the session cookie, CSRF tokens, and the [`Staff`] extractor for signed-in pages.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use cookie::{Cookie, SameSite};
use sha2::{Digest, Sha256};

use crate::console::error::ConsoleError;
use crate::console::users::{self, UserRow};
use crate::console::Role;
use crate::db::{console_login_locks, console_sessions, console_users, owners, Db};
use crate::domain::scope::Scope;
use crate::signing::hmac_bytes;
use crate::state::AppState;

/// Failed attempts (password or code) before an account locks.
pub const MAX_FAILURES: i64 = 10;
/// How long a locked account stays locked.
pub const LOCK_MS: i64 = 30 * 60 * 1000;
/// Session cookie (path /console) and the login-form nonce cookie (path /console/login).
pub const SESSION_COOKIE: &str = "kk_console";
pub const LOGIN_COOKIE: &str = "kk_login";

/// Builds every console cookie. Always `Secure`: browsers and reqwest's cookie store treat
/// http://localhost and http://127.0.0.1 as secure contexts, so local development still works.
/// `SameSite=Strict` keeps other sites from riding the session; `HttpOnly` keeps it from script.
pub fn cookie(name: &'static str, value: &str, path: &'static str, clear: bool) -> HeaderValue {
    let mut c = Cookie::build((name, value.to_owned()))
        .path(path)
        .secure(true)
        .http_only(true)
        .same_site(SameSite::Strict);
    if clear {
        c = c.max_age(cookie::time::Duration::ZERO);
    }
    HeaderValue::from_str(&c.build().to_string()).unwrap_or(HeaderValue::from_static(""))
}

/// The value of a request cookie.
pub fn read_cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| Cookie::split_parse(v.to_owned()).flatten())
        .find(|c| c.name() == name)
        .map(|c| c.value().to_owned())
}

/// A CSRF token bound to a session (or login nonce) id: HMAC with the server secret.
pub fn csrf(secret: &[u8], sid: &str) -> String {
    URL_SAFE_NO_PAD.encode(&hmac_bytes(secret, format!("console-csrf|{sid}").as_bytes())[..18])
}

pub fn csrf_ok(secret: &[u8], sid: &str, given: &str) -> bool {
    let expected = csrf(secret, sid);
    // Compare MACs of both so timing tells nothing about the expected value.
    hmac_bytes(secret, given.as_bytes()) == hmac_bytes(secret, expected.as_bytes())
}

fn hash_sid(sid: &str) -> String {
    hex::encode(Sha256::digest(sid.as_bytes()))
}

/// Why a sign-in step failed. Both look the same to the user except the lock.
#[derive(Debug, PartialEq, Eq)]
pub enum LoginError {
    Invalid,
    Locked,
}

/// The lock key of an e-mail as typed: SHA-256 of the normalised address, so unknown e-mails
/// are counted (and locked) exactly like known ones without keeping what was typed.
pub fn account_key(email: &str) -> String {
    hex::encode(Sha256::digest(email.trim().to_lowercase().as_bytes()))
}

/// Counts a failure of `account` from `ip`, in one statement evaluated after the hash or code
/// check: only while that pair is not locked (failures while locked count nothing), and the
/// [`MAX_FAILURES`]th locks it for [`LOCK_MS`] (and resets the count). Concurrent failures are
/// serialized by the database's row lock, so exactly the tenth locks, whatever the
/// interleaving. The lock is per account + client address: one office behind a NAT cannot lock
/// everyone out, and nobody elsewhere can lock a user out of their own address.
pub async fn record_failure(
    db: &Db,
    account: &str,
    ip: &str,
    now: i64,
) -> Result<LoginError, crate::db::Error> {
    let after =
        console_login_locks::record_failure(db, account, ip, MAX_FAILURES, now + LOCK_MS, now)
            .await?;
    Ok(match after {
        // No row: the pair was already locked.
        None => LoginError::Locked,
        Some(Some(t)) if t > now => LoginError::Locked,
        Some(_) => LoginError::Invalid,
    })
}

/// Password step. Unknown e-mails cost the same argon2 work as known ones (a dummy hash) and
/// are counted and locked the same way, so neither timing, status nor page tells whether an
/// account exists. The hash runs under [`users::hashing`] (bounded concurrency); the lock is
/// judged only after it, by the database.
pub async fn check_password(
    db: &Db,
    email: &str,
    password: &str,
    ip: &str,
    now: i64,
) -> Result<Result<UserRow, (LoginError, Option<UserRow>)>, ConsoleError> {
    let user = users::by_email(db, email).await?;
    let account = account_key(email);
    // A hash of a random string stands in for unknown users, so timing does not tell.
    static DUMMY: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    let hash = match &user {
        Some(u) => u.password_hash.clone(),
        None => DUMMY
            .get_or_try_init(|| async {
                let pw = crate::util::random_secret("");
                users::hashing(move || users::hash_password(&pw)).await?
            })
            .await?
            .clone(),
    };
    let pw = password.to_owned();
    let ok = users::hashing(move || users::verify_password(&hash, &pw)).await?;
    let user = match user {
        // A disabled account answers like a wrong password (and counts toward the lock).
        Some(u) if ok && u.disabled_at.is_none() => u,
        // Unknown accounts never pass, whatever the dummy hash would say.
        other => {
            let e = record_failure(db, &account, ip, now).await?;
            return Ok(Err((e, other)));
        }
    };
    if console_login_locks::locked_now(db, &account, ip, now).await? {
        return Ok(Err((LoginError::Locked, Some(user))));
    }
    if users::needs_rehash(&user.password_hash) {
        rehash(db, &user, password).await;
    }
    Ok(Ok(user))
}

/// Stores a hash of a correct password made with the current parameters in place of an older
/// one ([`users::needs_rehash`]). Best effort: the sign-in goes on if it fails, and the next
/// sign-in tries again.
async fn rehash(db: &Db, user: &UserRow, password: &str) {
    let pw = password.to_owned();
    let new = match users::hashing(move || users::hash_password(&pw)).await {
        Ok(Ok(h)) => h,
        Ok(Err(e)) | Err(e) => {
            tracing::warn!(user = %user.id, error = %e, "password rehash failed");
            return;
        }
    };
    if let Err(e) =
        console_users::replace_password_hash(db, &user.id, &user.password_hash, &new).await
    {
        tracing::warn!(user = %user.id, error = %e, "password rehash not stored");
    }
}

/// The outcome of a code.
#[derive(Debug, PartialEq, Eq)]
pub enum TotpOutcome {
    Accepted,
    Invalid,
    Locked,
}

/// TOTP step: accepts the code of the current step or one step either side (clock skew), and
/// each step once only. Success resets the failure counter and completes enrolment, but only
/// while the account is not locked (one statement), so a good code never clears a lock.
pub async fn check_totp(
    db: &Db,
    keys: &crate::secrets::Keyring,
    user: &UserRow,
    code: &str,
    ip: &str,
    now: i64,
) -> Result<TotpOutcome, ConsoleError> {
    let account = account_key(&user.email);
    let secret = user
        .totp_secret(keys)
        .map_err(|e| ConsoleError::Internal(e.into()))?;
    let totp = users::totp(&secret, &user.email)?;
    let step = (now / 1000) / 30;
    let code = code.trim();
    let matched = [step - 1, step, step + 1].into_iter().find(|s| {
        *s > user.totp_last_step
            && hmac_bytes(b"cmp", totp.generate((*s * 30) as u64).as_bytes())
                == hmac_bytes(b"cmp", code.as_bytes())
    });
    let Some(s) = matched else {
        return Ok(match record_failure(db, &account, ip, now).await? {
            LoginError::Locked => TotpOutcome::Locked,
            LoginError::Invalid => TotpOutcome::Invalid,
        });
    };
    if console_users::accept_totp_step(db, &user.id, &account, ip, s, now).await? {
        return Ok(TotpOutcome::Accepted);
    }
    // Refused: a replayed step, or the account is locked for this address.
    let locked = console_login_locks::locked_now(db, &account, ip, now).await?;
    Ok(if locked {
        TotpOutcome::Locked
    } else {
        TotpOutcome::Invalid
    })
}

pub use crate::db::console_sessions::SessionRow;

/// Creates a session at `now` and returns its id (for the cookie; only the hash is stored).
pub async fn create_session(
    db: &Db,
    user_id: &str,
    stage: &str,
    ip: &str,
    now: i64,
) -> Result<String, crate::db::Error> {
    let sid = crate::util::random_secret("");
    console_sessions::insert(db, &hash_sid(&sid), user_id, stage, ip, now).await?;
    Ok(sid)
}

pub async fn delete_session(db: &Db, sid: &str) -> Result<(), crate::db::Error> {
    console_sessions::delete(db, &hash_sid(sid)).await
}

/// Loads a live session: deleted (and `None`) when idle longer than `idle_ms` at `now`; else
/// touched.
pub async fn load_session(
    db: &Db,
    sid: &str,
    idle_ms: i64,
    now: i64,
) -> Result<Option<(SessionRow, UserRow)>, crate::db::Error> {
    let h = hash_sid(sid);
    let Some(s) = console_sessions::get(db, &h).await? else {
        return Ok(None);
    };
    if now - s.last_seen > idle_ms {
        console_sessions::delete(db, &h).await?;
        return Ok(None);
    }
    // A disabled user's sessions are deleted when disabled; this is the belt to that brace.
    let Some(u) = users::get(db, &s.user_id)
        .await?
        .filter(|u| u.disabled_at.is_none())
    else {
        return Ok(None);
    };
    console_sessions::touch(db, &h, now).await?;
    Ok(Some((s, u)))
}

/// The client address for the audit log: the TCP peer, or the forwarded address when the peer
/// is a trusted proxy ([`crate::client_addr`]).
pub fn client_ip(parts: &Parts, trusted_proxies: &[crate::client_addr::Cidr]) -> String {
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(std::net::IpAddr::from([0, 0, 0, 0]));
    crate::client_addr::client_ip(peer, &parts.headers, trusted_proxies).to_string()
}

/// A signed-in console user (both factors passed, not idle).
#[derive(Clone, Debug)]
pub struct Staff {
    pub user: UserRow,
    /// The request's time (from the app clock): audit records and actions use it.
    pub now: i64,
    pub sid: String,
    pub ip: String,
    pub csrf: String,
    /// The merchants this user may see, from their role and binding (read at sign-in check).
    pub scope: Scope,
}

/// The scope of a user: operators see every merchant, owner staff the owner's tenants,
/// everyone else their merchant. A row bound to nothing (the database forbids it) sees nothing.
pub fn scope_of(u: &UserRow) -> Option<Scope> {
    match (u.role(), &u.owner_id, &u.merchant_id) {
        (Role::Operator, None, None) => Some(Scope::All),
        (Role::Operator, _, _) => None,
        (_, Some(o), None) => Some(Scope::Owner(o.clone())),
        (_, None, Some(m)) => Some(Scope::Merchant(m.clone())),
        _ => None,
    }
}

impl Staff {
    pub fn role(&self) -> Role {
        self.user.role()
    }

    /// The merchants this user may see; every query of a console page is limited to it.
    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    /// The scope narrowed to one merchant when `requested` names one (checked as in
    /// [`Staff::merchant_for`]); the whole scope when it is empty.
    pub async fn narrowed(&self, db: &Db, requested: &str) -> Result<Scope, ConsoleError> {
        if requested.is_empty() {
            return Ok(self.scope.clone());
        }
        Ok(Scope::Merchant(self.merchant_for(db, requested).await?))
    }

    /// Refuses unless the user may act (admin or operator).
    pub fn require_admin(&self) -> Result<(), ConsoleError> {
        if self.role().can_act() {
            Ok(())
        } else {
            Err(ConsoleError::Forbidden)
        }
    }

    /// Checks a form's CSRF token.
    pub fn check_csrf(&self, secret: &[u8], given: &str) -> Result<(), ConsoleError> {
        if csrf_ok(secret, &self.sid, given) {
            Ok(())
        } else {
            Err(ConsoleError::BadCsrf)
        }
    }

    /// Who did it, for payment events and the audit log.
    pub fn actor(&self) -> String {
        format!("console:{}", self.user.email)
    }

    /// The merchant a page works on: the own one for merchant staff; `requested` for
    /// operators, and for owner staff when it is one of their tenants (else "not found", the
    /// same as an unknown id, so other owners' merchants are not revealed).
    pub async fn merchant_for(&self, db: &Db, requested: &str) -> Result<String, ConsoleError> {
        match &self.scope {
            Scope::Merchant(m) => Ok(m.clone()),
            Scope::Owner(_) if requested.is_empty() => Err(ConsoleError::Bad(
                "テナントを選んでください（メニューの「テナント」から）。".to_owned(),
            )),
            Scope::All if requested.is_empty() => {
                Err(ConsoleError::Bad("加盟店IDを指定してください。".to_owned()))
            }
            Scope::All => Ok(requested.to_owned()),
            Scope::Owner(_) => owners::merchant_in_scope(db, &self.scope, requested)
                .await?
                .map(|m| m.id)
                .ok_or(ConsoleError::NotFound),
        }
    }
}

impl FromRequestParts<AppState> for Staff {
    type Rejection = ConsoleError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let sid = read_cookie(&parts.headers, SESSION_COOKIE).ok_or(ConsoleError::Login)?;
        let idle_ms = state.config.console_idle_s.saturating_mul(1000);
        let now = state.now_ms();
        let (session, user) = load_session(&state.db, &sid, idle_ms, now)
            .await?
            .ok_or(ConsoleError::Login)?;
        if session.stage != "full" {
            return Err(ConsoleError::Login);
        }
        let scope = scope_of(&user).ok_or(ConsoleError::Forbidden)?;
        Ok(Staff {
            scope,
            csrf: csrf(&state.secret, &sid),
            user,
            now,
            sid,
            ip: client_ip(parts, &state.config.trusted_proxies),
        })
    }
}
