//! The delivery worker: leases due outbox events, posts them, records every attempt, and
//! schedules retries. Runs in every server instance; leases keep instances from colliding.
//!
//! Stopping: once its token is cancelled the worker claims nothing more, but a batch already
//! claimed is delivered and recorded to the end, so a graceful stop neither drops nor repeats an
//! event. If the supervisor's grace runs out first and the worker is aborted, the events still in
//! flight keep their lease and go out again, with the same `webhook-id`, when it expires.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::db::merchants::{self, MerchantRow};
use crate::db::outbox::{self, Claimed, Finished};
use crate::db::Db;
use crate::domain::{CallbackStatus, NotifyFormat};
use crate::notify::deliver::{Deliverer, Delivery, Outcome};
use crate::notify::{schedule, sign};
use crate::ssrf::policy_for;

const BATCH: i64 = 64;
const IDLE_POLL: Duration = Duration::from_millis(500);
/// Batches in flight at once. A batch ends only when its last delivery is recorded, so with one
/// the next claim waited for the slowest endpoint of the batch, and the claim itself (a few
/// milliseconds on PostgreSQL behind a backlog) left delivery idle meanwhile (bench/README.md,
/// change 34). Two lanes share the per-endpoint caps, so an endpoint never gets more than
/// `notify_endpoint_concurrency` at once, and per-payment order holds as it does between
/// instances: the claim skips an event while an earlier one of its payment is pending, and a
/// leased event is pending until its attempt is recorded.
const LANES: usize = 2;

/// The per-endpoint delivery slots, shared by the lanes: callback-URL origin → its semaphore.
/// An entry lives while a batch holds it.
type Slots = std::sync::Mutex<HashMap<String, Arc<tokio::sync::Semaphore>>>;

pub struct Worker {
    pub db: Db,
    pub config: Arc<crate::config::Config>,
    pub deliverer: Arc<Deliverer>,
    pub wake: Arc<Notify>,
    pub owner: String,
    /// Opens the merchants' webhook secrets when they are sealed.
    pub keys: Arc<crate::secrets::Keyring>,
    /// "Now" for leases, signatures and retry times (tests move it).
    pub clock: Arc<dyn crate::clock::Clock>,
}

