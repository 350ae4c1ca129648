//! The notification outbox: leasing due events to a worker, recording attempts, redelivery.
//!
//! Several server instances may share one PostgreSQL: a claim takes rows with
//! `FOR UPDATE SKIP LOCKED` and stamps a lease, so an event is never in two workers' hands; a
//! worker killed mid-delivery leaves a lease that expires, and the event goes out again with the
//! same id. SQLite has one writer, so its claim is serialised anyway.

use crate::db::Db;
use crate::{args, exec_tx, on_db};

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Claimed {
    pub id: String,
    pub merchant_id: String,
    pub payment_id: Option<String>,
    #[sqlx(rename = "type")]
    pub kind: String,
    pub body: String,
    pub attempts: i64,
    pub created_at: i64,
}

/// Leases up to `limit` due events. An event waits while an earlier event of the same payment
/// is still pending, so each payment's events arrive in order. The partial index
/// `outbox_pending_due` (migration 0033) lets this read only the first due pending rows, in
/// order, and the payment check probes one index per row; events of no payment (pings,
/// settlements) skip the check.
pub async fn claim(
    db: &Db,
    owner: &str,
    lease_ms: i64,
    limit: i64,
    now: i64,
) -> Result<Vec<Claimed>, sqlx::Error> {
    // One statement, atomic on its own: no BEGIN/COMMIT round trips around it on PostgreSQL;
    // on SQLite it shares its COMMIT with the writers in line.
    // Planned at each claim on PostgreSQL: its generic plan, made while the outbox was
    // small, scanned the whole table for the claimed ids once it had grown (change 36).
    db.write_fetch_all_replanned(
        &claim_sql(db.is_postgres()),
        args![owner, now + lease_ms, now, now, limit],
    )
    .await
}

/// The claim's statement ($1 owner, $2 lease end, $3 and $4 now, $5 limit).
///
/// PostgreSQL's statement is written so that its plan does not depend on fresh statistics. A
/// backlog that arrived since the outbox was last analyzed looks empty to the planner (the
/// pending rows are not in its sample), so any index over pending rows looks as good as any
/// other. With `e.status = 'pending'` beside the payment, the order check could then use the
/// due index (or `outbox_due` beside `outbox_payment`), reading every pending row for each
/// row it checks: 121 ms for one claim over 10,000 due payment events, against 1.8 ms when it
/// probes `outbox_payment` (`EXPLAIN ANALYZE`, bench/README.md, change 35). So the check reads
/// the earlier events of the payment in a subquery that no condition on `status` can enter
/// (`OFFSET 0` keeps the planner from pushing it down), and filters their status after: one
/// payment's few rows, by `outbox_payment (payment_id, seq)`, whatever the statistics say.
/// `id = ANY(ARRAY(…))` makes the UPDATE find its rows by key, where `IN (…)` could be
/// planned as a scan of the whole outbox. SQLite (no statistics unless analyzed, which the
/// server never does) keeps the plain form and its partial index.
pub fn claim_sql(postgres: bool) -> String {
    let (open, close, lock, earlier_pending) = if postgres {
        (
            "= ANY(ARRAY(",
            "))",
            "FOR UPDATE SKIP LOCKED",
            "SELECT 1 FROM (SELECT e.status FROM outbox e \
             WHERE e.payment_id = o.payment_id AND e.seq < o.seq OFFSET 0) earlier \
             WHERE earlier.status = 'pending'",
        )
    } else {
        (
            "IN (",
            ")",
            "",
            "SELECT 1 FROM outbox e WHERE e.payment_id = o.payment_id AND e.seq < o.seq \
             AND e.status = 'pending'",
        )
    };
    format!(
        "UPDATE outbox SET lease_owner = $1, lease_until = $2 WHERE id {open}\
           SELECT o.id FROM outbox o WHERE o.status = 'pending' AND o.next_attempt_at <= $3 \
           AND (o.lease_until IS NULL OR o.lease_until < $4) \
           AND (o.payment_id IS NULL OR NOT EXISTS ({earlier_pending})) \
           ORDER BY o.next_attempt_at, o.created_at LIMIT $5 {lock}{close} \
         RETURNING id, merchant_id, payment_id, type, body, attempts, created_at"
    )
}

