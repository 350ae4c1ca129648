//! Payments: creation and state changes. Every change writes, in one transaction, the new state,
//! an append-only event row, the merchant notification (outbox) row and the shopper messages
//! the change calls for (`db::messages`).

use serde_json::{json, Value};

pub use crate::db::payment_row::{PaymentRow, StoredPayment};
use crate::db::{Db, Tx};
use crate::domain::payment::PaymentStatus;
use crate::domain::processor::ConnectorId;
use crate::domain::scope::Scope;
use crate::domain::{CheckoutStatus, Method};
use crate::util::random_id;
use crate::{args, exec_tx, on_db, on_tx};

/// The SQL predicate of a payment that holds its checkout: the `payments_one_live` unique
/// index's (migrations/*/0030_bank_transfer.sql) and `PaymentStatus::holds_checkout`'s, which a unit
/// test keeps in step. Every query that asks "does a live payment exist" uses this text.
pub const HOLDS_CHECKOUT: &str = "status NOT IN ('failed', 'declined', 'timed_out', 'issue_failed') \
AND NOT (status = 'cancelled' AND method IN ('docomo', 'au', 'softbank', 'konbini', 'payeasy', 'bank_transfer'))";

pub const COLS: &str =
    "id, merchant_id, checkout_id, order_id, method, institution, status, amount, \
captured_amount, refunded_amount, fee, deadline_at, paid_at, connector_ref, details, attempts, \
created_at, updated_at, connector";

/// What a new payment starts as.
pub struct NewPayment<'a> {
    pub merchant_id: &'a str,
    pub checkout_id: &'a str,
    pub order_id: &'a str,
    pub method: Method,
    pub institution: Option<&'a str>,
    pub status: PaymentStatus,
    pub amount: i64,
    pub fee: i64,
    pub deadline_at: Option<i64>,
    pub details: Value,
    /// The connector chosen from the registry for this payment.
    pub connector: &'a ConnectorId,
}

#[derive(Debug, thiserror::Error)]
pub enum PaymentError {
    /// The checkout already has a live payment (double submission, or paid already).
    #[error("checkout already has a live payment")]
    AlreadyLive,
    /// The payment was not in the state the change started from (a concurrent change won).
    #[error("payment changed concurrently")]
    Conflict,
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Inserts a payment and its `created` event. Fails with `AlreadyLive` when the checkout has a
/// live payment: the unique partial index is the double-submit guard, across instances too.
pub async fn create(
    tx: &mut Tx,
    p: &NewPayment<'_>,
    actor: &str,
    now: i64,
) -> Result<PaymentRow, PaymentError> {
    create_with_id(tx, &new_id(), p, actor, now).await
}

/// A fresh payment id (決済ID).
pub fn new_id() -> String {
    random_id("pay", 20)
}

/// [`create`] under an id allocated earlier with [`new_id`]: a flow that must call a processor
/// before writing anything (so no transaction waits on the network) sends this id as the
/// idempotency key first.
pub async fn create_with_id(
    tx: &mut Tx,
    id: &str,
    p: &NewPayment<'_>,
    actor: &str,
    now: i64,
) -> Result<PaymentRow, PaymentError> {
    let sql = format!(
        "INSERT INTO payments (id, merchant_id, checkout_id, order_id, method, institution, status, \
         amount, fee, deadline_at, details, created_at, updated_at, connector) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING {COLS}"
    );
    let row: Result<PaymentRow, sqlx::Error> = tx
        .fetch_optional(
            &sql,
            args![
                id,
                p.merchant_id,
                p.checkout_id,
                p.order_id,
                p.method.code(),
                p.institution,
                p.status.code(),
                p.amount,
                p.fee,
                p.deadline_at,
                p.details.to_string(),
                now,
                now,
                p.connector.as_str()
            ],
        )
        .await
        .and_then(|r| r.ok_or(sqlx::Error::RowNotFound));
    let mut row = row.map_err(|e| {
        if crate::db::is_unique_violation(&e) {
            PaymentError::AlreadyLive
        } else {
            PaymentError::Db(e)
        }
    })?;
    if let Some(fee) = crate::db::settlements::on_payment_change(tx, None, &row, now).await? {
        set_fee(tx, &mut row, fee).await?;
    }
    insert_event(
        tx,
        &row.id,
        "payment.created",
        None,
        p.status.code(),
        Some(p.amount),
        &json!({}),
        actor,
        now,
    )
    .await?;
    Ok(row)
}

/// A state change to apply.
pub struct Change<'a> {
    pub to_status: PaymentStatus,
    /// Notification / event type, e.g. `payment.captured`, `konbini.paid`.
    pub event: &'a str,
    pub amount: Option<i64>,
    pub captured_amount: Option<i64>,
    pub refunded_amount: Option<i64>,
    pub paid_at: Option<i64>,
    pub connector_ref: Option<&'a str>,
    /// Replaces the stored method details when given.
    pub details: Option<Value>,
    pub data: Value,
    pub actor: &'a str,
}

