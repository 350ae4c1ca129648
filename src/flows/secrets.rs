//! Master-key rotation: every sealed value in the store is opened (with the current or a
//! previous key) and sealed again under the current key, in one transaction, so a rotation
//! either completes or changes nothing.

use std::collections::BTreeMap;

use crate::db::{processors, Db};
use crate::domain::processor::ProcessorAccount;
use crate::secrets::{Keyring, SealError};

/// Re-seals every stored secret under the current master key; returns how many values.
pub async fn reseal_all(db: &Db, keys: &Keyring) -> anyhow::Result<usize> {
    if !keys.has_current() {
        return Err(SealError::NoMasterKey.into());
    }
    let mut tx = db.begin().await?;
    let values = processors::sealed_values(&mut tx).await?;
    for (id, column, sealed) in &values {
        let ctx = ProcessorAccount::seal_context(id, column);
        let plain = keys.open(sealed, &ctx).map_err(|e| {
            anyhow::anyhow!("processor account {id} {column}: {e}; nothing was changed")
        })?;
        let resealed = keys.seal(&plain, &ctx)?;
        processors::set_sealed(&mut tx, id, column, &resealed).await?;
    }
    tx.commit().await?;
    Ok(values.len())
}

/// How many stored values each master key id seals.
pub async fn status(db: &Db) -> anyhow::Result<BTreeMap<String, usize>> {
    let mut tx = db.begin().await?;
    let values = processors::sealed_values(&mut tx).await?;
    drop(tx);
    let mut out = BTreeMap::new();
    for (_, _, sealed) in values {
        let kid = Keyring::key_id_of(&sealed).unwrap_or("unsealed").to_owned();
        *out.entry(kid).or_insert(0) += 1;
    }
    Ok(out)
}
