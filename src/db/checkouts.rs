//! Checkouts: one per (merchant, order id), created when a signed link is first opened.

use crate::db::merchants::MerchantRow;
use crate::db::{Db, Tx};
use crate::domain::order::OrderLink;
use crate::domain::{CheckoutStatus, Method, MethodList};
use crate::util::random_id;
use crate::{args, exec_tx, on_db, on_tx};

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct CheckoutRow {
    pub id: String,
    pub merchant_id: String,
    pub order_id: String,
    pub content_hash: String,
    pub amount: i64,
    pub item_name: String,
    pub shopper_name: Option<String>,
    pub shopper_kana: Option<String>,
    pub shopper_email: Option<String>,
    pub shopper_phone: Option<String>,
    #[sqlx(try_from = "String")]
    pub methods: MethodList,
    pub return_url: String,
    pub cancel_url: Option<String>,
    pub konbini_days: Option<i64>,
    pub lang: String,
    #[sqlx(try_from = "String")]
    pub status: CheckoutStatus,
    pub selected_method: Option<String>,
    /// The link's signed `customer_id` (saved cards).
    pub customer_ref: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

const COLS: &str = "id, merchant_id, order_id, content_hash, amount, item_name, shopper_name, \
shopper_kana, shopper_email, shopper_phone, methods, return_url, cancel_url, konbini_days, lang, \
status, selected_method, customer_ref, created_at, updated_at";

impl CheckoutRow {
    pub fn methods(&self) -> Vec<Method> {
        self.methods.0.clone()
    }
}

pub async fn get(db: &Db, id: &str) -> Result<Option<CheckoutRow>, sqlx::Error> {
    let sql = format!("SELECT {COLS} FROM checkouts WHERE id = $1");
    on_db!(db, c => sqlx::query_as(&sql).bind(id).fetch_optional(c).await)
}

/// A session's checkout and its merchant, in one query (every `/pay/…` request).
pub async fn get_with_merchant(
    db: &Db,
    id: &str,
) -> Result<Option<(CheckoutRow, Option<MerchantRow>)>, sqlx::Error> {
    let sql = format!(
        "SELECT {}, {} FROM checkouts c JOIN merchants m ON m.id = c.merchant_id WHERE c.id = $1",
        prefixed_cols(),
        crate::db::merchants::COLS
    );
    let row: Option<CheckoutAndMerchant> =
        on_db!(db, c => sqlx::query_as(&sql).bind(id).fetch_optional(c).await)?;
    match row {
        Some(r) => Ok(r.checkout.into_row()?.map(|c| (c, Some(r.merchant)))),
        None => Ok(None),
    }
}

#[derive(Debug, sqlx::FromRow)]
struct CheckoutAndMerchant {
    #[sqlx(flatten)]
    checkout: PrefixedCheckout,
    #[sqlx(flatten)]
    merchant: MerchantRow,
}

/// The checkout columns of a query that also reads its merchant, each renamed `c_<column>`
/// (the merchant's keep their names; both tables have `id`, `status`, `created_at`, …).
/// Selected from the alias `c`.
pub(crate) fn prefixed_cols() -> &'static str {
    static COLS_C: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        COLS.split(", ")
            .map(|c| format!("c.{c} AS c_{c}"))
            .collect::<Vec<_>>()
            .join(", ")
    });
    &COLS_C
}

/// A checkout read under [`prefixed_cols`]; every column NULL when a LEFT JOIN found none.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct PrefixedCheckout {
    c_id: Option<String>,
    c_merchant_id: Option<String>,
    c_order_id: Option<String>,
    c_content_hash: Option<String>,
    c_amount: Option<i64>,
    c_item_name: Option<String>,
    c_shopper_name: Option<String>,
    c_shopper_kana: Option<String>,
    c_shopper_email: Option<String>,
    c_shopper_phone: Option<String>,
    c_methods: Option<String>,
    c_return_url: Option<String>,
    c_cancel_url: Option<String>,
    c_konbini_days: Option<i64>,
    c_lang: Option<String>,
    c_status: Option<String>,
    c_selected_method: Option<String>,
    c_customer_ref: Option<String>,
    c_created_at: Option<i64>,
    c_updated_at: Option<i64>,
}