impl<'a> Change<'a> {
    pub fn new(to_status: impl Into<PaymentStatus>, event: &'a str, actor: &'a str) -> Self {
        Change {
            to_status: to_status.into(),
            event,
            amount: None,
            captured_amount: None,
            refunded_amount: None,
            paid_at: None,
            connector_ref: None,
            details: None,
            data: json!({}),
            actor,
        }
    }
}

/// Applies `change` to `p` if it is still in `p.status` (conditional UPDATE), writing the event
/// and the outbox row in the same transaction. Returns the updated row.
pub async fn transition(
    tx: &mut Tx,
    p: &PaymentRow,
    change: &Change<'_>,
    now: i64,
) -> Result<PaymentRow, PaymentError> {
    let details = change
        .details
        .as_ref()
        .map(Value::to_string)
        .unwrap_or_else(|| p.details.clone());
    let sql = format!(
        "UPDATE payments SET status = $1, captured_amount = $2, refunded_amount = $3, \
         paid_at = $4, connector_ref = $5, details = $6, updated_at = $7 \
         WHERE id = $8 AND status = $9 AND updated_at = $10 RETURNING {COLS}"
    );
    // On SQLite the fee terms and the message contact this change will read travel with the
    // UPDATE, one call to the writer instead of three (see `Tx::read_ahead`).
    crate::db::settlements::read_ahead(tx, p, change.to_status);
    crate::db::messages::read_ahead(tx, p, change.event);
    let row: Option<PaymentRow> = tx
        .fetch_optional(
            &sql,
            args![
                change.to_status.code(),
                change.captured_amount.unwrap_or(p.captured_amount),
                change.refunded_amount.unwrap_or(p.refunded_amount),
                change.paid_at.or(p.paid_at),
                change.connector_ref.or(p.connector_ref.as_deref()),
                details,
                now.max(p.updated_at + 1),
                &p.id,
                p.status.code(),
                p.updated_at
            ],
        )
        .await?;
    let mut row = row.ok_or(PaymentError::Conflict)?;
    // Fees are charged when the money is collected (and undone with it), in this transaction.
    if let Some(fee) = crate::db::settlements::on_payment_change(tx, Some(p), &row, now).await? {
        set_fee(tx, &mut row, fee).await?;
    }
    // Counted when written; a transaction rolled back afterwards (rare) still counts.
    metrics::counter!(
        "kakehashi_payment_status_changes_total",
        "method" => row.method.code(),
        "to" => change.to_status.code()
    )
    .increment(1);
    insert_event(
        tx,
        &row.id,
        change.event,
        Some(p.status.code()),
        change.to_status.code(),
        change.amount,
        &change.data,
        change.actor,
        now,
    )
    .await?;
    enqueue(tx, &row, change.event, change.amount, now).await?;
    // Shopper messages (instructions, receipts, notices) ride the same transaction.
    crate::db::messages::on_payment_event(tx, &row, change.event, now).await?;
    Ok(row)
}

