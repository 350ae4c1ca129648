//! Merchants and their signing keys.

use crate::db::checkouts::CheckoutRow;
use crate::db::Db;
use crate::domain::wallet::Brands;
use crate::domain::{
    CallbackStatus, CaptureMode, MerchantStatus, Method, MethodList, Mode, NotifyFormat,
};
use crate::secrets::{Keyring, SealError};
use crate::util::{random_id, random_secret};
use crate::{exec_tx, on_db, on_tx};

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct MerchantRow {
    pub id: String,
    pub name: String,
    #[sqlx(try_from = "String")]
    pub mode: Mode,
    #[sqlx(try_from = "String")]
    pub status: MerchantStatus,
    #[sqlx(try_from = "String")]
    pub methods: MethodList,
    pub konbini_chains: String,
    pub return_origins: String,
    pub callback_url: Option<String>,
    pub webhook_secrets: String,
    #[sqlx(try_from = "String")]
    pub notify_format: NotifyFormat,
    #[sqlx(try_from = "String")]
    pub callback_status: CallbackStatus,
    pub theme: String,
    pub konbini_days: i64,
    #[sqlx(try_from = "String")]
    pub capture_mode: CaptureMode,
    pub card_options: String,
    /// The wallet brands offered (`all` by default).
    #[sqlx(try_from = "String")]
    pub wallet_brands: Brands,
    /// Saved cards are paid only with their security code re-entered (0: not asked).
    pub saved_card_cvc: i64,
    pub created_at: i64,
    /// Processor accounts the merchant has ever had (0: no account lookup needed).
    pub processor_accounts: i64,
    /// The owner holding this tenant (テナントオプション); `None` for an independent merchant.
    pub owner_id: Option<String>,
}

pub(crate) const COLS: &str =
    "m.id, m.name, m.mode, m.status, m.methods, m.konbini_chains, m.return_origins, \
m.callback_url, m.webhook_secrets, m.notify_format, m.callback_status, m.theme, m.konbini_days, m.capture_mode, m.card_options, m.wallet_brands, m.saved_card_cvc, m.created_at, m.processor_accounts, m.owner_id";

