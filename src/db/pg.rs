//! PostgreSQL's connections: a fixed set of our own instead of a sqlx pool, which pinged a
//! connection every time it came back (one more round trip per statement outside a
//! transaction, and per transaction). What the ping was for is done here instead: a statement
//! that finds its connection broken drops it (the next user connects again), and a transaction
//! left open by a cancelled request is rolled back at once, by a task its drop starts.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::ConnectOptions;
use tokio::sync::{Mutex, OwnedMutexGuard, OwnedSemaphorePermit, Semaphore};

/// How long a statement waits for a connection (all busy, or connecting) before failing with
/// `PoolTimedOut`, as the sqlx pool did.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// One connection slot: empty until first used, or after its connection broke.
#[derive(Default)]
pub struct Slot {
    conn: Option<PgConnection>,
    /// A transaction was begun on it and not finished.
    in_tx: bool,
}

/// The connections of one instance (16), shared by reads, single writes and transactions.
#[derive(Clone)]
pub struct PgConns {
    slots: Arc<[Arc<Mutex<Slot>>]>,
    /// One permit per slot: waiters queue here in order, and a permit always finds a slot free.
    permits: Arc<Semaphore>,
    next: Arc<AtomicUsize>,
    opts: Arc<PgConnectOptions>,
    closed: Arc<AtomicBool>,
}

impl std::fmt::Debug for PgConns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PgConns")
    }
}

/// A connection in use, until dropped. The slot is let go before the permit, so whoever gets
/// the permit next finds it free. Dropped in a transaction (a request cancelled half way), it
/// keeps both and starts a task that rolls the transaction back first: the rows it locked are
/// free again at once, not when the slot's next user comes, which under little load could be
/// long after a shopper's retry began waiting on them.
pub struct PgConn {
    held: Option<(OwnedMutexGuard<Slot>, OwnedSemaphorePermit)>,
}

impl Drop for PgConn {
    fn drop(&mut self) {
        let Some((mut slot, permit)) = self.held.take() else {
            return;
        };
        if !slot.in_tx {
            drop(slot);
            drop(permit);
            return;
        }
        // Outside a runtime (the process is ending) the slot's next user rolls back instead.
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        rt.spawn(async move {
            rollback_abandoned(&mut slot).await;
            drop(slot);
            drop(permit);
        });
    }
}

/// Rolls back the transaction a slot's previous user left open; a connection that cannot
/// even do that is dropped (the slot connects again on next use).
async fn rollback_abandoned(slot: &mut Slot) {
    if !slot.in_tx {
        return;
    }
    slot.in_tx = false;
    if let Some(c) = slot.conn.as_mut() {
        if let Err(e) = sqlx::query("ROLLBACK").execute(c).await {
            tracing::debug!(error = %e, "rollback of an abandoned transaction");
            slot.conn = None;
        }
    }
}

impl PgConns {
    /// `size` connections at most, opened when first needed; one is opened now, to fail early
    /// on a wrong URL.
    pub async fn connect(opts: PgConnectOptions, size: usize) -> Result<PgConns, sqlx::Error> {
        let first = opts.connect().await?;
        let mut slots = vec![Arc::new(Mutex::new(Slot {
            conn: Some(first),
            in_tx: false,
        }))];
        slots.extend((1..size).map(|_| Arc::new(Mutex::new(Slot::default()))));
        Ok(PgConns {
            slots: slots.into(),
            permits: Arc::new(Semaphore::new(size)),
            next: Arc::default(),
            opts: Arc::new(opts),
            closed: Arc::default(),
        })
    }

    /// A connection, waiting in line when all are busy (at most [`ACQUIRE_TIMEOUT`], connecting
    /// included). A transaction its previous user left open is rolled back first.
    pub async fn acquire(&self) -> Result<PgConn, sqlx::Error> {
        if self.closed.load(Ordering::Acquire) {
            return Err(sqlx::Error::PoolClosed);
        }
        tokio::time::timeout(ACQUIRE_TIMEOUT, self.acquire_inner())
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)?
    }

    async fn acquire_inner(&self) -> Result<PgConn, sqlx::Error> {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| sqlx::Error::PoolClosed)?;
        let n = self.slots.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        let mut slot = 'found: {
            for i in start.. {
                if let Ok(s) = Arc::clone(&self.slots[i % n]).try_lock_owned() {
                    break 'found s;
                }
                if (i - start) % n == n - 1 {
                    tokio::task::yield_now().await;
                }
            }
            unreachable!("the scan above only ends by finding a slot")
        };
        // Left open by a user whose rollback task could not run (no runtime at its drop).
        rollback_abandoned(&mut slot).await;
        if slot.conn.is_none() {
            slot.conn = Some(self.opts.connect().await?);
        }
        Ok(PgConn {
            held: Some((slot, permit)),
        })
    }

    /// Closes every connection; later statements fail with `PoolClosed`.
    pub async fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.permits.close();
        for s in self.slots.iter() {
            if let Some(c) = s.lock().await.conn.take() {
                if let Err(e) = sqlx::Connection::close(c).await {
                    tracing::debug!(error = %e, "closing a connection");
                }
            }
        }
    }
}

impl PgConn {
    fn slot(&mut self) -> &mut Slot {
        &mut self
            .held
            .as_mut()
            .expect("a connection holds its slot until dropped")
            .0
    }

    /// The connection (always there once acquired).
    pub fn conn(&mut self) -> &mut PgConnection {
        self.slot()
            .conn
            .as_mut()
            .expect("acquire leaves a connection in the slot")
    }

    /// Marks a transaction begun (or ended) on this connection. Set before the BEGIN is sent:
    /// a caller cancelled while waiting for its answer leaves a transaction open on the server
    /// all the same, and the flag is what gets it rolled back.
    pub(crate) fn set_in_tx(&mut self, in_tx: bool) {
        self.slot().in_tx = in_tx;
    }

    /// Looks at a statement's result: an error that means the connection is gone drops it, so
    /// the slot's next user connects again instead of failing the same way.
    pub fn note<T>(&mut self, r: &Result<T, sqlx::Error>) {
        if let Err(e) = r {
            if breaks_connection(e) {
                let slot = self.slot();
                slot.conn = None;
                slot.in_tx = false;
            }
        }
    }
}

/// Errors after which a connection cannot be used again: I/O and protocol failures, and the
/// server ending the session (SQLSTATE class 08, connection exception; 57P0x, shutdown).
fn breaks_connection(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(d) => d
            .code()
            .is_some_and(|c| c.starts_with("08") || c.starts_with("57P0")),
        _ => false,
    }
}