/// Stores a payment's fee total (`payments.fee`): the stamp duty expected when a konbini number
/// is issued, then everything deducted for it once collected (`db::settlements`).
async fn set_fee(tx: &mut Tx, row: &mut PaymentRow, fee: i64) -> Result<(), sqlx::Error> {
    tx.write(
        "UPDATE payments SET fee = $1 WHERE id = $2",
        args![fee, &row.id],
    )
    .await?;
    row.fee = fee;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn insert_event(
    tx: &mut Tx,
    payment_id: &str,
    kind: &str,
    from: Option<&str>,
    to: &str,
    amount: Option<i64>,
    data: &Value,
    actor: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    tx.write(
        "INSERT INTO payment_events (payment_id, type, from_status, to_status, amount, data, actor, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        args![payment_id, kind, from, to, amount, data.to_string(), actor, now],
    )
    .await?;
    Ok(())
}

/// The notification body for a payment event (docs/notifications.md): what merchants parse.
/// Method details sit under a key named after the method and never hold card data beyond the
/// masked fields kept in `details`.
pub fn event_body(
    event_id: &str,
    kind: &str,
    p: &PaymentRow,
    amount: Option<i64>,
    at: i64,
) -> Value {
    let mut data = json!({
        "payment_id": p.id,
        "order_id": p.order_id,
        "merchant_id": p.merchant_id,
        "method": p.method,
        "institution": p.institution,
        "amount": p.amount,
        "event_amount": amount,
        "captured_amount": p.captured_amount,
        "refunded_amount": p.refunded_amount,
        "fee": p.fee,
        "status": p.status,
        "status_label_ja": p.status.label_ja(),
        "deadline_at": p.deadline_at.map(crate::util::rfc3339_jst),
        "paid_at": p.paid_at.map(crate::util::rfc3339_jst),
    });
    data[p.method.code()] = p.details_json();
    json!({
        "id": event_id,
        "type": kind,
        "created_at": crate::util::rfc3339_jst(at),
        "data": data,
    })
}

/// Writes the outbox row for an event. Events of one payment carry an increasing `seq` so the
/// deliverer can keep them in order.
pub async fn enqueue(
    tx: &mut Tx,
    p: &PaymentRow,
    kind: &str,
    amount: Option<i64>,
    now: i64,
) -> Result<(), sqlx::Error> {
    debug_assert!(
        crate::domain::events::is_known(kind),
        "notification type {kind} is not in domain::events::ALL (nor documented)"
    );
    let id = random_id("evt", 20);
    let body = event_body(&id, kind, p, amount, now).to_string();
    tx.write(
        "INSERT INTO outbox (id, merchant_id, payment_id, seq, type, body, status, next_attempt_at, created_at) \
         VALUES ($1, $2, $3, (SELECT COALESCE(MAX(seq), 0) + 1 FROM outbox WHERE payment_id = $3), $4, $5, 'pending', $6, $6)",
        args![id, &p.merchant_id, &p.id, kind, body, now],
    )
    .await?;
    Ok(())
}

/// Sets the checkout's status alongside a payment change (same transaction).
pub async fn set_checkout_status(
    tx: &mut Tx,
    checkout_id: &str,
    status: CheckoutStatus,
    now: i64,
) -> Result<(), sqlx::Error> {
    tx.write(
        "UPDATE checkouts SET status = $1, updated_at = $2 WHERE id = $3",
        args![status.code(), now, checkout_id],
    )
    .await?;
    Ok(())
}

pub async fn get(db: &Db, id: &str) -> Result<Option<PaymentRow>, sqlx::Error> {
    let sql = format!("SELECT {COLS} FROM payments WHERE id = $1");
    on_db!(db, c => sqlx::query_as(&sql).bind(id).fetch_optional(c).await)
}

/// The payment `id` if its merchant is inside `scope` (else `None`, as for an unknown id).
pub async fn get_in(db: &Db, scope: &Scope, id: &str) -> Result<Option<PaymentRow>, sqlx::Error> {
    crate::db::scope::row_in(db, "payments", COLS, "merchant_id", scope, id).await
}

pub async fn get_tx(tx: &mut Tx, id: &str) -> Result<Option<PaymentRow>, sqlx::Error> {
    let sql = format!("SELECT {COLS} FROM payments WHERE id = $1");
    on_tx!(tx, c => sqlx::query_as(&sql).bind(id).fetch_optional(c).await)
}

/// The checkout's live payment after [`create`] in `tx` failed with
/// [`PaymentError::AlreadyLive`]; `tx` is rolled back. On SQLite the payment that won may
/// belong to a group whose COMMIT is still to come (`db::writer`): this transaction sees it,
/// the readers not yet, so it is read here. On PostgreSQL the failed INSERT waited for the
/// winner's commit, and the transaction is aborted, so a reader is asked.
pub async fn live_after_conflict(
    db: &Db,
    mut tx: Tx,
    checkout_id: &str,
) -> Result<Option<PaymentRow>, sqlx::Error> {
    if matches!(tx, Tx::Sqlite(_)) {
        let sql = live_sql();
        return on_tx!(&mut tx, c => sqlx::query_as(&sql).bind(checkout_id).fetch_optional(c).await);
    }
    drop(tx);
    live_for_checkout(db, checkout_id).await
}

/// The checkout's live payment, if any: the same predicate as the `payments_one_live` index.
pub async fn live_for_checkout(
    db: &Db,
    checkout_id: &str,
) -> Result<Option<PaymentRow>, sqlx::Error> {
    let sql = live_sql();
    on_db!(db, c => sqlx::query_as(&sql).bind(checkout_id).fetch_optional(c).await)
}

/// A checkout's live payment: the same predicate as the `payments_one_live` index.
fn live_sql() -> String {
    format!("SELECT {COLS} FROM payments WHERE checkout_id = $1 AND {HOLDS_CHECKOUT} LIMIT 1")
}

/// The newest payment of a checkout, failed ones included.
pub async fn latest_for_checkout(
    db: &Db,
    checkout_id: &str,
) -> Result<Option<PaymentRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLS} FROM payments WHERE checkout_id = $1 ORDER BY created_at DESC, id DESC LIMIT 1"
    );
    on_db!(db, c => sqlx::query_as(&sql).bind(checkout_id).fetch_optional(c).await)
}

