//! Console user accounts: creation (CLI and the demo admin), argon2 password hashes, TOTP.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use totp_rs::{Secret, TOTP};

use crate::console::Role;
use crate::db::console_users::{self, NewUser};
use crate::db::Db;
use crate::secrets::{Keyring, SealError};
use crate::util::random_id;
use zeroize::Zeroizing;

pub use crate::db::console_users::{totp_context, UserRow};

impl UserRow {
    pub fn role(&self) -> Role {
        self.role
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
        totp_rs::Algorithm::SHA1,
        6,
        1,
        30,
        bytes,
        Some(ISSUER.to_owned()),
        email.to_owned(),
    )
    .map_err(|e| anyhow::anyhow!("TOTP: {e}"))
}

/// Password hashes (argon2, [`MEMORY_KIB`] of memory each) that run at once, at most: one per
/// core. Every hash and verification goes through [`hashing`], so a burst of sign-in attempts
/// queues here (a few bytes each) instead of allocating the hash's memory each.
fn hashing_permits() -> &'static std::sync::Arc<tokio::sync::Semaphore> {
    static PERMITS: std::sync::OnceLock<std::sync::Arc<tokio::sync::Semaphore>> =
        std::sync::OnceLock::new();
    PERMITS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        std::sync::Arc::new(tokio::sync::Semaphore::new(cores))
    })
}

/// Runs a password hash or verification on the blocking pool, at most one per core at once.
/// The permit moves into the blocking task, so a request dropped while waiting for the hash
/// (client gone) does not let another hash start before this one ends.
pub async fn hashing<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> anyhow::Result<T> {
    let permit = hashing_permits()
        .clone()
        .acquire_owned()
        .await
        .map_err(|e| anyhow::anyhow!("hashing permits: {e}"))?;
    tokio::task::spawn_blocking(move || {
        let out = f();
        drop(permit);
        out
    })
    .await
    .map_err(|e| anyhow::anyhow!("join: {e}"))
}

/// Argon2id's memory per hash, in KiB: 7 MiB with [`PASSES`] passes and one lane, the last of
/// the configurations OWASP's Password Storage Cheat Sheet lists as an equal defence (from
/// 46 MiB × 1 and 19 MiB × 2 down to 7 MiB × 5), the one that trades memory for passes. The
/// working memory stays in the pool below for the life of the process, one buffer per hash
/// that ran at once: at 19 MiB a single sign-in kept a fifth of the console's 100 MB budget
/// resident (bench/README.md, change 33). The work per hash (memory × passes) is about the
/// same as 19 MiB × 2.
pub const MEMORY_KIB: u32 = 7 * 1024;
/// Argon2id's passes over [`MEMORY_KIB`].
pub const PASSES: u32 = 5;

fn params() -> Params {
    Params::new(MEMORY_KIB, PASSES, 1, None).expect("the constants are valid argon2 parameters")
}

/// Argon2 working memories not in use (see [`with_pooled_memory`]).
static POOL: std::sync::Mutex<Vec<Vec<Block>>> = std::sync::Mutex::new(Vec::new());

/// Runs `f` with an argon2 working memory from the pool, wiped after use and kept for the next
/// hash. Allocating it for each hash instead makes glibc keep freed buffers around: a burst of
/// sign-ins left the process hundreds of MiB larger (tests/api/hardening.rs). A buffer grown
/// by a check of an older, larger hash is cut back to the current size before it is kept.
fn with_pooled_memory<T>(f: impl FnOnce(&mut Vec<Block>) -> T) -> T {
    let take = || POOL.lock().map(|mut p| p.pop()).ok().flatten();
    let mut memory = take().unwrap_or_default();
    let out = f(&mut memory);
    memory.fill(Block::new());
    let keep = params().block_count();
    if memory.len() > keep {
        memory.truncate(keep);
        memory.shrink_to_fit();
    }
    if let Ok(mut pool) = POOL.lock() {
        pool.push(memory);
    }
    out
}

/// A new argon2id hash (PHC string) of `password` with a random salt and the current
/// parameters ([`MEMORY_KIB`], [`PASSES`]).
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    use argon2::password_hash::{Output, ParamsString};
    let salt = SaltString::generate(&mut OsRng);
    let mut salt_buf = [0u8; 64];
    let salt_bytes = salt
        .decode_b64(&mut salt_buf)
        .map_err(|e| anyhow::anyhow!("salt: {e}"))?;
    let params = params();
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    with_pooled_memory(|memory| {
        memory.resize(params.block_count(), Block::new());
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
            .hash_password_into_with_memory(
                password.as_bytes(),
                salt_bytes,
                &mut out,
                &mut memory[..],
            )
    })
    .map_err(|e| anyhow::anyhow!("argon2: {e}"))?;
    let hash = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(|e| anyhow::anyhow!("argon2: {e}"))?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out).map_err(|e| anyhow::anyhow!("argon2: {e}"))?),
    };
    Ok(hash.to_string())
}

/// Whether a stored hash was made with other than the current algorithm and parameters: a
/// successful sign-in then stores a new hash of the password it was given.
pub fn needs_rehash(hash: &str) -> bool {
    let Ok(h) = PasswordHash::new(hash) else {
        return true;
    };
    let current = params();
    let same = h.algorithm == Algorithm::Argon2id.ident()
        && h.version == Some(Version::V0x13.into())
        && Params::try_from(&h).is_ok_and(|p| {
            (p.m_cost(), p.t_cost(), p.p_cost())
                == (current.m_cost(), current.t_cost(), current.p_cost())
        });
    !same
}

