//! API keys: `ak_test_…` / `ak_live_…` secrets shown once; only their SHA-256 hex is stored.

use sha2::{Digest, Sha256};

use crate::db::merchants::{self, MerchantRow};
use crate::db::{api_keys, owners, Db};
use crate::domain::Mode;
use crate::util::{random_id, random_secret};

/// SHA-256 hex of a key: what the table stores and what lookups compare. Keys carry 256 random
/// bits, so an unsalted fast hash is enough (no dictionary to attack).
pub fn key_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Creates an active key for the merchant at `now`: `(key_id, secret)`. The secret is not
/// stored.
pub async fn create(db: &Db, merchant_id: &str, now: i64) -> anyhow::Result<(String, String)> {
    let m = merchants::get(db, merchant_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no merchant {merchant_id}"))?;
    let id = random_id("key", 12);
    let secret = random_secret(match m.mode() {
        Mode::Test => "ak_test_",
        Mode::Live => "ak_live_",
    });
    api_keys::insert(db, &id, merchant_id, &key_hash(&secret), now).await?;
    Ok((id, secret))
}

/// Retires a key: requests with it get 401 from now on.
pub async fn retire(db: &Db, merchant_id: &str, key_id: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        api_keys::retire(db, merchant_id, key_id).await?,
        "no active API key {key_id} for merchant {merchant_id}"
    );
    Ok(())
}

/// Creates an active owner-level key (テナントオプション) at `now`: `(key_id, secret)`. The
/// secret (`ok_…`) is not stored. It acts for any tenant named by the `Kakehashi-Merchant`
/// header.
pub async fn create_owner_key(
    db: &Db,
    owner_id: &str,
    now: i64,
) -> anyhow::Result<(String, String)> {
    anyhow::ensure!(
        owners::get(db, owner_id).await?.is_some(),
        "no owner {owner_id}"
    );
    let id = random_id("okey", 12);
    let secret = random_secret(OWNER_KEY_PREFIX);
    owners::insert_key(db, &id, owner_id, &key_hash(&secret), now).await?;
    Ok((id, secret))
}

/// Retires an owner key: requests with it get 401 from now on.
pub async fn retire_owner_key(db: &Db, owner_id: &str, key_id: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        owners::retire_key(db, owner_id, key_id).await?,
        "no active owner API key {key_id} for owner {owner_id}"
    );
    Ok(())
}

/// How owner keys start; merchant keys start with `ak_`.
pub const OWNER_KEY_PREFIX: &str = "ok_";

/// Who an API key speaks for.
#[derive(Debug)]
pub enum Caller {
    Merchant(Box<MerchantRow>),
    /// An owner key: the tenant comes from the request.
    Owner(String),
}

/// Resolves an active key of either kind.
pub async fn authenticate_any(db: &Db, secret: &str) -> Result<Option<Caller>, crate::db::Error> {
    if secret.starts_with(OWNER_KEY_PREFIX) {
        return Ok(owners::active_key_owner(db, &key_hash(secret))
            .await?
            .map(Caller::Owner));
    }
    Ok(authenticate(db, secret)
        .await?
        .map(|m| Caller::Merchant(Box::new(m))))
}

/// The merchant an active key belongs to.
pub async fn authenticate(db: &Db, secret: &str) -> Result<Option<MerchantRow>, crate::db::Error> {
    match api_keys::active_merchant(db, &key_hash(secret)).await? {
        Some(id) => merchants::get(db, &id).await,
        None => Ok(None),
    }
}
