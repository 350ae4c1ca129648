//! Master-key rotation: every stored secret that is read back (signing keys, webhook and TOTP
//! secrets, the server secret, processor credentials) is opened with the current or a previous
//! key — or read in clear if it was stored before any master key was set — and sealed again
//! under the current key, in one transaction, so a rotation either completes or changes nothing.

use std::collections::BTreeMap;

use crate::db::{sealed, Db};
use crate::secrets::{Keyring, SealError};

/// Seals every stored secret under the current master key; returns how many values.
pub async fn reseal_all(db: &Db, keys: &Keyring) -> anyhow::Result<usize> {
    if !keys.has_current() {
        return Err(SealError::NoMasterKey.into());
    }
    let mut tx = db.begin().await?;
    let values = sealed::all(&mut tx).await?;
    for v in &values {
        let ctx = v.column.context(&v.id);
        let plain = keys
            .reveal(&v.value, &ctx)
            .map_err(|e| anyhow::anyhow!("{:?} {}: {e}; nothing was changed", v.column, v.id))?;
        sealed::set(&mut tx, v, &keys.seal(&plain, &ctx)?).await?;
    }
    tx.commit().await?;
    Ok(values.len())
}

/// How many stored secrets each master key id seals (`clear` for values not sealed yet).
pub async fn status(db: &Db) -> anyhow::Result<BTreeMap<String, usize>> {
    let mut tx = db.begin().await?;
    let values = sealed::all(&mut tx).await?;
    drop(tx);
    let mut out = BTreeMap::new();
    for v in values {
        let kid = Keyring::key_id_of(&v.value).unwrap_or("clear").to_owned();
        *out.entry(kid).or_insert(0) += 1;
    }
    Ok(out)
}