impl Worker {
    /// Delivers until `stop` is cancelled, [`LANES`] batches at a time. A batch is never
    /// interrupted: `stop` is checked before each claim and while idle. The lanes run in this
    /// task (not spawned), so aborting it stops them all.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        let slots = Slots::default();
        let lanes = (0..LANES).map(|_| self.lane(&slots, &stop));
        futures_util::future::join_all(lanes).await;
    }

    async fn lane(self: &Arc<Self>, slots: &Slots, stop: &CancellationToken) {
        while !stop.is_cancelled() {
            let idle = match self.tick(slots).await {
                Ok(0) => true,
                Ok(n) => {
                    // A full batch: there may be more due, so an idle lane joins in.
                    if n as i64 == BATCH {
                        self.wake.notify_one();
                    }
                    false
                }
                Err(e) => {
                    tracing::warn!(error = %e, "notification worker");
                    true
                }
            };
            if idle {
                tokio::select! {
                    _ = stop.cancelled() => {}
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep(IDLE_POLL) => {}
                }
            }
        }
    }

    /// Claims and delivers one batch; returns how many events it handled.
    async fn tick(self: &Arc<Self>, slots: &Slots) -> anyhow::Result<usize> {
        let batch = outbox::claim(
            &self.db,
            &self.owner,
            self.config.notify_lease_ms,
            BATCH,
            self.clock.now_ms(),
        )
        .await?;
        let n = batch.len();
        if n == 0 {
            return Ok(0);
        }
        // One read per merchant in the batch, not one per event.
        let mut merchants: HashMap<String, Option<Arc<MerchantRow>>> = HashMap::new();
        for ev in &batch {
            if !merchants.contains_key(&ev.merchant_id) {
                let m = merchants::get(&self.db, &ev.merchant_id)
                    .await?
                    .map(Arc::new);
                merchants.insert(ev.merchant_id.clone(), m);
            }
        }
        // At most `notify_endpoint_concurrency` deliveries to one endpoint at once, so one
        // merchant's slow server neither gets flooded nor holds every slot. Per-payment order
        // needs nothing here: a batch holds at most one pending event per payment (the claim
        // takes only the oldest).
        let per_endpoint = self.config.notify_endpoint_concurrency.max(1);
        // Results are recorded as they come in, several per transaction: whatever finished
        // while the previous write was running goes in the next (group commit). A slow
        // endpoint delays only its own events' records, never the others'.
        let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<Done>();
        let mut set = JoinSet::new();
        // Events with nowhere to go are parked together, one statement per reason, not one
        // write each (they queue on SQLite's single writer with the payments making them).
        let mut parked: HashMap<&'static str, Vec<String>> = HashMap::new();
        for ev in batch {
            let merchant = merchants.get(&ev.merchant_id).cloned().flatten();
            if let Some(reason) = park_reason(merchant.as_deref()) {
                parked.entry(reason).or_default().push(ev.id);
                continue;
            }
            let endpoint = endpoint_key(merchant.as_deref());
            let cap = slots
                .lock()
                .map_err(|_| anyhow::anyhow!("delivery slots poisoned"))?
                .entry(endpoint)
                .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(per_endpoint)))
                .clone();
            let this = Arc::clone(self);
            let done_tx = done_tx.clone();
            set.spawn(async move {
                // Never closed, so acquiring only waits.
                let _slot = cap.acquire_owned().await;
                match this.deliver_one(ev, merchant).await {
                    Ok(Some(f)) => {
                        // The receiver lives until every sender is gone.
                        let _ = done_tx.send(f);
                    }
                    Ok(None) => {}
                    Err(e) => tracing::warn!(error = %e, "delivery bookkeeping failed"),
                }
            });
        }
        drop(done_tx);
        for (reason, ids) in &parked {
            if let Err(e) = outbox::park_all(&self.db, ids, &self.owner, reason).await {
                // The events keep their lease and come back when it expires.
                tracing::warn!(error = %e, "delivery bookkeeping failed");
            }
        }
        while let Some(first) = done_rx.recv().await {
            let (mut group, mut gone) = (Vec::new(), Vec::new());
            let mut take = |d: Done| {
                group.push(d.record);
                gone.extend(d.gone);
            };
            take(first);
            while let Ok(d) = done_rx.try_recv() {
                take(d);
            }
            if let Err(e) = self.record(&group, gone).await {
                // The events keep their lease and go out again when it expires.
                tracing::warn!(error = %e, "delivery bookkeeping failed");
            }
        }
        while set.join_next().await.is_some() {}
        // Endpoints no batch holds any more (only the map keeps them) are dropped.
        if let Ok(mut slots) = slots.lock() {
            slots.retain(|_, s| Arc::strong_count(s) > 1);
        }
        Ok(n)
    }

    /// Records finished attempts in one transaction, then disables the endpoints that answered
    /// 410 Gone: after the events' own state, so anyone who sees an endpoint disabled also sees
    /// why.
    async fn record(&self, group: &[Finished], mut gone: Vec<String>) -> anyhow::Result<()> {
        outbox::finish_all(&self.db, &self.owner, group, self.clock.now_ms()).await?;
        gone.sort_unstable();
        gone.dedup();
        for merchant_id in &gone {
            outbox::disable_endpoint(&self.db, merchant_id).await?;
        }
        Ok(())
    }

    async fn deliver_one(
        &self,
        ev: Claimed,
        merchant: Option<Arc<MerchantRow>>,
    ) -> anyhow::Result<Option<Done>> {
        // `tick` parked the events `park_reason` names; the rest have a merchant and a URL.
        let (Some(m), None) = (merchant.as_deref(), park_reason(merchant.as_deref())) else {
            return Ok(None);
        };
        let Some(url) = m.callback_url.as_deref() else {
            return Ok(None);
        };
        let secrets = m.webhook_secrets(&self.keys)?;
        let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
        let ts = self.clock.now_ms() / 1000;
        let delivery = if m.notify_format == NotifyFormat::Compat {
            let body: serde_json::Value = serde_json::from_str(&ev.body)?;
            Delivery::compat(url, &secrets, &ev.id, ts, &compat_fields(&body))
        } else {
            Delivery::standard(url, &secrets, &ev.id, ts, ev.body.clone().into_bytes())
        };
        let policy = policy_for(&self.config, m.mode());
        let result = self.deliverer.deliver(&delivery, policy).await;
        let attempts_made = ev.attempts as u32 + 1;
        let outcome_code = match result.outcome {
            Outcome::Delivered => "delivered",
            Outcome::Retry => result.error.as_deref().unwrap_or("retry"),
            Outcome::Disable => "gone",
            Outcome::Refused => result.error.as_deref().unwrap_or("refused"),
        };
        let (status, next_at) = match result.outcome {
            Outcome::Delivered => ("delivered", None),
            Outcome::Disable => ("disabled", None),
            Outcome::Refused => ("failed", None),
            Outcome::Retry => {
                let now = self.clock.now_ms();
                let jitter: f64 = rand::thread_rng().gen();
                match schedule::next_attempt_ms(now, attempts_made, result.retry_after, jitter) {
                    Some(at) => {
                        // Tests shrink the schedule; production runs it as is.
                        let scaled =
                            now + ((at - now) as f64 * self.config.notify_retry_scale) as i64;
                        ("pending", Some(scaled))
                    }
                    None => ("failed", None),
                }
            }
        };
        metrics::counter!(
            "kakehashi_notification_attempts_total",
            "outcome" => outcome_label(result.outcome)
        )
        .increment(1);
        tracing::info!(event = %ev.id, kind = %ev.kind, outcome = outcome_code, status = ?result.status, "notification attempt");
        Ok(Some(Done {
            record: Finished {
                event_id: ev.id,
                next_status: status,
                next_at,
                status_code: result.status.map(i64::from),
                latency_ms: result.latency_ms,
                outcome: outcome_code.to_owned(),
                // PostgreSQL text cannot hold NUL, and one hostile receiver's answer must not
                // fail the write that records its neighbours' attempts.
                snippet: result.response_snippet.replace('\0', "\u{FFFD}"),
            },
            gone: (result.outcome == Outcome::Disable).then(|| m.id.clone()),
        }))
    }
}

