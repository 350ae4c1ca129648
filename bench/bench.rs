//! Load benchmark: starts the release server binary on loopback with a fresh SQLite file or
//! PostgreSQL database and measures, in one run, a bare static route (the ceiling), opening a
//! checkout link for the first time (verify + insert + render), re-opening it (verify + read +
//! render), the method-selector POST, a full sandbox card payment, and notification delivery to
//! a local receiver. Prints requests per second, p50 / p99 latency and the server's memory.
//!
//! `bench/run.sh` builds and runs it; see README "Benchmark".

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kakehashi::db::{merchants, outbox, Db};

const CONCURRENCY: usize = 64;

struct Args {
    seconds: u64,
    postgres: Option<String>,
}

fn args() -> Args {
    let mut a = Args {
        seconds: 5,
        postgres: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(x) = it.next() {
        match x.as_str() {
            "--seconds" => a.seconds = it.next().and_then(|s| s.parse().ok()).unwrap_or(5),
            "--postgres" => a.postgres = it.next(),
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

struct Server {
    child: std::process::Child,
    base: String,
    db: Db,
    key_id: String,
    secret: String,
}

impl Server {
    fn memory_kb(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with(field))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

async fn start(database_url: &str) -> Server {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let bin = std::env::var("KAKEHASHI_BIN").unwrap_or_else(|_| "target/release/kakehashi".into());
    let child = std::process::Command::new(bin)
        .env("DATABASE_URL", database_url)
        .env("KAKEHASHI_ADDR", format!("127.0.0.1:{port}"))
        .env("KAKEHASHI_ALLOW_LOOPBACK_CALLBACKS", "1")
        .env("RUST_LOG", "error")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("server binary (cargo build --release first)");
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    for _ in 0..300 {
        if client.get(format!("{base}/healthz")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The server created the demo merchant; sign links with its key like a merchant's cart.
    let db = Db::connect(database_url).await.unwrap();
    // The same master key as the server (if any) opens the demo key.
    let keys = kakehashi::secrets::Keyring::new(
        std::env::var("KAKEHASHI_MASTER_KEY").ok().as_deref(),
        &[],
    )
    .unwrap();
    let (key_id, secret) = loop {
        if let Some(k) = merchants::newest_key(&db, &keys, "m_demo").await.unwrap() {
            break k;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    Server {
        child,
        base,
        db,
        key_id,
        secret,
    }
}

fn link(s: &Server, order_id: &str) -> String {
    let expires = (kakehashi::util::now_ms() / 1000 + 3600).to_string();
    let ret = format!("{}/demo/return", s.base);
    let q = kakehashi::signing::signed_query(
        &s.secret,
        &[
            ("merchant_id", "m_demo"),
            ("key_id", &s.key_id),
            ("order_id", order_id),
            ("amount", "1500"),
            ("item_name", "ベンチマーク商品"),
            ("return_url", &ret),
            ("expires_at", &expires),
        ],
    );
    format!("{}/checkout?{q}", s.base)
}

struct Row {
    name: &'static str,
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
}

/// Runs `op` from CONCURRENCY tasks for `secs` seconds; each call is one timed operation.
async fn load<F, Fut>(name: &'static str, secs: u64, op: F) -> Row
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let op = Arc::new(op);
    let counter = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..CONCURRENCY {
        let (op, counter, errors) = (op.clone(), counter.clone(), errors.clone());
        set.spawn(async move {
            let mut lat = Vec::with_capacity(4096);
            while Instant::now() < deadline {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let t = Instant::now();
                if !op(n).await {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
                lat.push(t.elapsed().as_micros() as u32);
            }
            lat
        });
    }
    let started = Instant::now();
    let mut all = Vec::new();
    while let Some(v) = set.join_next().await {
        all.extend(v.unwrap());
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort_unstable();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0) as f64
            / 1000.0
    };
    Row {
        name,
        rps: all.len() as f64 / elapsed,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        errors: errors.load(Ordering::Relaxed),
    }
}

fn csrf_and_action(body: &str) -> Option<(String, String)> {
    let a = body.find("action=\"")? + 8;
    let action = body[a..].split('"').next()?.replace("&#38;", "&");
    let c = body.find("name=\"csrf\" value=\"")? + 19;
    Some((action, body[c..].split('"').next()?.to_owned()))
}

async fn run(label: &str, database_url: &str, secs: u64) {
    let s = Arc::new(start(database_url).await);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle_kb = s.memory_kb("VmRSS:");
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(CONCURRENCY)
        .build()
        .unwrap();
    let mut rows = Vec::new();

    let (c, base) = (client.clone(), s.base.clone());
    rows.push(
        load("bare static route (/healthz)", secs, move |_| {
            let (c, u) = (c.clone(), format!("{base}/healthz"));
            async move {
                c.get(u)
                    .send()
                    .await
                    .map(|r| r.status().is_success())
                    .unwrap_or(false)
            }
        })
        .await,
    );

    let run_id = kakehashi::util::random_id("b", 6);
    let (c, s2, rid) = (client.clone(), s.clone(), run_id.clone());
    rows.push(
        load("open checkout link, first time (insert)", secs, move |n| {
            let (c, u) = (c.clone(), link(&s2, &format!("{rid}-new-{n}")));
            async move {
                c.get(u)
                    .send()
                    .await
                    .map(|r| r.status().is_success())
                    .unwrap_or(false)
            }
        })
        .await,
    );

    let same = link(&s, &format!("{run_id}-same"));
    let first = client
        .get(&same)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let c = client.clone();
    let same2 = same.clone();
    rows.push(
        load("re-open checkout link (read + render)", secs, move |_| {
            let (c, u) = (c.clone(), same2.clone());
            async move {
                c.get(u)
                    .send()
                    .await
                    .map(|r| r.status().is_success())
                    .unwrap_or(false)
            }
        })
        .await,
    );

    let (action, csrf) = csrf_and_action(&first).expect("selector form");
    let (c, base) = (client.clone(), s.base.clone());
    rows.push(
        load("method selector POST", secs, move |_| {
            let (c, u, body) = (
                c.clone(),
                format!("{base}{action}"),
                format!("csrf={csrf}&method=card"),
            );
            async move {
                c.post(u)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(body)
                    .send()
                    .await
                    .map(|r| r.status().as_u16() == 303)
                    .unwrap_or(false)
            }
        })
        .await,
    );

    let (c, s2, rid) = (client.clone(), s.clone(), run_id.clone());
    rows.push(
        load(
            "full card payment (4 requests, frictionless)",
            secs,
            move |n| {
                let (c, s2, order) = (c.clone(), s2.clone(), format!("{rid}-pay-{n}"));
                async move { card_payment(&c, &s2, &order).await.unwrap_or(false) }
            },
        )
        .await,
    );

    rows.push(notifications(&s, secs).await);
    let peak_kb = s.memory_kb("VmHWM:");

    let bare = rows[0].rps;
    println!("\n## {label}\n");
    println!("| scenario | req/s | % of bare | p50 ms | p99 ms | errors |");
    println!("|---|---:|---:|---:|---:|---:|");
    for r in &rows {
        println!(
            "| {} | {:.0} | {:.0}% | {:.2} | {:.2} | {} |",
            r.name,
            r.rps,
            100.0 * r.rps / bare,
            r.p50_ms,
            r.p99_ms,
            r.errors
        );
    }
    println!("\nserver memory: idle {:.1} MB, peak {:.1} MB (concurrency {CONCURRENCY}, {secs} s per scenario)", idle_kb as f64 / 1024.0, peak_kb as f64 / 1024.0);
}

async fn card_payment(c: &reqwest::Client, s: &Server, order: &str) -> Option<bool> {
    let body = c.get(link(s, order)).send().await.ok()?.text().await.ok()?;
    let (action, csrf) = csrf_and_action(&body)?;
    let r = c
        .post(format!("{}{action}", s.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf={csrf}&method=card"))
        .send()
        .await
        .ok()?;
    let card_url = r.headers().get("location")?.to_str().ok()?.to_owned();
    let form =
        format!("csrf={csrf}&number=4111111111111111&exp_month=12&exp_year=30&cvc=123&option=lump");
    let r = c
        .post(format!("{}{card_url}", s.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .ok()?;
    let result = r.headers().get("location")?.to_str().ok()?.to_owned();
    let page = c
        .get(format!("{}{result}", s.base))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    Some(page.contains("result-success"))
}

/// Queues `n` events for a local receiver and measures how fast the server delivers them.
async fn notifications(s: &Server, secs: u64) -> Row {
    use axum::routing::post;
    let got = Arc::new(AtomicU64::new(0));
    let g = got.clone();
    let app = axum::Router::new().route(
        "/notify",
        post(move || {
            let g = g.clone();
            async move {
                g.fetch_add(1, Ordering::Relaxed);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/notify", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    merchants::set_field(&s.db, "m_demo", "callback_url", &url)
        .await
        .unwrap();
    // Let the earlier card-payment events drain before timing.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = got.load(Ordering::Relaxed);
    let n = (2000 * secs).min(20_000);
    // Timed from the first event queued to the last one received: enqueueing runs alongside
    // delivery, as it does when payments happen.
    let started = Instant::now();
    for _ in 0..n {
        outbox::ping(&s.db, "m_demo", kakehashi::util::now_ms())
            .await
            .unwrap();
    }
    while got.load(Ordering::Relaxed) - before < n && started.elapsed() < Duration::from_secs(120) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let delivered = got.load(Ordering::Relaxed) - before;
    Row {
        name: "notification delivery (events/s)",
        rps: delivered as f64 / started.elapsed().as_secs_f64(),
        p50_ms: 0.0,
        p99_ms: 0.0,
        errors: n.saturating_sub(delivered),
    }
}

#[tokio::main]
async fn main() {
    let a = args();
    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite://{}", dir.path().join("bench.db").display());
    run("SQLite", &sqlite, a.seconds).await;
    if let Some(pg) = a.postgres {
        use sqlx::Connection;
        let mut admin = sqlx::PgConnection::connect(&pg)
            .await
            .expect("PostgreSQL reachable");
        let name = kakehashi::util::random_id("bench", 8);
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .unwrap();
        let url = format!("{}/{name}", pg.rsplit_once('/').unwrap().0);
        run("PostgreSQL", &url, a.seconds).await;
        let _ = sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
            .execute(&mut admin)
            .await;
    }
}
