//! API keys: `ak_test_…` / `ak_live_…` secrets shown once; only their SHA-256 hex is stored.

use sha2::{Digest, Sha256};

use crate::db::merchants::{self, MerchantRow};
use crate::db::{api_keys, Db};
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

/// The merchant an active key belongs to.
pub async fn authenticate(db: &Db, secret: &str) -> Result<Option<MerchantRow>, crate::db::Error> {
    match api_keys::active_merchant(db, &key_hash(secret)).await? {
        Some(id) => merchants::get(db, &id).await,
        None => Ok(None),
    }
}