#[derive(Debug, sqlx::FromRow, serde::Serialize)]
pub struct EventRow {
    pub id: i64,
    pub payment_id: String,
    #[sqlx(rename = "type")]
    #[serde(rename = "type")]
    pub kind: String,
    pub from_status: Option<String>,
    pub to_status: String,
    pub amount: Option<i64>,
    pub actor: String,
    pub created_at: i64,
}

pub async fn events(db: &Db, payment_id: &str) -> Result<Vec<EventRow>, sqlx::Error> {
    on_db!(db, c => sqlx::query_as(
        "SELECT id, payment_id, type, from_status, to_status, amount, actor, created_at \
         FROM payment_events WHERE payment_id = $1 ORDER BY id",
    )
    .bind(payment_id)
    .fetch_all(c)
    .await)
}

/// Payments of a checkout in `status` with one of `methods` (e.g. carrier attempts still
/// waiting for the carrier).
pub async fn waiting_in_checkout(
    tx: &mut Tx,
    checkout_id: &str,
    methods: &[Method],
    status: PaymentStatus,
) -> Result<Vec<PaymentRow>, sqlx::Error> {
    // Our own codes, never input: safe to inline.
    let list = methods
        .iter()
        .map(|m| format!("'{}'", m.code()))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "SELECT {COLS} FROM payments WHERE checkout_id = $1 AND status = $2 AND method IN ({list})"
    );
    on_tx!(tx, c => sqlx::query_as(&sql).bind(checkout_id).bind(status.code()).fetch_all(c).await)
}

/// Replaces a payment's details while it is still in `status` (no status change, so no event).
pub async fn set_details_if(
    tx: &mut Tx,
    p: &PaymentRow,
    details: &Value,
    status: PaymentStatus,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let n = exec_tx!(tx, c => sqlx::query(
        "UPDATE payments SET details = $1, updated_at = $2 WHERE id = $3 AND status = $4",
    )
    .bind(details.to_string())
    .bind(now.max(p.updated_at + 1))
    .bind(&p.id)
    .bind(status.code())
    .execute(c)
    .await)?;
    Ok(n == 1)
}