impl PrefixedCheckout {
    /// The checkout, `None` when there was none; a NULL in a NOT NULL column or an unknown
    /// status or method list is a decode error, as for [`CheckoutRow`].
    pub(crate) fn into_row(self) -> Result<Option<CheckoutRow>, sqlx::Error> {
        let Some(id) = self.c_id else {
            return Ok(None);
        };
        fn need<T>(v: Option<T>, column: &str) -> Result<T, sqlx::Error> {
            v.ok_or_else(|| sqlx::Error::ColumnDecode {
                index: column.to_owned(),
                source: "NULL in a NOT NULL column".into(),
            })
        }
        fn parse<T: TryFrom<String>>(v: Option<String>, column: &str) -> Result<T, sqlx::Error>
        where
            T::Error: std::error::Error + Send + Sync + 'static,
        {
            T::try_from(need(v, column)?).map_err(|e| sqlx::Error::ColumnDecode {
                index: column.to_owned(),
                source: Box::new(e),
            })
        }
        Ok(Some(CheckoutRow {
            id,
            merchant_id: need(self.c_merchant_id, "c_merchant_id")?,
            order_id: need(self.c_order_id, "c_order_id")?,
            content_hash: need(self.c_content_hash, "c_content_hash")?,
            amount: need(self.c_amount, "c_amount")?,
            item_name: need(self.c_item_name, "c_item_name")?,
            shopper_name: self.c_shopper_name,
            shopper_kana: self.c_shopper_kana,
            shopper_email: self.c_shopper_email,
            shopper_phone: self.c_shopper_phone,
            methods: parse(self.c_methods, "c_methods")?,
            return_url: need(self.c_return_url, "c_return_url")?,
            cancel_url: self.c_cancel_url,
            konbini_days: self.c_konbini_days,
            lang: need(self.c_lang, "c_lang")?,
            status: parse(self.c_status, "c_status")?,
            selected_method: self.c_selected_method,
            customer_ref: self.c_customer_ref,
            created_at: need(self.c_created_at, "c_created_at")?,
            updated_at: need(self.c_updated_at, "c_updated_at")?,
        }))
    }
}

/// The checkout of `(merchant, order id)`, with the SQL text for reuse on a held connection.
pub(crate) fn by_order_sql() -> String {
    format!("SELECT {COLS} FROM checkouts WHERE merchant_id = $1 AND order_id = $2")
}

pub async fn find_by_order(
    db: &Db,
    merchant_id: &str,
    order_id: &str,
) -> Result<Option<CheckoutRow>, sqlx::Error> {
    let sql = by_order_sql();
    on_db!(db, c => sqlx::query_as(&sql).bind(merchant_id).bind(order_id).fetch_optional(c).await)
}

/// Inserts the checkout for a verified link, or returns the existing one when another request
/// created it first (`ON CONFLICT DO NOTHING`, then read).
pub async fn insert_or_get(
    db: &Db,
    link: &OrderLink,
    methods: &[Method],
    now: i64,
) -> Result<CheckoutRow, sqlx::Error> {
    let id = random_id("co", 20);
    let sql = format!(
        "INSERT INTO checkouts (id, merchant_id, order_id, content_hash, amount, item_name, \
         shopper_name, shopper_kana, shopper_email, shopper_phone, methods, return_url, cancel_url, \
         konbini_days, lang, status, created_at, updated_at, customer_ref) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, 'open', $16, $17, \
         $18) \
         ON CONFLICT (merchant_id, order_id) DO NOTHING RETURNING {COLS}"
    );
    // One statement, atomic on its own: no BEGIN/COMMIT around it on PostgreSQL (two fewer
    // round trips on every first open); on SQLite one call that shares its COMMIT with the
    // writers waiting behind it. Relaxed: lost to a power cut before any durable commit, the
    // checkout is made again when the shopper next opens the link (nothing else has seen it).
    let row: Option<CheckoutRow> = db
        .relaxed_fetch(
            &sql,
            args![
                &id,
                &link.merchant_id,
                &link.order_id,
                link.content_hash(),
                link.amount,
                &link.item_name,
                &link.shopper_name,
                &link.shopper_kana,
                &link.shopper_email,
                &link.shopper_phone,
                Method::join(methods),
                &link.return_url,
                &link.cancel_url,
                link.konbini_days,
                &link.lang,
                now,
                now,
                &link.customer_id,
            ],
        )
        .await?;
    match row {
        Some(r) => Ok(r),
        None => find_by_order(db, &link.merchant_id, &link.order_id)
            .await?
            .ok_or(sqlx::Error::RowNotFound),
    }
}

/// Sets the language the checkout's pages are shown in (`ja` or `en`): the link's `lang`, else
/// the shopper's browser (Accept-Language) or their choice on the page.
pub async fn set_lang(db: &Db, id: &str, lang: &str) -> Result<(), sqlx::Error> {
    // Relaxed: a display preference the shopper sets again.
    db.relaxed_exec(
        "UPDATE checkouts SET lang = $1 WHERE id = $2",
        args![lang, id],
    )
    .await?;
    Ok(())
}

