//! Prometheus metrics: the process-wide recorder, the per-request middleware, and the text
//! served at `/metrics`. Code anywhere emits through the `metrics` facade (a no-op until the
//! recorder is installed); only this module knows about Prometheus.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Request latency histogram's name and bucket bounds (seconds): page renders take
/// milliseconds, processor calls up to the 30 s request timeout.
pub const REQUEST_SECONDS: &str = "kakehashi_http_request_duration_seconds";
const BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide recorder once (several apps in one process, as in the tests,
/// share it) and returns the handle that renders it.
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(REQUEST_SECONDS.into()), BUCKETS)
            .expect("non-empty buckets")
            .build_recorder();
        let handle = recorder.handle();
        // Fails only if another recorder is already installed; ours then stays unused.
        if let Err(e) = metrics::set_global_recorder(recorder) {
            tracing::warn!(error = %e, "metrics recorder not installed");
        }
        handle
    })
}

/// The class of a route for metric labels: a handful of fixed values, never the path (it can
/// hold a session token) and never anything a client can multiply.
pub fn route_class(route: Option<&str>) -> &'static str {
    let Some(r) = route else {
        return "unmatched";
    };
    let first = r.trim_start_matches('/').split('/').next().unwrap_or("");
    match first {
        "pay" | "checkout" | "s" | "m" | "js" => "shopper",
        "api" => "api",
        "console" => "console",
        "sandbox" | "demo" => "sandbox",
        "webhooks" | "processor-webhooks" => "webhook",
        "assets" | "favicon.ico" => "assets",
        "healthz" | "readyz" | "metrics" => "ops",
        _ => "other",
    }
}

/// Middleware: counts each request by route class and status, and records its latency.
pub async fn track(req: Request, next: Next) -> Response {
    let class = route_class(req.extensions().get::<MatchedPath>().map(|p| p.as_str()));
    let start = Instant::now();
    let resp = next.run(req).await;
    let status = resp.status().as_u16().to_string();
    metrics::counter!("kakehashi_http_requests_total", "route" => class, "status" => status)
        .increment(1);
    metrics::histogram!(REQUEST_SECONDS, "route" => class).record(start.elapsed().as_secs_f64());
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_are_few_and_fixed() {
        assert_eq!(route_class(Some("/pay/{token}/card")), "shopper");
        assert_eq!(route_class(Some("/api/v1/payments/{id}")), "api");
        assert_eq!(route_class(Some("/console/login")), "console");
        assert_eq!(route_class(Some("/metrics")), "ops");
        assert_eq!(route_class(None), "unmatched");
    }
}