/// `(amount, paid_at)` of the payments of `method` in `status`, other than `except`, whose
/// details contain `pattern` (a LIKE pattern the caller builds from values it controls).
pub async fn amounts_matching_details(
    tx: &mut Tx,
    method: Method,
    status: PaymentStatus,
    except: &str,
    pattern: &str,
) -> Result<Vec<(i64, Option<i64>)>, sqlx::Error> {
    on_tx!(tx, conn => sqlx::query_as(
        "SELECT amount, paid_at FROM payments WHERE method = $1 AND status = $2 \
         AND id <> $3 AND details LIKE $4",
    )
    .bind(method.code())
    .bind(status.code())
    .bind(except)
    .bind(pattern)
    .fetch_all(conn)
    .await)
}

/// Records the connector's reference (card token, intent id) on a payment.
pub async fn set_connector_ref(tx: &mut Tx, id: &str, reference: &str) -> Result<(), sqlx::Error> {
    tx.write(
        "UPDATE payments SET connector_ref = $1 WHERE id = $2",
        args![reference, id],
    )
    .await
}

/// Replaces a payment's deadline: a processor that issued the number set its own, which is the
/// one the shopper can really pay until (and the expiry sweep's).
pub async fn set_deadline(tx: &mut Tx, id: &str, deadline_at: i64) -> Result<(), sqlx::Error> {
    tx.write(
        "UPDATE payments SET deadline_at = $1 WHERE id = $2",
        args![deadline_at, id],
    )
    .await
}

/// Payments of `method` in one of `statuses` not changed since `before` (at most 500), for the
/// sweeps. The method and statuses are our own codes.
pub async fn untouched_since(
    db: &Db,
    method: Method,
    statuses: &[PaymentStatus],
    before: i64,
) -> Result<Vec<PaymentRow>, sqlx::Error> {
    let placeholders: Vec<String> = (0..statuses.len()).map(|i| format!("${}", i + 3)).collect();
    let sql = format!(
        "SELECT {COLS} FROM payments WHERE method = $1 AND updated_at < $2 \
         AND status IN ({}) LIMIT 500",
        placeholders.join(", ")
    );
    on_db!(db, c => {
        let mut q = sqlx::query_as(&sql).bind(method.code()).bind(before);
        for s in statuses {
            q = q.bind(s.code());
        }
        q.fetch_all(c).await
    })
}

/// The konbini / Pay-easy sweeps' selections.
#[derive(Clone, Copy, Debug)]
pub enum NumberSweep {
    /// Numbers still awaiting payment after their deadline.
    Overdue,
    /// Sandbox numbers of test-mode merchants older than the merchant's auto-pay delay.
    SandboxAutopay,
}

/// Ids of the payments a number sweep acts on at `now_ms` (at most `limit`, oldest first).
pub async fn number_sweep_ids(
    db: &Db,
    sweep: NumberSweep,
    now_ms: i64,
    limit: i64,
) -> Result<Vec<String>, sqlx::Error> {
    let sql = match sweep {
        NumberSweep::Overdue => {
            "SELECT id FROM payments WHERE status = 'awaiting_payment' \
             AND method IN ('konbini', 'payeasy', 'bank_transfer') AND deadline_at < $1 \
             ORDER BY deadline_at, id LIMIT $2"
        }
        NumberSweep::SandboxAutopay => {
            "SELECT p.id FROM payments p JOIN merchants m ON m.id = p.merchant_id \
             WHERE p.status = 'awaiting_payment' AND p.method IN ('konbini', 'payeasy', 'bank_transfer') \
             AND m.mode = 'test' AND p.connector = 'sandbox' \
             AND m.sandbox_autopay_seconds IS NOT NULL \
             AND p.created_at + m.sandbox_autopay_seconds * 1000 <= $1 \
             ORDER BY p.created_at, p.id LIMIT $2"
        }
    };
    on_db!(db, c => sqlx::query_scalar(sql).bind(now_ms).bind(limit).fetch_all(c).await)
}

