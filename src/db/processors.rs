//! Processor accounts (決済代行アカウント): which processor backs which of a merchant's methods,
//! with credentials sealed under the master key. Rows decode into typed values or fail loudly.

use crate::db::{Db, Tx};
use crate::domain::processor::{AccountStatus, Processor, ProcessorAccount};
use crate::domain::{Method, Mode};
use crate::util::random_id;
use crate::{exec_tx, on_db};

#[derive(sqlx::FromRow)]
struct Raw {
    id: String,
    merchant_id: String,
    processor: String,
    mode: String,
    methods: String,
    credentials: String,
    webhook_secret: Option<String>,
    fingerprint: String,
    status: String,
    created_at: i64,
}

impl TryFrom<Raw> for ProcessorAccount {
    type Error = sqlx::Error;
    fn try_from(r: Raw) -> Result<Self, sqlx::Error> {
        let bad = |what: &str, v: &str| {
            sqlx::Error::Decode(format!("processor_accounts {}: bad {what} {v:?}", r.id).into())
        };
        Ok(ProcessorAccount {
            processor: Processor::parse(&r.processor)
                .ok_or_else(|| bad("processor", &r.processor))?,
            mode: Mode::parse(&r.mode).ok_or_else(|| bad("mode", &r.mode))?,
            methods: Method::parse_list(&r.methods).ok_or_else(|| bad("methods", &r.methods))?,
            status: AccountStatus::parse(&r.status).ok_or_else(|| bad("status", &r.status))?,
            id: r.id,
            merchant_id: r.merchant_id,
            credentials: r.credentials,
            webhook_secret: r.webhook_secret,
            fingerprint: r.fingerprint,
            created_at: r.created_at,
        })
    }
}

const COLS: &str = "id, merchant_id, processor, mode, methods, credentials, webhook_secret, \
fingerprint, status, created_at";

fn decode(rows: Vec<Raw>) -> Result<Vec<ProcessorAccount>, sqlx::Error> {
    rows.into_iter().map(ProcessorAccount::try_from).collect()
}

/// A new account; the caller seals the secrets with [`ProcessorAccount::seal_context`].
pub struct NewAccount<'a> {
    pub id: &'a str,
    pub merchant_id: &'a str,
    pub processor: Processor,
    pub mode: Mode,
    pub methods: &'a [Method],
    pub credentials: &'a str,
    pub webhook_secret: Option<&'a str>,
    pub fingerprint: &'a str,
}

/// A fresh account id (the seal context includes it, so it is chosen before sealing).
pub fn new_id() -> String {
    random_id("pa", 16)
}

pub async fn insert(tx: &mut Tx, a: &NewAccount<'_>, now: i64) -> Result<(), sqlx::Error> {
    exec_tx!(tx, c => sqlx::query(
        "INSERT INTO processor_accounts (id, merchant_id, processor, mode, methods, credentials, \
         webhook_secret, fingerprint, status, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'active', $9, $10)",
    )
    .bind(a.id)
    .bind(a.merchant_id)
    .bind(a.processor.code())
    .bind(a.mode.as_str())
    .bind(Method::join(a.methods))
    .bind(a.credentials)
    .bind(a.webhook_secret)
    .bind(a.fingerprint)
    .bind(now)
    .bind(now)
    .execute(c)
    .await)?;
    exec_tx!(tx, c => sqlx::query(
        "UPDATE merchants SET processor_accounts = processor_accounts + 1 WHERE id = $1",
    )
    .bind(a.merchant_id)
    .execute(c)
    .await)?;
    Ok(())
}

/// Every account of a merchant (active first, newest first).
pub async fn for_merchant(
    db: &Db,
    merchant_id: &str,
) -> Result<Vec<ProcessorAccount>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLS} FROM processor_accounts WHERE merchant_id = $1 \
         ORDER BY CASE status WHEN 'active' THEN 0 ELSE 1 END, created_at DESC, id DESC"
    );
    let rows: Vec<Raw> =
        on_db!(db, c => sqlx::query_as(&sql).bind(merchant_id).fetch_all(c).await)?;
    decode(rows)
}

pub async fn get(db: &Db, id: &str) -> Result<Option<ProcessorAccount>, sqlx::Error> {
    let sql = format!("SELECT {COLS} FROM processor_accounts WHERE id = $1");
    let row: Option<Raw> = on_db!(db, c => sqlx::query_as(&sql).bind(id).fetch_optional(c).await)?;
    row.map(ProcessorAccount::try_from).transpose()
}

/// Retires an active account of the merchant; `false` if there was none to retire.
pub async fn retire(
    tx: &mut Tx,
    merchant_id: &str,
    id: &str,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let n = exec_tx!(tx, c => sqlx::query(
        "UPDATE processor_accounts SET status = 'retired', updated_at = $1 \
         WHERE id = $2 AND merchant_id = $3 AND status = 'active'",
    )
    .bind(now)
    .bind(id)
    .bind(merchant_id)
    .execute(c)
    .await)?;
    Ok(n == 1)
}
