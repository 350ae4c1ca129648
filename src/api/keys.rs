//! API keys: `ak_test_…` / `ak_live_…` secrets shown once; only their SHA-256 hex is stored.

use sha2::{Digest, Sha256};

use crate::db::merchants::{self, MerchantRow};
use crate::db::Db;
use crate::domain::Mode;
use crate::util::{now_ms, random_id, random_secret};
use crate::{exec_tx, on_db};

/// SHA-256 hex of a key: what the table stores and what lookups compare. Keys carry 256 random
/// bits, so an unsalted fast hash is enough (no dictionary to attack).
pub fn key_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Creates an active key for the merchant: `(key_id, secret)`. The secret is not stored.
pub async fn create(db: &Db, merchant_id: &str) -> anyhow::Result<(String, String)> {
    let m = merchants::get(db, merchant_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no merchant {merchant_id}"))?;
    let id = random_id("key", 12);
    let secret = random_secret(match m.mode() {
        Mode::Test => "ak_test_",
        Mode::Live => "ak_live_",
    });
    let mut tx = db.begin().await?;
    exec_tx!(&mut tx, c => sqlx::query(
        "INSERT INTO api_keys (id, merchant_id, key_hash, status, created_at) VALUES ($1, $2, $3, 'active', $4)",
    )
    .bind(&id)
    .bind(merchant_id)
    .bind(key_hash(&secret))
    .bind(now_ms())
    .execute(c)
    .await)?;
    tx.commit().await?;
    Ok((id, secret))
}

/// Retires a key: requests with it get 401 from now on.
pub async fn retire(db: &Db, merchant_id: &str, key_id: &str) -> anyhow::Result<()> {
    let mut tx = db.begin().await?;
    let n = exec_tx!(&mut tx, c => sqlx::query(
        "UPDATE api_keys SET status = 'retired' WHERE merchant_id = $1 AND id = $2 AND status = 'active'",
    )
    .bind(merchant_id)
    .bind(key_id)
    .execute(c)
    .await)?;
    anyhow::ensure!(
        n == 1,
        "no active API key {key_id} for merchant {merchant_id}"
    );
    tx.commit().await?;
    Ok(())
}

/// The merchant an active key belongs to.
pub async fn authenticate(db: &Db, secret: &str) -> Result<Option<MerchantRow>, sqlx::Error> {
    let merchant_id: Option<String> = on_db!(db, c => sqlx::query_scalar(
        "SELECT merchant_id FROM api_keys WHERE key_hash = $1 AND status = 'active'",
    )
    .bind(key_hash(secret))
    .fetch_optional(c)
    .await)?;
    match merchant_id {
        Some(id) => merchants::get(db, &id).await,
        None => Ok(None),
    }
}

/// `(key_id, status, created_at)` of a merchant's keys, newest first, for listings.
pub async fn list(db: &Db, merchant_id: &str) -> Result<Vec<(String, String, i64)>, sqlx::Error> {
    on_db!(db, c => sqlx::query_as(
        "SELECT id, status, created_at FROM api_keys WHERE merchant_id = $1 ORDER BY created_at DESC, id DESC",
    )
    .bind(merchant_id)
    .fetch_all(c)
    .await)
}
