//! Saved cards (card on file): the processor's customer per merchant customer, and the cards
//! saved at the processor with the shopper's consent — only the processor's ids, brand, last 4
//! and expiry.

use crate::db::{Db, Tx};
use crate::util::random_id;
use crate::{exec_tx, on_db};

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct SavedCardRow {
    pub id: String,
    pub merchant_id: String,
    pub customer_ref: String,
    pub account_id: String,
    pub processor_customer: String,
    pub processor_method: String,
    pub brand: String,
    pub last4: String,
    pub exp_month: i64,
    pub exp_year: i64,
    pub created_at: i64,
}

const COLS: &str = "id, merchant_id, customer_ref, account_id, processor_customer, \
processor_method, brand, last4, exp_month, exp_year, created_at";

/// A card to save, as the processor reported it after the payment.
pub struct NewSavedCard<'a> {
    pub merchant_id: &'a str,
    pub customer_ref: &'a str,
    pub account_id: &'a str,
    pub processor_customer: &'a str,
    pub processor_method: &'a str,
    pub brand: &'a str,
    pub last4: &'a str,
    pub exp_month: i64,
    pub exp_year: i64,
}

/// A merchant customer's saved cards, newest first; `account_id` narrows to one processor
/// account (the cards a checkout can pay with).
pub async fn list(
    db: &Db,
    merchant_id: &str,
    customer_ref: &str,
    account_id: Option<&str>,
) -> Result<Vec<SavedCardRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLS} FROM saved_cards WHERE merchant_id = $1 AND customer_ref = $2 \
         AND ($3 IS NULL OR account_id = $3) ORDER BY created_at DESC, id"
    );
    on_db!(db, c => sqlx::query_as(&sql)
        .bind(merchant_id)
        .bind(customer_ref)
        .bind(account_id)
        .fetch_all(c)
        .await)
}

/// One saved card of a merchant's customer.
pub async fn get(
    db: &Db,
    merchant_id: &str,
    customer_ref: &str,
    id: &str,
) -> Result<Option<SavedCardRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLS} FROM saved_cards WHERE merchant_id = $1 AND customer_ref = $2 AND id = $3"
    );
    on_db!(db, c => sqlx::query_as(&sql)
        .bind(merchant_id)
        .bind(customer_ref)
        .bind(id)
        .fetch_optional(c)
        .await)
}

/// Saves a card in the transaction recording the payment; a card saved before (same
/// processor method) is kept as it is.
pub async fn insert(tx: &mut Tx, card: &NewSavedCard<'_>, now: i64) -> Result<(), sqlx::Error> {
    exec_tx!(tx, c => sqlx::query(
        "INSERT INTO saved_cards (id, merchant_id, customer_ref, account_id, processor_customer, \
         processor_method, brand, last4, exp_month, exp_year, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
         ON CONFLICT (account_id, processor_method) DO NOTHING",
    )
    .bind(random_id("card", 20))
    .bind(card.merchant_id)
    .bind(card.customer_ref)
    .bind(card.account_id)
    .bind(card.processor_customer)
    .bind(card.processor_method)
    .bind(card.brand)
    .bind(card.last4)
    .bind(card.exp_month)
    .bind(card.exp_year)
    .bind(now)
    .execute(c)
    .await)?;
    Ok(())
}

/// Forgets a saved card (after the processor detached it). `false` when there was none.
pub async fn delete(db: &Db, merchant_id: &str, id: &str) -> Result<bool, sqlx::Error> {
    let mut tx = db.begin().await?;
    let n = exec_tx!(&mut tx, c => sqlx::query(
        "DELETE FROM saved_cards WHERE merchant_id = $1 AND id = $2",
    )
    .bind(merchant_id)
    .bind(id)
    .execute(c)
    .await)?;
    tx.commit().await?;
    Ok(n == 1)
}

/// The processor's customer of a merchant's customer at one account, if created.
pub async fn customer(
    db: &Db,
    merchant_id: &str,
    customer_ref: &str,
    account_id: &str,
) -> Result<Option<String>, sqlx::Error> {
    on_db!(db, c => sqlx::query_scalar(
        "SELECT processor_customer FROM card_customers \
         WHERE merchant_id = $1 AND customer_ref = $2 AND account_id = $3",
    )
    .bind(merchant_id)
    .bind(customer_ref)
    .bind(account_id)
    .fetch_optional(c)
    .await)
}

/// Records the processor's customer; when another request recorded one first, that one is
/// returned (the processor call is idempotent per customer, so both are the same).
pub async fn put_customer(
    db: &Db,
    merchant_id: &str,
    customer_ref: &str,
    account_id: &str,
    processor_customer: &str,
    now: i64,
) -> Result<String, sqlx::Error> {
    let mut tx = db.begin().await?;
    exec_tx!(&mut tx, c => sqlx::query(
        "INSERT INTO card_customers (merchant_id, customer_ref, account_id, processor_customer, \
         created_at) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (merchant_id, customer_ref, account_id) DO NOTHING",
    )
    .bind(merchant_id)
    .bind(customer_ref)
    .bind(account_id)
    .bind(processor_customer)
    .bind(now)
    .execute(c)
    .await)?;
    tx.commit().await?;
    Ok(customer(db, merchant_id, customer_ref, account_id)
        .await?
        .unwrap_or_else(|| processor_customer.to_owned()))
}