/// One attempt's result, to be recorded with [`finish_all`]: the attempt for the delivery log
/// and the event's new state. `next_status` is `pending` (retry at `next_at`), `delivered`,
/// `failed` or `disabled`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Finished {
    pub event_id: String,
    pub next_status: &'static str,
    pub next_at: Option<i64>,
    pub status_code: Option<i64>,
    pub latency_ms: i64,
    pub outcome: String,
    pub snippet: String,
}

/// Records attempts and their events' new states, whatever their number, at the cost of one
/// commit: not one per event (on PostgreSQL each commit waits for a WAL flush). Only the lease
/// holder may finish an event; an event whose lease was lost keeps its state, but its attempt
/// is logged all the same. Returns how many events were updated.
///
/// PostgreSQL: one statement, atomic on its own (the attempts are inserted by a CTE beside the
/// UPDATE): one round trip instead of four (BEGIN, two statements, COMMIT), which was most of
/// a delivery batch's time there. The two touch different tables, so the CTE's shared snapshot
/// changes nothing. SQLite: one transaction of two statements, sent with its BEGIN and COMMIT
/// in one call to the writer (and group-committed with the writers in line).
pub async fn finish_all(
    db: &Db,
    owner: &str,
    done: &[Finished],
    now: i64,
) -> Result<u64, sqlx::Error> {
    if done.is_empty() {
        return Ok(0);
    }
    match db {
        // One typed array per column, unnested into rows.
        Db::Postgres(pool) => {
            let ids: Vec<&str> = done.iter().map(|f| f.event_id.as_str()).collect();
            let statuses: Vec<&str> = done.iter().map(|f| f.next_status).collect();
            let next_at: Vec<Option<i64>> = done.iter().map(|f| f.next_at).collect();
            let codes: Vec<Option<i64>> = done.iter().map(|f| f.status_code).collect();
            let latency: Vec<i64> = done.iter().map(|f| f.latency_ms).collect();
            let outcomes: Vec<&str> = done.iter().map(|f| f.outcome.as_str()).collect();
            let snippets: Vec<&str> = done.iter().map(|f| f.snippet.as_str()).collect();
            let mut c = pool.acquire().await?;
            let r = sqlx::query(
                "WITH j AS (SELECT * FROM UNNEST($1::text[], $2::text[], $3::bigint[], \
                   $4::bigint[], $5::bigint[], $6::text[], $7::text[]) \
                   AS j(id, status, next_at, code, latency, outcome, snippet)), \
                 a AS (INSERT INTO delivery_attempts (event_id, attempted_at, status_code, \
                   latency_ms, outcome, response_snippet) \
                   SELECT j.id, $8, j.code, j.latency, j.outcome, j.snippet FROM j) \
                 UPDATE outbox o SET status = j.status, attempts = o.attempts + 1, \
                 next_attempt_at = COALESCE(j.next_at, o.next_attempt_at), lease_owner = NULL, \
                 lease_until = NULL, \
                 delivered_at = CASE WHEN j.status = 'delivered' THEN $8 ELSE o.delivered_at END \
                 FROM j WHERE o.id = j.id AND o.lease_owner = $9",
            )
            .bind(&ids)
            .bind(&statuses)
            .bind(&next_at)
            .bind(&codes)
            .bind(&latency)
            .bind(&outcomes)
            .bind(&snippets)
            .bind(now)
            .bind(owner)
            .execute(c.conn())
            .await
            .map(|r| r.rows_affected());
            c.note(&r);
            r
        }
        // SQLite has no arrays: the rows travel as one JSON array, read back with json_each.
        Db::Sqlite { write, .. } => {
            let rows = serde_json::to_string(done).map_err(|e| sqlx::Error::Encode(e.into()))?;
            let mut t = super::writer::SqliteTx::begin(write, super::Commit::Durable).await?;
            t.pending.push(
                "INSERT INTO delivery_attempts (event_id, attempted_at, status_code, latency_ms, \
                 outcome, response_snippet) \
                 SELECT value ->> 'event_id', $1, value ->> 'status_code', value ->> 'latency_ms', \
                 value ->> 'outcome', value ->> 'snippet' FROM json_each($2)",
                args![now, rows.clone()],
            );
            let (_, n) = t
                .finish(Some((
                    "UPDATE outbox SET status = j.status, attempts = attempts + 1, \
                     next_attempt_at = COALESCE(j.next_at, next_attempt_at), lease_owner = NULL, \
                     lease_until = NULL, \
                     delivered_at = CASE WHEN j.status = 'delivered' THEN $1 ELSE delivered_at END \
                     FROM (SELECT value ->> 'event_id' AS id, value ->> 'next_status' AS status, \
                           value ->> 'next_at' AS next_at FROM json_each($2)) AS j \
                     WHERE outbox.id = j.id AND outbox.lease_owner = $3",
                    args![now, rows, owner],
                )))
                .await?;
            Ok(n)
        }
    }
}