/// Payments of `method` in `status` whose deadline passed before `now_ms` (at most 200).
pub async fn overdue(
    db: &Db,
    method: Method,
    status: PaymentStatus,
    now_ms: i64,
) -> Result<Vec<PaymentRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLS} FROM payments WHERE status = $1 AND method = $2 AND deadline_at < $3 \
         ORDER BY deadline_at LIMIT 200"
    );
    on_db!(db, c => sqlx::query_as(&sql)
        .bind(status.code())
        .bind(method.code())
        .bind(now_ms)
        .fetch_all(c)
        .await)
}

/// The payment a connector session belongs to (the sandbox pages are addressed by session).
pub async fn by_connector_ref(
    db: &Db,
    method: Method,
    reference: &str,
) -> Result<Option<PaymentRow>, sqlx::Error> {
    let sql = format!("SELECT {COLS} FROM payments WHERE connector_ref = $1 AND method = $2");
    on_db!(db, c => sqlx::query_as(&sql).bind(reference).bind(method.code()).fetch_optional(c).await)
}

/// Records the connector session (and details) on a payment.
pub async fn attach_session(
    tx: &mut Tx,
    payment_id: &str,
    session: &str,
    details: &Value,
) -> Result<(), sqlx::Error> {
    exec_tx!(tx, c => sqlx::query("UPDATE payments SET connector_ref = $1, details = $2 WHERE id = $3")
        .bind(session)
        .bind(details.to_string())
        .bind(payment_id)
        .execute(c)
        .await)?;
    Ok(())
}

/// The payment an account's processor event is about: by the processor's reference, else by
/// our payment id as sent to the processor (empty strings match nothing).
pub async fn by_account_refs(
    tx: &mut Tx,
    account_id: &str,
    processor_ref: &str,
    our_id: &str,
) -> Result<Option<PaymentRow>, sqlx::Error> {
    if processor_ref.is_empty() && our_id.is_empty() {
        return Ok(None);
    }
    let sql = format!(
        "SELECT {COLS} FROM payments WHERE connector = $1 AND (connector_ref = $2 OR id = $3) \
         ORDER BY created_at LIMIT 1"
    );
    on_tx!(tx, c => sqlx::query_as(&sql)
        .bind(account_id)
        .bind(processor_ref)
        .bind(our_id)
        .fetch_optional(c)
        .await)
}

/// Statuses whose money reaches the merchant. Card amounts count what was captured less
/// refunds; other methods count the payment amount.
const COLLECTED: &str = "'captured', 'refunded', 'paid', 'confirmed', 'late_paid', 'completed'";

/// One method's collected payments in a period (the console's payout summary).
#[derive(Debug, sqlx::FromRow)]
pub struct SummaryLine {
    pub method: String,
    pub count: i64,
    pub amount: i64,
    pub fee: i64,
}

/// Collected payments per method created in `[from_ms, to_ms)`; `None` merchant = all.
pub async fn collected_by_method(
    db: &Db,
    scope: &Scope,
    from_ms: i64,
    to_ms: i64,
) -> Result<Vec<SummaryLine>, sqlx::Error> {
    let (kind, value) = scope.sql_parts();
    let vis = crate::db::scope::visible("merchant_id", 1);
    let sql = format!(
        "SELECT method, COUNT(*) AS count, \
         CAST(COALESCE(SUM(CASE WHEN method = 'card' THEN captured_amount - refunded_amount ELSE amount END), 0) AS BIGINT) AS amount, \
         CAST(COALESCE(SUM(fee), 0) AS BIGINT) AS fee \
         FROM payments WHERE {vis} AND created_at >= $3 AND created_at < $4 \
         AND status IN ({COLLECTED}) GROUP BY method ORDER BY method"
    );
    on_db!(db, c => sqlx::query_as(&sql)
        .bind(kind)
        .bind(value)
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(c)
        .await)
}

