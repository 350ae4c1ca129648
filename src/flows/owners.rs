//! Owners and tenants (テナントオプション): creating owners and putting merchants under them (or
//! taking them out), shared by the console's owners page and `kakehashi owner …`. Everything is
//! checked before anything is written.

use crate::db::{merchants, owners, Db};
use crate::util::random_id;

/// Checks an owner id as typed: the merchant id rule (1–64 of `A-Z a-z 0-9 _ -`).
fn check_id(id: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        !id.is_empty()
            && id.len() <= 64
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'),
        "owner id: 1-64 of A-Z a-z 0-9 _ -"
    );
    Ok(())
}

/// Creates an owner; returns its id (`own_…` when none is given).
pub async fn create(db: &Db, name: &str, id: Option<&str>, now: i64) -> anyhow::Result<String> {
    let name = name.trim();
    anyhow::ensure!(
        !name.is_empty() && name.chars().count() <= 100,
        "name: 1-100 characters"
    );
    anyhow::ensure!(
        !name.chars().any(char::is_control),
        "name must not contain control characters"
    );
    let id = match id {
        Some(id) => {
            check_id(id)?;
            id.to_owned()
        }
        None => random_id("own", 12),
    };
    anyhow::ensure!(
        owners::get(db, &id).await?.is_none(),
        "an owner {id} already exists"
    );
    owners::insert(db, &id, name, now).await?;
    Ok(id)
}

/// Puts merchant `merchant_id` under `owner_id` (or, with `None`, makes it independent).
/// Returns the owner it had before, for the audit record.
pub async fn attach(
    db: &Db,
    merchant_id: &str,
    owner_id: Option<&str>,
) -> anyhow::Result<Option<String>> {
    let m = merchants::get(db, merchant_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no merchant {merchant_id}"))?;
    if let Some(o) = owner_id {
        anyhow::ensure!(owners::get(db, o).await?.is_some(), "no owner {o}");
    }
    anyhow::ensure!(
        m.owner_id.as_deref() != owner_id,
        "merchant {merchant_id} already has this owner"
    );
    anyhow::ensure!(
        owners::set_owner(db, merchant_id, owner_id).await?,
        "no merchant {merchant_id}"
    );
    Ok(m.owner_id)
}