/// Releases the leases of events that get no attempt (their merchant has no endpoint, or it
/// is disabled), setting their status: one statement for the lot.
pub async fn park_all(
    db: &Db,
    event_ids: &[String],
    owner: &str,
    status: &str,
) -> Result<(), sqlx::Error> {
    if event_ids.is_empty() {
        return Ok(());
    }
    match db {
        Db::Postgres(pool) => {
            let mut c = pool.acquire().await?;
            let r = sqlx::query(
                "UPDATE outbox SET status = $1, lease_owner = NULL, lease_until = NULL \
                 WHERE id = ANY($2) AND lease_owner = $3",
            )
            .bind(status)
            .bind(event_ids)
            .bind(owner)
            .execute(c.conn())
            .await;
            c.note(&r);
            r?;
        }
        // SQLite has no arrays: the ids travel as one JSON array.
        Db::Sqlite { .. } => {
            let ids =
                serde_json::to_string(event_ids).map_err(|e| sqlx::Error::Encode(e.into()))?;
            db.write_exec(
                "UPDATE outbox SET status = $1, lease_owner = NULL, lease_until = NULL \
                 WHERE id IN (SELECT value FROM json_each($2)) AND lease_owner = $3",
                args![status, ids, owner],
            )
            .await?;
        }
    }
    Ok(())
}

/// Marks the merchant's endpoint disabled (it answered 410 Gone).
pub async fn disable_endpoint(db: &Db, merchant_id: &str) -> Result<(), sqlx::Error> {
    db.write_exec(
        "UPDATE merchants SET callback_status = 'disabled' WHERE id = $1",
        args![merchant_id],
    )
    .await?;
    Ok(())
}

/// Puts one event (or every failed/parked event of a merchant) back in the queue, due now. The
/// event keeps its id, so receivers deduplicate by `webhook-id`.
pub async fn redeliver(
    db: &Db,
    merchant_id: &str,
    event_id: Option<&str>,
    now: i64,
) -> Result<u64, sqlx::Error> {
    let mut tx = db.begin().await?;
    let n = match event_id {
        Some(id) => exec_tx!(&mut tx, c => sqlx::query(
            "UPDATE outbox SET status = 'pending', next_attempt_at = $1, lease_owner = NULL, lease_until = NULL \
             WHERE id = $2 AND merchant_id = $3",
        )
        .bind(now)
        .bind(id)
        .bind(merchant_id)
        .execute(c)
        .await)?,
        None => exec_tx!(&mut tx, c => sqlx::query(
            "UPDATE outbox SET status = 'pending', next_attempt_at = $1, lease_owner = NULL, lease_until = NULL \
             WHERE merchant_id = $2 AND status IN ('failed', 'disabled', 'no_endpoint')",
        )
        .bind(now)
        .bind(merchant_id)
        .execute(c)
        .await)?,
    };
    if n > 0 {
        exec_tx!(&mut tx, c => sqlx::query("UPDATE merchants SET callback_status = 'active' WHERE id = $1")
            .bind(merchant_id)
            .execute(c)
            .await)?;
    }
    tx.commit().await?;
    Ok(n)
}