/// Records the shopper's choice of method on an open checkout. Choosing the method already
/// recorded (a double click, the back button, a reload that re-posts) writes nothing: on
/// PostgreSQL concurrent re-posts would otherwise queue on the row's lock, one commit each.
pub async fn select_method(db: &Db, id: &str, method: Method, now: i64) -> Result<(), sqlx::Error> {
    // Relaxed: lost to a power cut, the shopper chooses again; a payment that follows the
    // choice commits durably, which makes the choice durable too.
    db.relaxed_exec(
        "UPDATE checkouts SET selected_method = $1, updated_at = $2 WHERE id = $3 AND status = 'open' \
         AND (selected_method IS NULL OR selected_method <> $4)",
        args![method.code(), now, id, method.code()],
    )
    .await?;
    Ok(())
}

/// What [`expire_if_open`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Expiry {
    /// Closed now.
    Expired,
    /// It was expired already.
    AlreadyExpired,
    /// A live payment holds it.
    HasPayment,
    /// Paid, pending or cancelled.
    NotOpen(CheckoutStatus),
}

/// Expires an open checkout without a live payment, in the caller's transaction.
pub async fn expire_if_open(
    tx: &mut Tx,
    checkout_id: &str,
    now: i64,
) -> Result<Expiry, sqlx::Error> {
    let holds = crate::db::payments::HOLDS_CHECKOUT;
    let sql = format!(
        "UPDATE checkouts SET status = 'expired', updated_at = $1 WHERE id = $2 AND status = 'open' \
         AND NOT EXISTS (SELECT 1 FROM payments WHERE checkout_id = $3 AND {holds})"
    );
    let n = exec_tx!(tx, c => sqlx::query(&sql)
    .bind(now)
    .bind(checkout_id)
    .bind(checkout_id)
    .execute(c)
    .await)?;
    if n == 1 {
        return Ok(Expiry::Expired);
    }
    let sql = format!(
        "SELECT status, (SELECT COUNT(*) FROM payments WHERE checkout_id = $1 AND {holds}) \
         FROM checkouts WHERE id = $2"
    );
    let (status, live): (String, i64) = on_tx!(tx, c => sqlx::query_as(&sql)
    .bind(checkout_id)
    .bind(checkout_id)
    .fetch_one(c)
    .await)?;
    let status = CheckoutStatus::try_from(status).map_err(|e| sqlx::Error::Decode(e.into()))?;
    Ok(match status {
        CheckoutStatus::Expired => Expiry::AlreadyExpired,
        _ if live > 0 => Expiry::HasPayment,
        other => Expiry::NotOpen(other),
    })
}

/// The checkout of one monthly continuous-billing charge: a copy of the agreement's checkout
/// under its own order id (`{order_id}#{n}`), pending, for `method`. Returns its id.
pub async fn insert_charge(
    tx: &mut Tx,
    agreement: &CheckoutRow,
    order_id: &str,
    amount: i64,
    method: Method,
    now: i64,
) -> Result<String, sqlx::Error> {
    let id = random_id("co", 20);
    exec_tx!(tx, x => sqlx::query(
        "INSERT INTO checkouts (id, merchant_id, order_id, content_hash, amount, item_name, \
         methods, return_url, lang, status, selected_method, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'pending', $10, $11, $12)",
    )
    .bind(&id)
    .bind(&agreement.merchant_id)
    .bind(order_id)
    .bind(&agreement.content_hash)
    .bind(amount)
    .bind(&agreement.item_name)
    .bind(method.code())
    .bind(&agreement.return_url)
    .bind(&agreement.lang)
    .bind(method.code())
    .bind(now)
    .bind(now)
    .execute(x)
    .await)?;
    Ok(id)
}

/// The checkout of one store payment on a reusable number (`domain::repeat`): no link was
/// opened for it, so it holds only what the payment and its notifications show. Pending until
/// the payment's status is applied in the same transaction. Returns its id.
#[allow(clippy::too_many_arguments)]
pub async fn insert_repeat_payment(
    tx: &mut Tx,
    merchant_id: &str,
    repeat_id: &str,
    order_id: &str,
    amount: i64,
    item_name: &str,
    shopper_name: Option<&str>,
    now: i64,
) -> Result<String, sqlx::Error> {
    let id = random_id("co", 20);
    exec_tx!(tx, x => sqlx::query(
        "INSERT INTO checkouts (id, merchant_id, order_id, content_hash, amount, item_name, \
         shopper_name, methods, return_url, lang, status, selected_method, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, '', 'ja', 'pending', $9, $10, $11)",
    )
    .bind(&id)
    .bind(merchant_id)
    .bind(order_id)
    .bind(format!("repeat:{repeat_id}"))
    .bind(amount)
    .bind(item_name)
    .bind(shopper_name)
    .bind(Method::Konbini.code())
    .bind(Method::Konbini.code())
    .bind(now)
    .bind(now)
    .execute(x)
    .await)?;
    Ok(id)
}