/// Records a browser card payment's intent id, only if none is recorded yet.
pub async fn set_connector_ref_once(db: &Db, id: &str, reference: &str) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    exec_tx!(&mut tx, c => sqlx::query(
        "UPDATE payments SET connector_ref = $1 WHERE id = $2 AND connector_ref IS NULL",
    )
    .bind(reference)
    .bind(id)
    .execute(c)
    .await)?;
    tx.commit().await
}

/// The card payment an account's processor reference (a Stripe intent id) belongs to.
pub async fn card_by_account_ref(
    db: &Db,
    account_id: &str,
    reference: &str,
) -> Result<Option<PaymentRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLS} FROM payments WHERE connector = $1 AND connector_ref = $2 AND method = 'card'"
    );
    on_db!(db, c => sqlx::query_as(&sql)
        .bind(account_id)
        .bind(reference)
        .fetch_optional(c)
        .await)
}

/// The konbini / Pay-easy payment a processor account knows by `reference` (Stripe: the
/// PaymentIntent id).
pub async fn number_by_account_ref(
    db: &Db,
    account_id: &str,
    reference: &str,
) -> Result<Option<PaymentRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLS} FROM payments WHERE connector = $1 AND connector_ref = $2 \
         AND method IN ('konbini', 'payeasy')"
    );
    on_db!(db, c => sqlx::query_as(&sql)
        .bind(account_id)
        .bind(reference)
        .fetch_optional(c)
        .await)
}

/// Processor card payments waiting for the shopper's browser (3-D Secure) that the
/// reconciliation should look at: unchanged since `changed_before`, and either changed at or
/// after `recent_from` or before `expired_before` (at most 500).
pub async fn browser_card_waiting(
    db: &Db,
    changed_before: i64,
    recent_from: i64,
    expired_before: i64,
) -> Result<Vec<PaymentRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLS} FROM payments WHERE method = 'card' AND status IN ('awaiting_3ds', 'challenge') \
         AND connector <> 'sandbox' AND updated_at < $1 AND (updated_at >= $2 OR updated_at < $3) \
         LIMIT 500"
    );
    on_db!(db, c => sqlx::query_as(&sql)
        .bind(changed_before)
        .bind(recent_from)
        .bind(expired_before)
        .fetch_all(c)
        .await)
}

/// Writes an event that does not change the payment's status (e.g. a refund request's progress)
/// and its notification, in the caller's transaction.
pub async fn record_event(
    tx: &mut Tx,
    p: &PaymentRow,
    kind: &str,
    amount: Option<i64>,
    data: &Value,
    actor: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    let status = p.status.code();
    insert_event(
        tx,
        &p.id,
        kind,
        Some(status),
        status,
        amount,
        data,
        actor,
        now,
    )
    .await?;
    enqueue(tx, p, kind, amount, now).await
}

/// Reads the payment in the caller's transaction after a no-op write to its row, so concurrent
/// transactions doing the same on one payment run one after the other.
pub async fn lock(tx: &mut Tx, id: &str) -> Result<Option<PaymentRow>, sqlx::Error> {
    exec_tx!(tx, c => sqlx::query("UPDATE payments SET updated_at = updated_at WHERE id = $1")
        .bind(id)
        .execute(c)
        .await)?;
    get_tx(tx, id).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `COLLECTED` (the SQL of the payout summary) and `PaymentStatus::is_collected` (fees and
    /// settlements) name the same statuses.
    #[test]
    fn collected_sql_matches_the_domain() {
        let mut domain: Vec<&str> = Method::ALL
            .into_iter()
            .flat_map(PaymentStatus::all_for)
            .filter(|s| s.is_collected())
            .map(|s| s.code())
            .collect();
        domain.sort_unstable();
        domain.dedup();
        let mut sql: Vec<&str> = COLLECTED
            .split(", ")
            .map(|c| c.trim_matches('\''))
            .collect();
        sql.sort_unstable();
        assert_eq!(domain, sql);
    }
}
