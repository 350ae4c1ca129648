//! One-time enrolment links (招待): a new user, or a user whose TOTP was reset, sets the
//! password and confirms an authenticator code on one page, so no account ever has a password
//! without a confirmed second factor. Links are random 256-bit tokens stored as SHA-256, valid
//! for [`INVITE_TTL_MS`], used once. Shared by the console and `kakehashi user invite`.

use sha2::{Digest, Sha256};
use totp_rs::Secret;

use crate::console::error::{ConsoleError, ConsoleResult};
use crate::console::users::{self, UserRow};
use crate::console::Role;
use crate::db::console_invites::{self, Enrolment, InviteRow, NewInvite};
use crate::db::console_users::{totp_context, NewUser};
use crate::db::Db;
use crate::secrets::Keyring;
use crate::signing::hmac_bytes;
use crate::util::{random_id, random_secret};

/// How long an enrolment link stays usable: 72 hours.
pub const INVITE_TTL_MS: i64 = 72 * 3600 * 1000;
/// Password length bounds: at least 12 characters; at most 256 so hashing work stays bounded.
pub const MIN_PASSWORD: usize = 12;
pub const MAX_PASSWORD: usize = 256;

/// A link just issued: the token is in `url` only and is never stored.
#[derive(Debug)]
pub struct Issued {
    pub id: String,
    pub email: String,
    pub url: String,
    pub expires_at: i64,
}

/// SHA-256 hex of a token: what the table stores. 256 random bits need no salt.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn bad(m: &str) -> ConsoleError {
    ConsoleError::Bad(m.to_owned())
}

fn sealed(keys: &Keyring, plain: &str, context: &str) -> ConsoleResult<String> {
    keys.seal_or_clear(plain, context)
        .map_err(|e| ConsoleError::Internal(e.into()))
}

/// Issues a link for a new user of `merchant_id` (none for operators) with `role`.
/// `created_by` is who asked (an e-mail, or `cli`).
#[allow(clippy::too_many_arguments)]
pub async fn invite(
    db: &Db,
    keys: &Keyring,
    public_url: &str,
    merchant_id: Option<&str>,
    email: &str,
    role: Role,
    created_by: &str,
    now: i64,
) -> ConsoleResult<Issued> {
    let email =
        users::parse_email(email).ok_or_else(|| bad("メールアドレスが正しくありません。"))?;
    if (role == Role::Operator) != merchant_id.is_none() {
        return Err(bad(
            "運用者は加盟店に属さず、管理者・一般ユーザーは加盟店に属します。",
        ));
    }
    if let Some(m) = merchant_id {
        if crate::db::merchants::get(db, m).await?.is_none() {
            return Err(bad("加盟店が見つかりません。"));
        }
    }
    if users::by_email(db, &email).await?.is_some() {
        return Err(bad("このメールアドレスのユーザーは既に存在します。"));
    }
    if console_invites::open_for_email(db, &email, now).await? {
        return Err(bad(
            "このメールアドレスには有効な招待リンクが既にあります（取り消してから再発行してください）。",
        ));
    }
    issue(
        db,
        keys,
        public_url,
        None,
        merchant_id,
        &email,
        role,
        created_by,
        now,
    )
    .await
}

/// Resets `u`'s second factor: from now on the user cannot sign in (and is signed out) until
/// they use the returned link, which sets a new password and a new TOTP secret.
pub async fn reset_totp(
    db: &Db,
    keys: &Keyring,
    public_url: &str,
    u: &UserRow,
    created_by: &str,
    now: i64,
) -> ConsoleResult<Issued> {
    issue(
        db,
        keys,
        public_url,
        Some(&u.id),
        u.merchant_id.as_deref(),
        &u.email,
        u.role,
        created_by,
        now,
    )
    .await
}

