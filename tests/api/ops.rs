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

/// PostgreSQL ending the server's sessions (a restart, a failover, `pg_terminate_backend`)
/// fails at most the one statement that finds each connection gone: that connection is then
/// dropped and the next statement on its slot connects again. Without the drop, a broken
/// connection would fail every statement given to it.
#[tokio::test]
async fn postgres_connections_come_back_after_the_server_ends_them() {
    let Some(app) = spawn_app(Backend::Postgres).await else {
        return;
    };
    // Sequential reads rotate over every connection slot, opening each one.
    let mut pids = std::collections::BTreeSet::new();
    for _ in 0..64 {
        let pid: i32 =
            kakehashi::on_db!(&app.db, c => sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(c)
            .await)
            .unwrap();
        pids.insert(pid);
    }
    assert!(pids.len() >= 8, "the reads used {} connections", pids.len());
    let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(&pg_url())
        .await
        .unwrap();
    for pid in &pids {
        sqlx::query("SELECT pg_terminate_backend($1)")
            .bind(pid)
            .execute(&mut admin)
            .await
            .unwrap();
    }
    let mut failed = 0;
    for _ in 0..64 {
        if get_with(&app, "/readyz", &[]).await.0 != 200 {
            failed += 1;
        }
    }
    assert!(
        failed <= pids.len() + 2,
        "{failed} of 64 readiness checks failed"
    );
    for _ in 0..32 {
        assert_eq!(get_with(&app, "/readyz", &[]).await.0, 200);
    }
    // Transactions and writes work again too.
    let m = app.merchant().await;
    let f = app.fields(&m, "ord-after-terminate", 1000, &[]);
    assert_eq!(app.open(&m, &f, UA_PC).await.0, 200);
    assert_eq!(app.count("checkouts").await, 1);
}

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
    for queue in ["messages", "messages_email", "messages_sms", "sms_requests"] {
        assert!(
            value(
                &text,
                &format!(r#"kakehashi_queue_depth{{queue="{queue}"}}"#)
            )
            .is_some(),
            "{queue}: {text}"
        );
    }
    assert!(
        text.lines()
            .any(|l| l.starts_with(r#"kakehashi_payment_status_changes_total{method="konbini""#)),
        "{text}"
    );
    assert!(
        !text.contains("/pay/"),
        "no path (session tokens) in labels"
    );
    // SQLite's writer: the checkout and the number's issue were write transactions, each
    // committed (alone or in a group).
    if !app.db.is_postgres() {
        let ended = value(&text, "kakehashi_sqlite_transactions_total").unwrap_or(0.0);
        let commits = value(&text, "kakehashi_sqlite_commits_total").unwrap_or(0.0);
        assert!(ended >= 2.0 && commits >= 1.0 && commits <= ended, "{text}");
        assert!(
            value(&text, "kakehashi_sqlite_writer_waiting").is_some(),
            "{text}"
        );
    }

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

/// Notification deliveries are counted by outcome: a refused attempt (the receiver answers
/// 500, so it is retried) and the delivery that follows.
async fn notification_attempts_are_counted(app: TestApp) {
    let rx = Receiver::start().await;
    rx.respond(&[(500, "down")]);
    let m = app
        .merchant_with(|n| n.callback_url = Some(rx.url.clone()))
        .await;
    let before = get_with(&app, "/metrics", &[]).await.1;
    let count = |text: &str, outcome: &str| {
        value(
            text,
            &format!(r#"kakehashi_notification_attempts_total{{outcome="{outcome}"}}"#),
        )
        .unwrap_or(0.0)
    };
    kakehashi::db::outbox::ping(&app.db, &m.id, app.state.now_ms())
        .await
        .unwrap();
    rx.wait_for("a failed attempt, then the delivery", |h| h.len() >= 2)
        .await;
    let after = eventually("both attempts counted", || async {
        let text = get_with(&app, "/metrics", &[]).await.1;
        // The counter is process-wide (other tests deliver too): at least ours were added.
        (count(&text, "retry") > count(&before, "retry")
            && count(&text, "delivered") > count(&before, "delivered"))
        .then_some(text)
    })
    .await;
    assert!(after.contains("# TYPE kakehashi_notification_attempts_total counter"));
}
both!(notification_attempts_are_counted);

/// Every response carries a request id, and the request's log lines name it. Without trusted
/// proxies an incoming `X-Request-Id` is ignored (anyone could forge one): a fresh id is made.
async fn request_ids_are_generated_echoed_and_logged(app: TestApp) {
    let r = app.get("/healthz", UA_PC).await;
    let id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert!(id.starts_with("req_"), "{id}");
    let other = app.get("/healthz", UA_PC).await.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_ne!(id, other, "one id per request");
    let r = reqwest::Client::new()
        .get(format!("{}/healthz", app.base))
        .header("x-request-id", "forged-by-client")
        .send()
        .await
        .unwrap();
    let echoed = r.headers()["x-request-id"].to_str().unwrap();
    assert_ne!(
        echoed, "forged-by-client",
        "untrusted peers' ids are not taken"
    );
    assert!(echoed.starts_with("req_"));
    eventually("the request's log line", || async {
        logs()
            .lines()
            .any(|l| l.contains(&format!("request_id={id}")) && l.contains("finished processing"))
            .then_some(())
    })
    .await;
    assert!(
        !logs().contains("request_id=forged-by-client"),
        "a forged id never reaches the logs"
    );
}
both!(request_ids_are_generated_echoed_and_logged);

/// From a trusted proxy (`KAKEHASHI_TRUSTED_PROXIES`), a well-formed `X-Request-Id` is taken,
/// so nginx's id joins its access log to ours; a malformed one is replaced.
async fn a_trusted_proxys_request_id_is_taken(app: TestApp) {
    let id_for = |given: &'static str| {
        let base = app.base.clone();
        async move {
            let r = reqwest::Client::new()
                .get(format!("{base}/healthz"))
                .header("x-request-id", given)
                .send()
                .await
                .unwrap();
            r.headers()["x-request-id"].to_str().unwrap().to_owned()
        }
    };
    let nginx_id = "4f1c2a9be0d34c8e9a1b2c3d4e5f6a7b";
    assert_eq!(id_for(nginx_id).await, nginx_id);
    for bad in ["has space", "quote\"d", "x;y=z"] {
        let got = id_for(bad).await;
        assert!(got.starts_with("req_"), "{bad:?} replaced by {got}");
    }
    let long: &'static str = "a".repeat(65).leak();
    assert!(id_for(long).await.starts_with("req_"), "too long");
    eventually("the proxy's id in the log", || async {
        logs()
            .contains(&format!("request_id={nginx_id}"))
            .then_some(())
    })
    .await;
}

mod a_trusted_proxys_request_id_is_taken {
    use crate::helpers::{spawn_app_with, Backend};
    fn loopback_proxy(c: &mut kakehashi::config::Config) {
        c.trusted_proxies = kakehashi::client_addr::parse_list("127.0.0.1/32").unwrap();
    }
    #[tokio::test]
    async fn sqlite() {
        let app = spawn_app_with(Backend::Sqlite, loopback_proxy)
            .await
            .unwrap();
        super::a_trusted_proxys_request_id_is_taken(app).await;
    }
    #[tokio::test]
    async fn postgres() {
        if let Some(app) = spawn_app_with(Backend::Postgres, loopback_proxy).await {
            super::a_trusted_proxys_request_id_is_taken(app).await;
        }
    }
}
