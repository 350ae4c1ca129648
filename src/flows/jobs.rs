//! The background jobs: bank-net and wallet timeouts, monthly carrier charges, number issues
//! the institution never answered, and the reconciliation sweeps of processor-served carrier,
//! number and wallet payments; run by the supervisor on every instance. Each change is
//! conditional, so instances share the work safely.

use crate::db::Db;

/// The background jobs of the redirect methods: bank-net and wallet timeouts, monthly carrier
/// charges and the processor reconciliation sweep.
/// Runs until `stop` is cancelled; every instance may run it (each change is conditional).
pub async fn run_jobs(
    db: Db,
    registry: std::sync::Arc<crate::connectors::registry::Registry>,
    wake: std::sync::Arc<tokio::sync::Notify>,
    clock: std::sync::Arc<dyn crate::context::Clock>,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(30));
    // Processor numbers wait for days: they are asked about every tenth run only.
    let mut runs: u64 = 0;
    loop {
        // Stops between runs, never inside one (a carrier charge is not cut off halfway).
        tokio::select! {
            biased;
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = clock.now_ms();
        match crate::flows::bank::timeout_due(&db, now).await {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(count = n, "bank-net payments timed out");
                wake.notify_one();
            }
            Err(e) => tracing::error!(error = %e, "bank-net timeout job failed"),
        }
        // The wallet sweep first: a processor payment past its timeout is cancelled at the
        // processor before the timeout job would time it out here alone.
        match crate::flows::wallet::reconcile(&db, &registry, now).await {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(count = n, "processor wallet payments reconciled");
                wake.notify_one();
            }
            Err(e) => tracing::error!(error = %e, "wallet reconciliation failed"),
        }
        match crate::flows::wallet::timeout_due(&db, now).await {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(count = n, "wallet payments timed out");
                wake.notify_one();
            }
            Err(e) => tracing::error!(error = %e, "wallet timeout job failed"),
        }
        match crate::flows::konbini::resume_issuing(&db, &registry, now).await {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(count = n, "stuck number issues resolved");
                wake.notify_one();
            }
            Err(e) => tracing::error!(error = %e, "number issuing sweep failed"),
        }
        match crate::flows::carrier::charge_due_subscriptions(&db, &registry, now).await {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(count = n, "continuous carrier charges made");
                wake.notify_one();
            }
            Err(e) => tracing::error!(error = %e, "continuous carrier billing job failed"),
        }
        let numbers = runs.is_multiple_of(10);
        runs += 1;
        match crate::flows::carrier_sync::reconcile(&db, &registry, now, numbers).await {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(count = n, "processor payments reconciled");
                wake.notify_one();
            }
            Err(e) => tracing::error!(error = %e, "processor reconciliation failed"),
        }
    }
}