/// Checks a password against a stored argon2 hash (PHC string), in constant time.
///
/// The argon2 working memory comes from a pool of buffers (one per hash running at once, so
/// at most one per core; see [`hashing`]) and is wiped after use.
pub fn verify_password(hash: &str, password: &str) -> bool {
    with_pooled_memory(|memory| verify_with_memory(hash, password, memory))
}

fn verify_with_memory(hash: &str, password: &str, memory: &mut Vec<Block>) -> bool {
    use argon2::password_hash::Output;
    let Ok(h) = PasswordHash::new(hash) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (h.salt, h.hash) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(h.algorithm) else {
        return false;
    };
    let Ok(version) = h.version.map(Version::try_from).transpose() else {
        return false;
    };
    let Ok(params) = Params::try_from(&h) else {
        return false;
    };
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    memory.resize(params.block_count(), Block::new());
    let mut out = vec![0u8; expected.len()];
    let argon = Argon2::new(algorithm, version.unwrap_or_default(), params);
    if argon
        .hash_password_into_with_memory(password.as_bytes(), salt, &mut out, &mut memory[..])
        .is_err()
    {
        return false;
    }
    // `Output`'s equality is constant-time.
    Output::new(&out).is_ok_and(|o| o == expected)
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
    now: i64,
) -> anyhow::Result<Created> {
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
    insert_new(db, keys, merchant_id, None, email, role, now).await
}

/// Creates an owner staff user (テナントオプション): admin or general of every tenant of the
/// owner, with a generated password and TOTP secret (both returned once).
pub async fn create_owner_staff(
    db: &Db,
    keys: &Keyring,
    owner_id: &str,
    email: &str,
    role: Role,
    now: i64,
) -> anyhow::Result<Created> {
    anyhow::ensure!(
        role != Role::Operator,
        "owner staff are admin or general users of the owner"
    );
    anyhow::ensure!(
        crate::db::owners::get(db, owner_id).await?.is_some(),
        "no owner {owner_id}"
    );
    insert_new(db, keys, None, Some(owner_id), email, role, now).await
}

async fn insert_new(
    db: &Db,
    keys: &Keyring,
    merchant_id: Option<&str>,
    owner_id: Option<&str>,
    email: &str,
    role: Role,
    now: i64,
) -> anyhow::Result<Created> {
    let email = parse_email(email).ok_or_else(|| anyhow::anyhow!("not an e-mail address"))?;
    // 20 characters of the unambiguous alphabet: about 100 bits.
    let password = random_id("pw", 20);
    let secret = Secret::generate_secret().to_encoded().to_string();
    let otpauth_url = totp(&secret, &email)?.get_url();
    let hash = {
        let p = password.clone();
        hashing(move || hash_password(&p)).await??
    };
    let id = random_id("usr", 16);
    let totp_stored = keys.seal_or_clear(&secret, &totp_context(&id))?;
    let r = console_users::insert(
        db,
        &NewUser {
            id: &id,
            merchant_id,
            owner_id,
            email: &email,
            role,
            password_hash: &hash,
            totp_stored: &totp_stored,
        },
        now,
    )
    .await;
    if let Err(e) = &r {
        if crate::db::is_unique_violation(e) {
            anyhow::bail!("a user {email} already exists");
        }
    }
    r?;
    Ok(Created {
        id,
        email,
        password,
        totp_secret: secret,
        otpauth_url,
    })
}

impl UserRow {
    /// The TOTP secret, opened with the master key when sealed.
    pub fn totp_secret(&self, keys: &Keyring) -> Result<Zeroizing<String>, SealError> {
        keys.reveal(&self.totp_stored, &totp_context(&self.id))
    }
}

/// The user with this e-mail (compared normalised).
pub async fn by_email(db: &Db, email: &str) -> Result<Option<UserRow>, crate::db::Error> {
    console_users::by_email(db, &email.trim().to_lowercase()).await
}

pub use crate::db::console_users::get;

/// The demo admin of `m_demo`, created together with the demo merchant on first start.
pub const DEMO_EMAIL: &str = "admin@demo.example";

pub async fn ensure_demo_admin(
    db: &Db,
    keys: &Keyring,
    now: i64,
) -> anyhow::Result<Option<Created>> {
    if by_email(db, DEMO_EMAIL).await?.is_some() {
        return Ok(None);
    }
    create(db, keys, Some("m_demo"), DEMO_EMAIL, Role::Admin, now)
        .await
        .map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_hashes_use_the_current_parameters_and_verify() {
        let h = hash_password("correct horse").unwrap();
        assert!(
            h.starts_with(&format!("$argon2id$v=19$m={MEMORY_KIB},t={PASSES},p=1$")),
            "{h}"
        );
        assert!(verify_password(&h, "correct horse"));
        assert!(!verify_password(&h, "correct horsf"));
        assert!(!needs_rehash(&h));
    }

    /// Hashes stored before the parameters changed (argon2's default, 19 MiB × 2) still verify,
    /// are marked for rehashing, and leave no buffer larger than the current size in the pool.
    #[test]
    fn older_hashes_verify_and_are_marked_for_rehash() {
        use argon2::password_hash::PasswordHasher;
        let salt = SaltString::generate(&mut OsRng);
        let old = Argon2::default()
            .hash_password(b"correct horse", &salt)
            .unwrap()
            .to_string();
        assert!(old.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{old}");
        assert!(verify_password(&old, "correct horse"));
        assert!(!verify_password(&old, "wrong"));
        assert!(needs_rehash(&old));
        assert!(needs_rehash("not a hash"));
        let keep = params().block_count();
        let pool = POOL.lock().unwrap();
        assert!(!pool.is_empty());
        for m in pool.iter() {
            assert!(m.capacity() <= keep, "{} blocks kept", m.capacity());
        }
    }
}
