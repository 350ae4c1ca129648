//! Owns the background loops: runs each with a shared cancellation token, logs (and restarts) a
//! loop that stops unexpectedly, and on shutdown cancels them all and waits, bounded, for each to
//! finish the unit of work it is in.
//!
//! The contract with a loop: it takes a [`CancellationToken`], checks it *between* units of work
//! (`tokio::select!` on its tick or wake-up and `token.cancelled()`), and returns once it is
//! cancelled. It never checks it in the middle of a unit, so a graceful stop never leaves one
//! half done. Only when a loop overruns the grace period is it aborted; work that must survive
//! that (a notification being delivered) is recoverable by design (leases expire, ids repeat).

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use tokio::task::{Id, JoinHandle, JoinSet};
pub use tokio_util::sync::CancellationToken;

/// How long a loop that panicked or returned on its own waits before it is started again.
const RESTART_DELAY: Duration = Duration::from_secs(1);

/// The background tasks of one server instance. Dropping it without [`Supervisor::shutdown`]
/// aborts them.
pub struct Supervisor {
    token: CancellationToken,
    tasks: JoinSet<()>,
    names: HashMap<Id, &'static str>,
}

impl Default for Supervisor {
    fn default() -> Self {
        Self::new()
    }
}

impl Supervisor {
    pub fn new() -> Self {
        Supervisor {
            token: CancellationToken::new(),
            tasks: JoinSet::new(),
            names: HashMap::new(),
        }
    }

    /// Runs the loop `make(token)` under `name`. A run that panics, or returns before shutdown,
    /// is logged as an error and started again from `make` after a short pause.
    pub fn spawn<F, Fut>(&mut self, name: &'static str, make: F)
    where
        F: Fn(CancellationToken) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let token = self.token.clone();
        let handle = self.tasks.spawn(async move {
            loop {
                // Its own task, so a panic is caught here; aborted with us (at the grace limit).
                let mut run = AbortOnDrop(tokio::spawn(make(token.clone())));
                match (&mut run.0).await {
                    Ok(()) if token.is_cancelled() => {
                        tracing::info!(task = name, "background task stopped");
                        return;
                    }
                    Ok(()) => tracing::error!(task = name, "background task ended unexpectedly"),
                    Err(e) if e.is_panic() => {
                        let panic = panic_message(e.into_panic());
                        tracing::error!(task = name, panic = %panic, "background task panicked");
                    }
                    Err(_) => return,
                }
                tokio::select! {
                    _ = token.cancelled() => return,
                    _ = tokio::time::sleep(RESTART_DELAY) => {}
                }
                tracing::warn!(task = name, "restarting background task");
            }
        });
        self.names.insert(handle.id(), name);
    }

    /// The names of the running tasks.
    pub fn names(&self) -> Vec<&'static str> {
        let mut v: Vec<_> = self.names.values().copied().collect();
        v.sort_unstable();
        v
    }

    /// Cancels every loop and waits up to `grace` for all of them to return; a loop still
    /// running then is aborted. Returns whether every loop stopped on its own.
    pub async fn shutdown(mut self, grace: Duration) -> bool {
        self.token.cancel();
        let deadline = tokio::time::Instant::now() + grace;
        while !self.tasks.is_empty() {
            match tokio::time::timeout_at(deadline, self.tasks.join_next_with_id()).await {
                Ok(Some(Ok((id, ())))) => {
                    self.names.remove(&id);
                }
                Ok(Some(Err(e))) => {
                    self.names.remove(&e.id());
                }
                Ok(None) => break,
                Err(_) => {
                    tracing::warn!(
                        tasks = ?self.names(),
                        grace_ms = grace.as_millis() as u64,
                        "background tasks did not stop in time; aborting them"
                    );
                    self.tasks.abort_all();
                    while self.tasks.join_next().await.is_some() {}
                    return false;
                }
            }
        }
        true
    }
}

/// A task handle that aborts the task when dropped (a plain `JoinHandle` detaches it).
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// A loop in the expected shape: one unit of work per tick, cancellation between units.
    async fn ticking(token: CancellationToken, units: Arc<AtomicUsize>, unit: Duration) {
        loop {
            tokio::select! {
                _ = token.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_millis(5)) => {}
            }
            tokio::time::sleep(unit).await; // the unit of work: never interrupted
            units.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn shutdown_lets_the_unit_in_flight_finish() {
        let started = Arc::new(AtomicUsize::new(0));
        let done = Arc::new(AtomicUsize::new(0));
        let mut sup = Supervisor::new();
        let (s, d) = (started.clone(), done.clone());
        sup.spawn("slow", move |token| {
            let (s, d) = (s.clone(), d.clone());
            async move {
                loop {
                    tokio::select! {
                        _ = token.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_millis(5)) => {}
                    }
                    s.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    d.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
        while started.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let t = std::time::Instant::now();
        assert!(
            sup.shutdown(Duration::from_secs(5)).await,
            "stopped on its own"
        );
        assert!(t.elapsed() < Duration::from_secs(2));
        assert_eq!(
            started.load(Ordering::SeqCst),
            done.load(Ordering::SeqCst),
            "every unit that started finished"
        );
    }

    #[tokio::test]
    async fn a_loop_that_overruns_the_grace_is_aborted() {
        let mut sup = Supervisor::new();
        let units = Arc::new(AtomicUsize::new(0));
        let u = units.clone();
        sup.spawn("quick", move |t| ticking(t, u.clone(), Duration::ZERO));
        sup.spawn("stubborn", |_token| async {
            tokio::time::sleep(Duration::from_secs(600)).await;
        });
        assert_eq!(sup.names(), vec!["quick", "stubborn"]);
        let t = std::time::Instant::now();
        assert!(!sup.shutdown(Duration::from_millis(200)).await);
        assert!(t.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn a_panicking_loop_is_restarted_until_shutdown() {
        let runs = Arc::new(AtomicUsize::new(0));
        let r = runs.clone();
        let mut sup = Supervisor::new();
        sup.spawn("flaky", move |token| {
            let r = r.clone();
            async move {
                if r.fetch_add(1, Ordering::SeqCst) == 0 {
                    panic!("first run fails");
                }
                token.cancelled().await;
            }
        });
        let t = std::time::Instant::now();
        while runs.load(Ordering::SeqCst) < 2 {
            assert!(t.elapsed() < Duration::from_secs(5), "not restarted");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(sup.shutdown(Duration::from_secs(5)).await);
        assert_eq!(runs.load(Ordering::SeqCst), 2);
    }
}