#[allow(clippy::too_many_arguments)]
async fn issue(
    db: &Db,
    keys: &Keyring,
    public_url: &str,
    user_id: Option<&str>,
    merchant_id: Option<&str>,
    email: &str,
    role: Role,
    created_by: &str,
    now: i64,
) -> ConsoleResult<Issued> {
    let id = random_id("inv", 16);
    let token = random_secret("");
    let secret = Secret::generate_secret().to_encoded().to_string();
    let stored = sealed(keys, &secret, &console_invites::totp_context(&id))?;
    let i = NewInvite {
        id: &id,
        token_hash: &token_hash(&token),
        user_id,
        merchant_id,
        email,
        role,
        totp_stored: &stored,
        created_by,
        expires_at: now + INVITE_TTL_MS,
    };
    if user_id.is_some() {
        console_invites::insert_reset(db, &i, now).await?;
    } else {
        console_invites::insert(db, &i, now).await?;
    }
    Ok(Issued {
        id,
        email: email.to_owned(),
        url: format!("{}/console/enrol/{token}", public_url.trim_end_matches('/')),
        expires_at: now + INVITE_TTL_MS,
    })
}

/// The link for `token` if it can still be used at `now` (not used, revoked or expired).
pub async fn open(db: &Db, token: &str, now: i64) -> ConsoleResult<Option<InviteRow>> {
    if token.len() > 100 {
        return Ok(None);
    }
    Ok(console_invites::by_token_hash(db, &token_hash(token))
        .await?
        .filter(|i| i.used_at.is_none() && i.revoked_at.is_none() && i.expires_at > now))
}

/// The link's TOTP secret (base32), for the enrolment page's QR code and text.
pub fn secret(keys: &Keyring, i: &InviteRow) -> ConsoleResult<String> {
    keys.reveal(&i.totp_stored, &console_invites::totp_context(&i.id))
        .map(|s| s.to_string())
        .map_err(|e| ConsoleError::Internal(e.into()))
}

/// The `otpauth://` URL authenticator apps read from the QR code.
pub fn otpauth_url(keys: &Keyring, i: &InviteRow) -> ConsoleResult<String> {
    Ok(users::totp(&secret(keys, i)?, &i.email)?.get_url())
}

/// Uses the link: checks the password (length, confirmation) and the code from the
/// authenticator (current step or one either side), then in one transaction marks the link
/// used and creates the user (or replaces the reset user's password and TOTP). Returns the
/// user's id. A code is checked before the password is hashed, so a wrong code costs no hash.
pub async fn enrol(
    db: &Db,
    keys: &Keyring,
    i: &InviteRow,
    password: &str,
    confirm: &str,
    code: &str,
    now: i64,
) -> ConsoleResult<String> {
    let n = password.chars().count();
    if !(MIN_PASSWORD..=MAX_PASSWORD).contains(&n) {
        return Err(bad("パスワードは12文字以上256文字以下にしてください。"));
    }
    if hmac_bytes(b"cmp", password.as_bytes()) != hmac_bytes(b"cmp", confirm.as_bytes()) {
        return Err(bad("確認用のパスワードが一致しません。"));
    }
    let secret = secret(keys, i)?;
    let totp = users::totp(&secret, &i.email)?;
    let step = (now / 1000) / 30;
    let code = code.trim();
    let matched = [step - 1, step, step + 1].into_iter().find(|s| {
        hmac_bytes(b"cmp", totp.generate((*s * 30) as u64).as_bytes())
            == hmac_bytes(b"cmp", code.as_bytes())
    });
    let Some(step) = matched else {
        return Err(bad(
            "確認コードが正しくありません。認証アプリに表示された6桁のコードを入力してください。",
        ));
    };
    let hash = {
        let p = password.to_owned();
        users::hashing(move || users::hash_password(&p)).await??
    };
    let user_id = i.user_id.clone().unwrap_or_else(|| random_id("usr", 16));
    let stored = sealed(keys, &secret, &totp_context(&user_id))?;
    let new = NewUser {
        id: &user_id,
        merchant_id: i.merchant_id.as_deref(),
        // Enrolment links are for operators and merchant staff; owner staff come from the CLI.
        owner_id: None,
        email: &i.email,
        role: i.role,
        password_hash: &hash,
        totp_stored: &stored,
    };
    let e = Enrolment {
        password_hash: &hash,
        totp_stored: &stored,
        step,
    };
    let new = i.user_id.is_none().then_some(&new);
    match console_invites::consume(db, &i.id, new, &e, &user_id, now).await {
        Ok(true) => Ok(user_id),
        Ok(false) => Err(ConsoleError::NotFound),
        Err(e) if crate::db::is_unique_violation(&e) => {
            Err(bad("このメールアドレスのユーザーは既に存在します。"))
        }
        Err(e) => Err(e.into()),
    }
}
