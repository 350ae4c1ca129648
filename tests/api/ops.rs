//! Operations endpoints (issue 20, item 9): liveness, readiness and Prometheus metrics, the
//! latter never public by default.

use kakehashi::config::Redacted;

use crate::helpers::*;

async fn get_with(app: &TestApp, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut r = reqwest::Client::new().get(format!("{}{path}", app.base));
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    let r = r.send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// `/healthz` says the process is up; `/readyz` says the database answers, and 503 once it
/// does not (the pool closed) while `/healthz` stays 200.
async fn health_and_readiness(app: TestApp) {
    assert_eq!(get_with(&app, "/healthz", &[]).await, (200, "ok".into()));
    assert_eq!(get_with(&app, "/readyz", &[]).await.0, 200);
    match &app.db {
        kakehashi::db::Db::Sqlite { read, write } => {
            read.close().await;
            write.close().await;
        }
        kakehashi::db::Db::Postgres(p) => p.close().await,
    }
    assert_eq!(get_with(&app, "/readyz", &[]).await.0, 503);
    assert_eq!(get_with(&app, "/healthz", &[]).await.0, 200);
}
both!(health_and_readiness);

/// A Prometheus metric line's value, if the line (name and labels, as rendered) is there.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Direct loopback scrapes get Prometheus text: requests by route class and status, the
/// latency histogram, queue depths, payment status changes. Through a proxy (a `Forwarded`
/// or `X-Forwarded-For` header, as nginx adds) the answer is 404, like any unknown path.
async fn metrics_on_loopback_only(app: TestApp) {
    let m = app.merchant().await;
    // A shopper request and a payment status change (a konbini number's issue) to count.
    let path = app.choose(&m, "metrics-1", 1200, "konbini", UA_PC).await;
    let body = app.get(&path, UA_PC).await.text().await.unwrap();
    let csrf = hidden(&body, "csrf");
    let r = app
        .post_form(
            &path,
            UA_PC,
            &[("csrf", &csrf), ("chain", "lawson"), ("confirm", "1")],
        )
        .await;
    assert_eq!(r.status(), 303, "konbini number issued");

    let (s, text) = get_with(&app, "/metrics", &[]).await;
    assert_eq!(s, 200);
    assert!(
        value(
            &text,
            r#"kakehashi_http_requests_total{route="shopper",status="200"}"#
        )
        .is_some_and(|v| v >= 1.0),
        "{text}"
    );
    assert!(
        value(
            &text,
            r#"kakehashi_http_request_duration_seconds_bucket{route="shopper",le="+Inf"}"#
        )
        .is_some_and(|v| v >= 1.0),
        "a histogram, not a summary: {text}"
    );
    assert!(
        value(&text, r#"kakehashi_queue_depth{queue="notifications"}"#).is_some(),
        "{text}"
    );
    assert!(
        value(&text, r#"kakehashi_queue_depth{queue="messages"}"#).is_some(),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with(r#"kakehashi_payment_status_changes_total{method="konbini""#)),
        "{text}"
    );
    assert!(
        !text.contains("/pay/"),
        "no path (session tokens) in labels"
    );

    for proxied in [
        ("x-forwarded-for", "203.0.113.9"),
        ("forwarded", "for=203.0.113.9;proto=https"),
    ] {
        let (s, text) = get_with(&app, "/metrics", &[proxied]).await;
        assert_eq!(s, 404, "{proxied:?}");
        assert!(!text.contains("kakehashi_"), "{proxied:?}");
    }
}
both!(metrics_on_loopback_only);

/// With `KAKEHASHI_METRICS_TOKEN`, the bearer token is what counts: without it or with a wrong
/// one even a loopback client gets 404; with it a scraper behind a proxy reads the metrics.
async fn metrics_behind_a_token(app: TestApp) {
    assert_eq!(get_with(&app, "/metrics", &[]).await.0, 404);
    let wrong = [("authorization", "Bearer nope")];
    assert_eq!(get_with(&app, "/metrics", &wrong).await.0, 404);
    let right = [
        ("authorization", "Bearer s3cret-scrape"),
        ("x-forwarded-for", "203.0.113.9"),
    ];
    let (s, text) = get_with(&app, "/metrics", &right).await;
    assert_eq!(s, 200);
    assert!(text.contains("kakehashi_queue_depth"), "{text}");
}

mod metrics_behind_a_token {
    use crate::helpers::{spawn_app_with, Backend};
    fn token(c: &mut kakehashi::config::Config) {
        c.metrics_token = Some(super::Redacted("s3cret-scrape".into()));
    }
    #[tokio::test]
    async fn sqlite() {
        let app = spawn_app_with(Backend::Sqlite, token).await.unwrap();
        super::metrics_behind_a_token(app).await;
    }
    #[tokio::test]
    async fn postgres() {
        if let Some(app) = spawn_app_with(Backend::Postgres, token).await {
            super::metrics_behind_a_token(app).await;
        }
    }
}