impl MerchantRow {
    /// Webhook secrets, newest first (opened with the master key when sealed).
    pub fn webhook_secrets(&self, keys: &Keyring) -> Result<Vec<String>, SealError> {
        let list = keys.reveal(&self.webhook_secrets, &webhook_context(&self.id))?;
        Ok(list.split_whitespace().map(str::to_owned).collect())
    }
    pub fn mode(&self) -> Mode {
        self.mode
    }
    /// Whether a shopper paying with a saved card re-enters its security code (CVC).
    pub fn saved_card_cvc(&self) -> bool {
        self.saved_card_cvc != 0
    }
    pub fn methods(&self) -> Vec<Method> {
        self.methods.0.clone()
    }
    pub fn origins(&self) -> Vec<String> {
        self.return_origins
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    }
    pub fn chains(&self) -> Vec<String> {
        self.konbini_chains
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

/// Why a link's merchant and key were not found.
#[derive(Debug, thiserror::Error)]
pub enum KeyLookupError {
    #[error("unknown merchant")]
    UnknownMerchant,
    #[error("unknown or retired signing key")]
    UnknownKey,
    #[error("signing key {0} cannot be opened: {1}")]
    Sealed(String, SealError),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// [`link_lookup`]'s row: key, merchant and the order's checkout.
#[derive(Debug, sqlx::FromRow)]
struct LinkRow {
    key_secret: Option<String>,
    #[sqlx(flatten)]
    merchant: MerchantRow,
    #[sqlx(flatten)]
    checkout: crate::db::checkouts::PrefixedCheckout,
}

/// A merchant's signing key together with its merchant, as the link check needs both.
#[derive(Debug, sqlx::FromRow)]
pub struct KeyAndMerchant {
    pub key_secret: Option<String>,
    #[sqlx(flatten)]
    pub merchant: MerchantRow,
}

/// Finds the merchant and the active key named by a link, and the checkout already opened for
/// the link's order if any, in one query: opening a link reads nothing else.
/// `Err(UnknownMerchant)` if no such merchant, `Err(UnknownKey)` if the key is not active.
/// The caller verifies the link's signature before using the checkout.
pub async fn link_lookup(
    db: &Db,
    keys: &Keyring,
    merchant_id: &str,
    key_id: &str,
    order_id: &str,
) -> Result<(MerchantRow, String, Option<CheckoutRow>), KeyLookupError> {
    // One query: the merchant, its key and the order's checkout (if any) come back in one
    // row, one round trip to PostgreSQL and one hop to SQLite's connection thread.
    let sql = format!(
        "SELECT k.secret AS key_secret, {COLS}, {} FROM merchants m \
         LEFT JOIN signing_keys k ON k.merchant_id = m.id AND k.id = $1 AND k.status = 'active' \
         LEFT JOIN checkouts c ON c.merchant_id = m.id AND c.order_id = $3 \
         WHERE m.id = $2",
        crate::db::checkouts::prefixed_cols()
    );
    let found: Option<LinkRow> = on_db!(db, c => sqlx::query_as(&sql)
        .bind(key_id)
        .bind(merchant_id)
        .bind(order_id)
        .fetch_optional(c)
        .await)?;
    let found = found.ok_or(KeyLookupError::UnknownMerchant)?;
    let stored = found.key_secret.ok_or(KeyLookupError::UnknownKey)?;
    let secret = keys
        .reveal(&stored, &signing_key_context(key_id))
        .map_err(|e| KeyLookupError::Sealed(key_id.to_owned(), e))?;
    let checkout = found.checkout.into_row()?;
    Ok((found.merchant, secret.to_string(), checkout))
}

/// Finds the merchant and the active key named by a link, in one query.
/// `Err(UnknownMerchant)` if no such merchant, `Err(UnknownKey)` if the key is not active.
pub async fn merchant_with_key(
    db: &Db,
    keys: &Keyring,
    merchant_id: &str,
    key_id: &str,
) -> Result<(MerchantRow, String), KeyLookupError> {
    let sql = format!(
        "SELECT k.secret AS key_secret, {COLS} FROM merchants m \
         LEFT JOIN signing_keys k ON k.merchant_id = m.id AND k.id = $1 AND k.status = 'active' \
         WHERE m.id = $2"
    );
    let row: Option<KeyAndMerchant> = on_db!(db, c => sqlx::query_as(&sql)
        .bind(key_id)
        .bind(merchant_id)
        .fetch_optional(c)
        .await)?;
    let row = row.ok_or(KeyLookupError::UnknownMerchant)?;
    let stored = row.key_secret.ok_or(KeyLookupError::UnknownKey)?;
    let secret = keys
        .reveal(&stored, &signing_key_context(key_id))
        .map_err(|e| KeyLookupError::Sealed(key_id.to_owned(), e))?;
    Ok((row.merchant, secret.to_string()))
}

/// The SQL of [`get`], for reuse on a connection already held.
pub(crate) fn get_sql() -> String {
    format!("SELECT {COLS} FROM merchants m WHERE m.id = $1")
}

pub async fn get(db: &Db, id: &str) -> Result<Option<MerchantRow>, sqlx::Error> {
    let sql = get_sql();
    on_db!(db, c => sqlx::query_as(&sql).bind(id).fetch_optional(c).await)
}

pub async fn list(db: &Db) -> Result<Vec<MerchantRow>, sqlx::Error> {
    let sql = format!("SELECT {COLS} FROM merchants m ORDER BY m.created_at, m.id");
    on_db!(db, c => sqlx::query_as(&sql).fetch_all(c).await)
}

/// Settings for a new merchant.
#[derive(Clone, Debug)]
pub struct NewMerchant {
    pub id: Option<String>,
    pub name: String,
    pub mode: Mode,
    pub methods: Vec<Method>,
    pub konbini_chains: Vec<String>,
    pub return_origins: Vec<String>,
    pub callback_url: Option<String>,
    pub notify_format: String,
    pub theme: String,
    pub konbini_days: i64,
    pub capture_mode: String,
    pub card_options: String,
}

/// A signing key as shown once at creation.
#[derive(Clone, Debug)]
pub struct NewKey {
    pub key_id: String,
    pub secret: String,
}

/// The seal context of a signing key's secret.
pub fn signing_key_context(key_id: &str) -> String {
    format!("signing_keys:{key_id}:secret")
}

/// The seal context of a merchant's webhook secrets.
pub fn webhook_context(merchant_id: &str) -> String {
    format!("merchants:{merchant_id}:webhook_secrets")
}

/// Creates a merchant and its first signing key. Secrets are sealed when a master key is
/// configured.
pub async fn create(
    db: &Db,
    keys: &Keyring,
    m: &NewMerchant,
    now: i64,
) -> anyhow::Result<(String, NewKey)> {
    let id = m.id.clone().unwrap_or_else(|| random_id("m", 12));
    let mut tx = db.begin().await?;
    exec_tx!(&mut tx, c => sqlx::query(
        "INSERT INTO merchants (id, name, mode, methods, konbini_chains, return_origins, \
         callback_url, webhook_secrets, notify_format, theme, konbini_days, capture_mode, \
         card_options, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
    )
    .bind(&id)
    .bind(&m.name)
    .bind(m.mode.as_str())
    .bind(Method::join(&m.methods))
    .bind(m.konbini_chains.join(","))
    .bind(m.return_origins.join(" "))
    .bind(&m.callback_url)
    .bind(keys.seal_or_clear(&crate::secrets::new_webhook_secret(), &webhook_context(&id))?)
    .bind(&m.notify_format)
    .bind(&m.theme)
    .bind(m.konbini_days)
    .bind(&m.capture_mode)
    .bind(&m.card_options)
    .bind(now)
    .execute(c)
    .await)?;
    let key = insert_key(&mut tx, keys, &id, m.mode, now).await?;
    tx.commit().await?;
    Ok((id, key))
}

async fn insert_key(
    tx: &mut crate::db::Tx,
    keys: &Keyring,
    merchant_id: &str,
    mode: Mode,
    now: i64,
) -> anyhow::Result<NewKey> {
    let key = NewKey {
        key_id: random_id("k", 10),
        secret: random_secret(match mode {
            Mode::Test => "sk_test_",
            Mode::Live => "sk_live_",
        }),
    };
    exec_tx!(tx, c => sqlx::query(
        "INSERT INTO signing_keys (id, merchant_id, secret, status, created_at) VALUES ($1, $2, $3, 'active', $4)",
    )
    .bind(&key.key_id)
    .bind(merchant_id)
    .bind(keys.seal_or_clear(&key.secret, &signing_key_context(&key.key_id))?)
    .bind(now)
    .execute(c)
    .await)?;
    Ok(key)
}

/// Adds a new active key. At most two keys are active: the newest old one stays valid until
/// retired, so carts can switch without downtime; older ones are retired now.
pub async fn rotate_key(
    db: &Db,
    keys: &Keyring,
    merchant_id: &str,
    now: i64,
) -> anyhow::Result<NewKey> {
    let m = get(db, merchant_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no merchant {merchant_id}"))?;
    let mut tx = db.begin().await?;
    // Keep only the newest active key besides the one being added.
    exec_tx!(&mut tx, c => sqlx::query(
        "UPDATE signing_keys SET status = 'retired' WHERE merchant_id = $1 AND status = 'active' \
         AND id NOT IN (SELECT id FROM signing_keys WHERE merchant_id = $2 AND status = 'active' \
         ORDER BY created_at DESC, id DESC LIMIT 1)",
    )
    .bind(merchant_id)
    .bind(merchant_id)
    .execute(c)
    .await)?;
    let key = insert_key(&mut tx, keys, merchant_id, m.mode(), now).await?;
    tx.commit().await?;
    Ok(key)
}

pub async fn retire_key(db: &Db, merchant_id: &str, key_id: &str) -> anyhow::Result<()> {
    let mut tx = db.begin().await?;
    let active: i64 = on_tx!(&mut tx, c => sqlx::query_scalar(
        "SELECT COUNT(*) FROM signing_keys WHERE merchant_id = $1 AND status = 'active'",
    )
    .bind(merchant_id)
    .fetch_one(c)
    .await)?;
    let done = exec_tx!(&mut tx, c => sqlx::query(
        "UPDATE signing_keys SET status = 'retired' WHERE merchant_id = $1 AND id = $2 AND status = 'active'",
    )
    .bind(merchant_id)
    .bind(key_id)
    .execute(c)
    .await)?;
    if done == 0 {
        anyhow::bail!("no active key {key_id} for merchant {merchant_id}");
    }
    if active <= 1 {
        anyhow::bail!("{key_id} is the merchant's only active key; rotate first");
    }
    tx.commit().await?;
    Ok(())
}

/// Active key ids (newest first) without secrets, for listings.
pub async fn active_key_ids(db: &Db, merchant_id: &str) -> Result<Vec<String>, sqlx::Error> {
    on_db!(db, c => sqlx::query_scalar(
        "SELECT id FROM signing_keys WHERE merchant_id = $1 AND status = 'active' ORDER BY created_at DESC, id DESC",
    )
    .bind(merchant_id)
    .fetch_all(c)
    .await)
}

/// The newest active key with its secret: the server signs demo links with it.
pub async fn newest_key(
    db: &Db,
    keys: &Keyring,
    merchant_id: &str,
) -> anyhow::Result<Option<(String, String)>> {
    let row: Option<(String, String)> = on_db!(db, c => sqlx::query_as(
        "SELECT id, secret FROM signing_keys WHERE merchant_id = $1 AND status = 'active' ORDER BY created_at DESC, id DESC LIMIT 1",
    )
    .bind(merchant_id)
    .fetch_optional(c)
    .await)?;
    row.map(|(id, stored)| {
        let secret = keys.reveal(&stored, &signing_key_context(&id))?;
        Ok((id, secret.to_string()))
    })
    .transpose()
}

/// Sets a merchant's mode. Callers check the go-live rules first
/// (`flows::processors::set_mode`).
pub async fn set_mode(db: &Db, merchant_id: &str, mode: Mode) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    exec_tx!(&mut tx, c => sqlx::query("UPDATE merchants SET mode = $1 WHERE id = $2")
        .bind(mode.as_str())
        .bind(merchant_id)
        .execute(c)
        .await)?;
    tx.commit().await
}

/// Updates one setting column. `column` comes from a fixed list in the CLI, never from input.
pub async fn set_field(
    db: &Db,
    merchant_id: &str,
    column: &'static str,
    value: &str,
) -> anyhow::Result<()> {
    // `mode` is not here: it changes only through `set_mode`, after the live-mode checks.
    const ALLOWED: [&str; 13] = [
        "name",
        "status",
        "methods",
        "konbini_chains",
        "return_origins",
        "callback_url",
        "theme",
        "capture_mode",
        "card_options",
        "konbini_days",
        "notify_format",
        "callback_status",
        "webhook_secrets",
    ];
    anyhow::ensure!(ALLOWED.contains(&column), "unknown setting {column}");
    let sql = if column == "konbini_days" {
        format!("UPDATE merchants SET {column} = CAST($1 AS BIGINT) WHERE id = $2")
    } else {
        format!("UPDATE merchants SET {column} = $1 WHERE id = $2")
    };
    let mut tx = db.begin().await?;
    let r =
        exec_tx!(&mut tx, c => sqlx::query(&sql).bind(value).bind(merchant_id).execute(c).await)?;
    anyhow::ensure!(r == 1, "no merchant {merchant_id}");
    tx.commit().await?;
    Ok(())
}

/// Prepends a new webhook secret and keeps the previous one, so both sign during rotation.
pub async fn rotate_webhook_secret(
    db: &Db,
    keys: &Keyring,
    merchant_id: &str,
) -> anyhow::Result<String> {
    let m = get(db, merchant_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no merchant {merchant_id}"))?;
    let stored = next_webhook_secrets(keys, &m)?;
    set_field(db, merchant_id, "webhook_secrets", &stored.1).await?;
    Ok(stored.0)
}

/// A new webhook secret and the stored value of the list it heads (the new secret and the
/// previous newest, sealed when a master key is configured).
pub fn next_webhook_secrets(keys: &Keyring, m: &MerchantRow) -> anyhow::Result<(String, String)> {
    let secret = crate::secrets::new_webhook_secret();
    let mut list = vec![secret.clone()];
    list.extend(m.webhook_secrets(keys)?.into_iter().take(1));
    let stored = keys.seal_or_clear(&list.join(" "), &webhook_context(&m.id))?;
    Ok((secret, stored))
}

/// Whether the merchant offers 継続課金 (merchants.carrier_continuous).
pub async fn continuous_enabled(db: &Db, merchant_id: &str) -> Result<bool, sqlx::Error> {
    let v: Option<i64> = on_db!(db, c => sqlx::query_scalar(
        "SELECT carrier_continuous FROM merchants WHERE id = $1",
    )
    .bind(merchant_id)
    .fetch_optional(c)
    .await)?;
    Ok(v.unwrap_or(0) != 0)
}

/// Turns 継続課金 on or off for a merchant (CLI `merchant set --carrier-continuous`).
pub async fn set_continuous(db: &Db, merchant_id: &str, on: bool) -> anyhow::Result<()> {
    let mut tx = db.begin().await?;
    let n = exec_tx!(&mut tx, c => sqlx::query(
        "UPDATE merchants SET carrier_continuous = $1 WHERE id = $2",
    )
    .bind(i64::from(on))
    .bind(merchant_id)
    .execute(c)
    .await)?;
    anyhow::ensure!(n == 1, "no merchant {merchant_id}");
    tx.commit().await?;
    Ok(())
}

/// Turns CVC re-entry for saved cards on or off (`merchant set --saved-card-cvc`, console).
pub async fn set_saved_card_cvc(db: &Db, merchant_id: &str, on: bool) -> anyhow::Result<()> {
    let mut tx = db.begin().await?;
    let n = exec_tx!(&mut tx, c => sqlx::query(
        "UPDATE merchants SET saved_card_cvc = $1 WHERE id = $2",
    )
    .bind(i64::from(on))
    .bind(merchant_id)
    .execute(c)
    .await)?;
    anyhow::ensure!(n == 1, "no merchant {merchant_id}");
    tx.commit().await?;
    Ok(())
}

/// The sandbox auto-pay delay of a merchant (None = off).
pub async fn autopay_seconds(db: &Db, merchant_id: &str) -> Result<Option<i64>, sqlx::Error> {
    let v: Option<Option<i64>> = on_db!(db, c => sqlx::query_scalar(
        "SELECT sandbox_autopay_seconds FROM merchants WHERE id = $1",
    )
    .bind(merchant_id)
    .fetch_optional(c)
    .await)?;
    Ok(v.flatten())
}

/// Sets (or with None, turns off) a merchant's sandbox auto-pay delay.
pub async fn set_autopay_seconds(
    db: &Db,
    merchant_id: &str,
    seconds: Option<i64>,
) -> anyhow::Result<()> {
    if let Some(s) = seconds {
        anyhow::ensure!(s >= 0, "sandbox-autopay-seconds must be 0 or more");
    }
    let mut tx = db.begin().await?;
    let n = exec_tx!(&mut tx, c => sqlx::query(
        "UPDATE merchants SET sandbox_autopay_seconds = $1 WHERE id = $2",
    )
    .bind(seconds)
    .bind(merchant_id)
    .execute(c)
    .await)?;
    anyhow::ensure!(n == 1, "no merchant {merchant_id}");
    tx.commit().await?;
    Ok(())
}

/// The merchant's SMS template (`None`: no merchant, or the default template).
pub async fn sms_template(db: &Db, merchant_id: &str) -> Result<Option<String>, sqlx::Error> {
    on_db!(db, c => sqlx::query_scalar(
        "SELECT sms_template FROM merchants WHERE id = $1",
    )
    .bind(merchant_id)
    .fetch_optional(c)
    .await)
    .map(Option::flatten)
}

/// Sets the SMS template; false when there is no such merchant.
pub async fn set_sms_template(
    db: &Db,
    merchant_id: &str,
    template: &str,
) -> Result<bool, sqlx::Error> {
    let mut tx = db.begin().await?;
    let n = exec_tx!(&mut tx, c => sqlx::query("UPDATE merchants SET sms_template = $1 WHERE id = $2")
        .bind(template)
        .bind(merchant_id)
        .execute(c)
        .await)?;
    tx.commit().await?;
    Ok(n == 1)
}

/// The settings a merchant's admin changes in the console, already validated.
pub struct ConsoleSettings<'a> {
    pub callback_url: Option<&'a str>,
    pub return_origins: &'a [String],
    pub methods: &'a [Method],
    pub konbini_chains: &'a [String],
    pub wallet_brands: &'a Brands,
    pub konbini_days: i64,
    pub capture_mode: CaptureMode,
    pub saved_card_cvc: bool,
    pub theme: &'a str,
}

/// Stores console settings in one statement.
pub async fn set_console_settings(
    db: &Db,
    merchant_id: &str,
    u: &ConsoleSettings<'_>,
) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    exec_tx!(&mut tx, c => sqlx::query(
        "UPDATE merchants SET callback_url = $1, return_origins = $2, methods = $3, konbini_chains = $4, \
         konbini_days = $5, capture_mode = $6, theme = $7, saved_card_cvc = $8, wallet_brands = $10 WHERE id = $9",
    )
    .bind(u.callback_url)
    .bind(u.return_origins.join(" "))
    .bind(Method::join(u.methods))
    .bind(u.konbini_chains.join(","))
    .bind(u.konbini_days)
    .bind(u.capture_mode.code())
    .bind(u.theme)
    .bind(i64::from(u.saved_card_cvc))
    .bind(merchant_id)
    .bind(u.wallet_brands.code())
    .execute(c)
    .await)?;
    tx.commit().await
}

/// Replaces the stored webhook secrets, only if they are still `old` (so two concurrent
/// rotations cannot drop a live secret). False when they changed meanwhile.
pub async fn replace_webhook_secrets(
    db: &Db,
    merchant_id: &str,
    old: &str,
    new: &str,
) -> Result<bool, sqlx::Error> {
    let mut tx = db.begin().await?;
    let n = exec_tx!(&mut tx, c => sqlx::query(
        "UPDATE merchants SET webhook_secrets = $1 WHERE id = $2 AND webhook_secrets = $3",
    )
    .bind(new)
    .bind(merchant_id)
    .bind(old)
    .execute(c)
    .await)?;
    if n != 1 {
        return Ok(false);
    }
    tx.commit().await?;
    Ok(true)
}