/// An attempt made, waiting to be recorded: its record, and the merchant whose endpoint asked
/// to be disabled (410 Gone).
struct Done {
    record: Finished,
    gone: Option<String>,
}

/// The metric label of an attempt's outcome: a fixed set (`delivered`, `retry`, `gone`,
/// `refused`), never the free-form error text.
fn outcome_label(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Delivered => "delivered",
        Outcome::Retry => "retry",
        Outcome::Disable => "gone",
        Outcome::Refused => "refused",
    }
}

/// Compatibility-mode fields, in the documented hash order ([`sign::COMPAT_FIELD_ORDER`]).
/// Which endpoint a delivery goes to, for the per-endpoint cap: the callback URL's origin
/// (scheme, host, port), so merchants sharing one receiving server share its cap.
/// Why an event cannot be delivered, if it cannot: its merchant is gone or has no callback URL
/// (`no_endpoint`), or the endpoint answered 410 Gone once (`disabled`).
fn park_reason(merchant: Option<&MerchantRow>) -> Option<&'static str> {
    match merchant {
        None => Some("no_endpoint"),
        Some(m) if m.callback_url.as_deref().is_none_or(str::is_empty) => Some("no_endpoint"),
        Some(m) if m.callback_status == CallbackStatus::Disabled => Some("disabled"),
        Some(_) => None,
    }
}

fn endpoint_key(merchant: Option<&MerchantRow>) -> String {
    let url = merchant
        .and_then(|m| m.callback_url.as_deref())
        .unwrap_or_default();
    match url::Url::parse(url) {
        Ok(u) => u.origin().ascii_serialization(),
        Err(_) => url.to_owned(),
    }
}

pub fn compat_fields(body: &serde_json::Value) -> Vec<(&'static str, String)> {
    let d = &body["data"];
    let s = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    };
    sign::COMPAT_FIELD_ORDER
        .iter()
        .map(|name| {
            let v = match *name {
                "event_id" => s(&body["id"]),
                "event_type" => s(&body["type"]),
                "created_at" => s(&body["created_at"]),
                other => s(&d[other]),
            };
            (*name, v)
        })
        .collect()
}
