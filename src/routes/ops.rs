//! Operations endpoints: liveness (`/healthz`), readiness (`/readyz`) and Prometheus metrics
//! (`/metrics`, loopback or bearer token only).

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::db::stats;
use crate::signing::hmac_bytes;
use crate::state::AppState;

/// `GET /healthz`: the process is up and serving (no dependency is checked, so a database
/// outage does not get every instance restarted).
pub async fn healthz() -> &'static str {
    "ok"
}

/// `GET /readyz`: 200 when the database answers, 503 otherwise or once the instance is
/// stopping (draining), so the balancer sends no shopper to an instance that cannot serve them
/// or is about to go away.
pub async fn readyz(State(state): State<AppState>) -> Response {
    if state.draining.load(std::sync::atomic::Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, "draining").into_response();
    }
    match stats::ping(&state.db).await {
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "readiness: database unreachable");
            (StatusCode::SERVICE_UNAVAILABLE, "database unreachable").into_response()
        }
    }
}

/// Who may read `/metrics`: with `KAKEHASHI_METRICS_TOKEN` set, whoever sends it as a bearer
/// token; without, only a direct loopback client. A request that came through a proxy
/// (`Forwarded` / `X-Forwarded-For`) is not direct, even though the proxy's own address is
/// loopback: the public must never see the metrics by default.
fn may_read_metrics(state: &AppState, peer: &SocketAddr, headers: &HeaderMap) -> bool {
    if let Some(token) = &state.config.metrics_token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        // Compare MACs so timing tells nothing about the token.
        return hmac_bytes(&state.secret, given.as_bytes())
            == hmac_bytes(&state.secret, token.0.as_bytes());
    }
    let proxied = headers.contains_key("forwarded") || headers.contains_key("x-forwarded-for");
    peer.ip().is_loopback() && !proxied
}

/// `GET /metrics`: Prometheus text format. Queue depths are read from the database at scrape
/// time, so every instance reports the same (shared) value: aggregate them with `max`.
pub async fn metrics(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    if !may_read_metrics(&state, &peer, &headers) {
        // 404, as for any unknown path: nothing tells a prober that metrics exist here.
        return super::assets::not_found().await.into_response();
    }
    let handle = crate::telemetry::handle();
    let now = state.now_ms();
    use crate::domain::message::Channel;
    for (queue, depth) in [
        ("notifications", stats::notification_depth(&state.db).await),
        ("messages", stats::message_depth(&state.db).await),
        (
            "messages_email",
            stats::message_depth_on(&state.db, Channel::Email).await,
        ),
        (
            "messages_sms",
            stats::message_depth_on(&state.db, Channel::Sms).await,
        ),
        ("sms_requests", stats::sms_request_depth(&state.db).await),
    ] {
        match depth {
            Ok(d) => {
                metrics::gauge!("kakehashi_queue_depth", "queue" => queue).set(d.pending as f64);
                let age = d.oldest_created_at.map_or(0, |t| (now - t).max(0));
                metrics::gauge!("kakehashi_queue_oldest_age_seconds", "queue" => queue)
                    .set(age as f64 / 1000.0);
            }
            Err(e) => tracing::warn!(error = %e, queue, "metrics: queue depth"),
        }
    }
    if let Some(w) = state.db.write_stats() {
        metrics::counter!("kakehashi_sqlite_transactions_total").absolute(w.transactions);
        metrics::counter!("kakehashi_sqlite_commits_total").absolute(w.commits);
        metrics::counter!("kakehashi_sqlite_relaxed_commits_total").absolute(w.relaxed_commits);
        metrics::gauge!("kakehashi_sqlite_writer_waiting").set(w.waiting as f64);
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        handle.render(),
    )
        .into_response()
}