#[derive(Debug, sqlx::FromRow, serde::Serialize)]
pub struct EventSummary {
    pub id: String,
    pub payment_id: Option<String>,
    #[sqlx(rename = "type")]
    #[serde(rename = "type")]
    pub kind: String,
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub created_at: i64,
    pub delivered_at: Option<i64>,
}

pub async fn list_events(
    db: &Db,
    merchant_id: &str,
    limit: i64,
) -> Result<Vec<EventSummary>, sqlx::Error> {
    on_db!(db, c => sqlx::query_as(
        "SELECT id, payment_id, type, status, attempts, next_attempt_at, created_at, delivered_at \
         FROM outbox WHERE merchant_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2",
    )
    .bind(merchant_id)
    .bind(limit)
    .fetch_all(c)
    .await)
}

#[derive(Debug, sqlx::FromRow, serde::Serialize)]
pub struct AttemptRow {
    pub event_id: String,
    pub attempted_at: i64,
    pub status_code: Option<i64>,
    pub latency_ms: i64,
    pub outcome: String,
    pub response_snippet: String,
}

pub async fn attempts(db: &Db, event_id: &str) -> Result<Vec<AttemptRow>, sqlx::Error> {
    on_db!(db, c => sqlx::query_as(
        "SELECT event_id, attempted_at, status_code, latency_ms, outcome, response_snippet \
         FROM delivery_attempts WHERE event_id = $1 ORDER BY id",
    )
    .bind(event_id)
    .fetch_all(c)
    .await)
}

/// A payment's notification as listed on its detail page.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct PaymentEventRow {
    pub id: String,
    #[sqlx(rename = "type")]
    pub kind: String,
    pub status: String,
}

/// The payment's notifications, oldest first (outbox rows carry the payment id).
pub async fn of_payment(db: &Db, payment_id: &str) -> Result<Vec<PaymentEventRow>, sqlx::Error> {
    on_db!(db, c => sqlx::query_as(
        "SELECT id, type, status FROM outbox WHERE payment_id = $1 ORDER BY seq",
    )
    .bind(payment_id)
    .fetch_all(c)
    .await)
}

/// Queues a `ping` test event for a merchant (no payment).
pub async fn ping(db: &Db, merchant_id: &str, now: i64) -> Result<String, sqlx::Error> {
    let id = crate::util::random_id("evt", 20);
    let body = serde_json::json!({
        "id": id, "type": "ping", "created_at": crate::util::rfc3339_jst(now),
        "data": { "merchant_id": merchant_id }
    })
    .to_string();
    db.write_exec(
        "INSERT INTO outbox (id, merchant_id, payment_id, seq, type, body, status, next_attempt_at, created_at) \
         VALUES ($1, $2, NULL, 0, 'ping', $3, 'pending', $4, $5)",
        args![&id, merchant_id, body, now, now],
    )
    .await?;
    Ok(id)
}

/// One of a merchant's events (the console's test-notification page).
pub async fn event(
    db: &Db,
    merchant_id: &str,
    event_id: &str,
) -> Result<Option<EventSummary>, sqlx::Error> {
    on_db!(db, c => sqlx::query_as(
        "SELECT id, payment_id, type, status, attempts, next_attempt_at, created_at, delivered_at \
         FROM outbox WHERE merchant_id = $1 AND id = $2",
    )
    .bind(merchant_id)
    .bind(event_id)
    .fetch_optional(c)
    .await)
}
