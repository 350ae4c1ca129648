//! Load benchmark (issue #21). For SQLite and, when given, PostgreSQL: starts the release server
//! (with the bench-only limit route on), prepares what the load needs — signed links, opened
//! sessions with their CSRF tokens — as request lists in files, drives each scenario with `wrk`
//! in its own process (bench/wrk/*.lua read those files), measures notification delivery to a
//! local receiver itself, and reads the server's memory. Writes
//! bench/results/<UTC date-time>-<commit>.json and prints the table with issue #21's targets.
//!
//! `bench/run.sh` builds and runs it; see bench/README.md.

mod load;
mod report;
mod server;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::StreamExt;
use serde_json::json;

use kakehashi::db::{merchants, outbox};
use load::{Wrk, WrkResult, CONNECTIONS};
use report::{Memory, Results, Scenario};
use server::Server;

/// Every request says it is a PC browser, so every scenario renders the same (PC) layout.
const UA: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";

/// Fresh links written for "first open" per second of the scenario: well above what the server
/// serves, so none is opened twice (a re-used one is reported).
const FIRST_OPEN_LINKS_PER_S: u64 = 15_000;
/// Links for the card payment scenario per second (each is one payment).
const PAYMENT_LINKS_PER_S: u64 = 4_000;
/// Concurrent writers queueing the delivery scenario's events.
const ENQUEUERS: usize = 8;
/// Opened checkouts the selector POSTs cycle through: 64 connections do not all write one row.
const SELECTOR_SESSIONS: usize = 2048;

/// The scenarios, in the order they run.
const SCENARIOS: [&str; 7] = [
    "bare",
    "limit",
    "first_open",
    "reopen",
    "selector",
    "card_payment",
    "delivery",
];

struct Args {
    seconds: u64,
    postgres: Option<String>,
    /// A file holding `{"scenarios": [...]}` (bench_search's output) to add to the results.
    merge: Option<PathBuf>,
    out_dir: PathBuf,
    /// Only these scenarios (the bare route is always measured: every ratio needs it).
    only: Option<Vec<String>>,
    /// Skip SQLite (with `--postgres`: profile PostgreSQL alone).
    skip_sqlite: bool,
}

impl Args {
    fn wants(&self, scenario: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|o| scenario == "bare" || o.iter().any(|x| x == scenario))
    }
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args {
        seconds: 5,
        postgres: None,
        merge: None,
        out_dir: PathBuf::from("bench/results"),
        only: None,
        skip_sqlite: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(x) = it.next() {
        let mut value = || it.next().with_context(|| format!("{x} needs a value"));
        match x.as_str() {
            "--seconds" => a.seconds = value()?.parse().context("--seconds")?,
            "--postgres" => a.postgres = Some(value()?),
            "--merge" => a.merge = Some(value()?.into()),
            "--out-dir" => a.out_dir = value()?.into(),
            "--only" => {
                let list: Vec<String> = value()?.split(',').map(str::to_owned).collect();
                for x in &list {
                    anyhow::ensure!(
                        SCENARIOS.contains(&x.as_str()),
                        "--only: unknown scenario {x}; one of {}",
                        SCENARIOS.join(", ")
                    );
                }
                a.only = Some(list);
            }
            "--skip-sqlite" => a.skip_sqlite = true,
            other => anyhow::bail!(
                "unknown argument {other}; usage: bench [--seconds N] [--postgres URL] \
                 [--merge FILE] [--out-dir DIR] [--only SCENARIO,…] [--skip-sqlite]"
            ),
        }
    }
    anyhow::ensure!(a.seconds > 0, "--seconds must be at least 1");
    Ok(a)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = args()?;
    std::process::Command::new("wrk")
        .arg("--version")
        .output()
        .context("wrk is not installed (Debian: apt-get install wrk)")?;
    let started = time::OffsetDateTime::now_utc();
    let machine = report::Machine {
        cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
        kernel: read_trimmed("/proc/sys/kernel/osrelease"),
        loadavg: read_trimmed("/proc/loadavg")
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
    };
    let (commit, dirty) = git_commit();
    let mut scenarios = Vec::new();
    let mut memory = BTreeMap::new();

    let dir = tempfile::tempdir()?;
    let sqlite = format!("sqlite://{}", dir.path().join("bench.db").display());
    if let Some(pg) = &a.postgres {
        checkpoint(pg).await;
    }
    if !a.skip_sqlite {
        run_db("sqlite", &sqlite, &a, &mut scenarios, &mut memory).await?;
    }
    if let Some(pg) = &a.postgres {
        use sqlx::Connection;
        let mut admin = sqlx::PgConnection::connect(pg)
            .await
            .context("PostgreSQL reachable")?;
        let name = kakehashi::util::random_id("bench", 8);
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await?;
        let url = format!(
            "{}/{name}",
            pg.rsplit_once('/').context("a PostgreSQL URL")?.0
        );
        // The SQLite scenarios wrote their share of PostgreSQL's checkpoint-free time: start
        // these from clean buffers too.
        checkpoint(pg).await;
        let outcome = run_db("postgres", &url, &a, &mut scenarios, &mut memory).await;
        let _ = sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
            .execute(&mut admin)
            .await;
        outcome?;
    }
    if let Some(file) = &a.merge {
        match merged(file) {
            Ok(more) => scenarios.extend(more),
            Err(e) => eprintln!("not merged: {}: {e:#}", file.display()),
        }
    }

    let results = Results {
        commit,
        dirty,
        date: started
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        seconds: a.seconds,
        connections: CONNECTIONS,
        machine,
        scenarios,
        memory,
    };
    results.print();
    std::fs::create_dir_all(&a.out_dir)?;
    let stamp = started
        .format(time::macros::format_description!(
            "[year]-[month]-[day]T[hour]-[minute]-[second]Z"
        ))
        .unwrap_or_default();
    let short = &results.commit[..results.commit.len().min(7)];
    let path = a.out_dir.join(format!("{stamp}-{short}.json"));
    std::fs::write(&path, serde_json::to_string_pretty(&results)? + "\n")?;
    println!("\nresults: {}", path.display());
    Ok(())
}

/// The scenarios of `bench_search --json`'s output.
fn merged(file: &Path) -> anyhow::Result<Vec<Scenario>> {
    #[derive(serde::Deserialize)]
    struct Output {
        scenarios: Vec<Scenario>,
    }
    let text = std::fs::read_to_string(file)?;
    Ok(serde_json::from_str::<Output>(&text)?.scenarios)
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// The commit built, and whether the tree had uncommitted changes to tracked files.
fn git_commit() -> (String, bool) {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let commit = git(&["rev-parse", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let dirty =
        git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    (commit, dirty)
}

/// Writes a request list for bench/wrk/*.lua: one `METHOD<TAB>path[<TAB>body]` a line.
fn write_requests(path: &Path, lines: impl Iterator<Item = String>) -> anyhow::Result<()> {
    use std::io::Write;
    let mut w = std::io::BufWriter::new(std::fs::File::create(path)?);
    for l in lines {
        writeln!(w, "{l}")?;
    }
    w.flush()?;
    Ok(())
}

fn csrf_and_action(body: &str) -> Option<(String, String)> {
    let a = body.find("action=\"")? + 8;
    let action = body[a..].split('"').next()?.replace("&#38;", "&");
    let c = body.find("name=\"csrf\" value=\"")? + 19;
    Some((action, body[c..].split('"').next()?.to_owned()))
}

/// A card number the sandbox authorizes without a challenge, expiring in three years.
fn card_fields() -> String {
    let year = (time::OffsetDateTime::now_utc().year() + 3) % 100;
    format!("number=4111111111111111&exp_month=12&exp_year={year:02}&cvc=123&option=lump")
}

/// The request-list scenarios' row: rate, latency and errors as wrk saw them.
fn row(
    db: &str,
    id: &str,
    r: &WrkResult,
    bare_rps: Option<f64>,
    extra: serde_json::Value,
) -> Scenario {
    let rps = r.rps();
    Scenario {
        db: db.into(),
        scenario: id.into(),
        rps,
        p50_ms: Some(r.p50_us / 1000.0),
        p99_ms: Some(r.p99_us / 1000.0),
        errors: r.errors.total(),
        ratio_to_bare: bare_rps.filter(|b| *b > 0.0).map(|b| rps / b),
        extra,
    }
}

async fn run_db(
    db: &str,
    url: &str,
    a: &Args,
    out: &mut Vec<Scenario>,
    memory: &mut BTreeMap<String, Memory>,
) -> anyhow::Result<()> {
    let secs = a.seconds;
    println!("{db}: starting the server and preparing links and sessions…");
    let s = Server::start(url).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle_mb = s.memory_mb("VmRSS:");
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(UA)
        .pool_max_idle_per_host(CONNECTIONS as usize)
        .build()?;
    let files = tempfile::tempdir()?;
    let file = |name: &str| files.path().join(name);
    let run_id = kakehashi::util::random_id("b", 6);

    // Everything is prepared before the first measurement, so preparing loads no scenario.
    let same = s.link_query(&format!("{run_id}-same"));
    let r = client
        .get(format!("{}/checkout?{same}", s.base))
        .send()
        .await?;
    anyhow::ensure!(r.status() == 200, "opening a link: {}", r.status());
    write_requests(&file("bare"), ["GET\t/healthz".to_owned()].into_iter())?;
    write_requests(
        &file("limit"),
        [format!("GET\t/bench/limit?{same}")].into_iter(),
    )?;
    write_requests(
        &file("reopen"),
        [format!("GET\t/checkout?{same}")].into_iter(),
    )?;
    let first_links = (secs * FIRST_OPEN_LINKS_PER_S).min(400_000);
    write_requests(
        &file("first_open"),
        (0..first_links).map(|n| {
            format!(
                "GET\t/checkout?{}",
                s.link_query(&format!("{run_id}-new-{n}"))
            )
        }),
    )?;
    let payment_links = (secs * PAYMENT_LINKS_PER_S).min(100_000);
    write_requests(
        &file("card_payment"),
        (0..payment_links).map(|n| {
            format!(
                "GET\t/checkout?{}",
                s.link_query(&format!("{run_id}-pay-{n}"))
            )
        }),
    )?;
    let sessions: Vec<Option<String>> = futures_util::stream::iter(0..SELECTOR_SESSIONS)
        .map(|n| {
            let (c, url) = (
                client.clone(),
                format!(
                    "{}/checkout?{}",
                    s.base,
                    s.link_query(&format!("{run_id}-sel-{n}"))
                ),
            );
            async move {
                let body = c.get(url).send().await.ok()?.text().await.ok()?;
                let (action, csrf) = csrf_and_action(&body)?;
                Some(format!("POST\t{action}\tcsrf={csrf}&method=card"))
            }
        })
        .buffer_unordered(CONNECTIONS as usize)
        .collect()
        .await;
    let sessions: Vec<String> = sessions.into_iter().flatten().collect();
    anyhow::ensure!(
        sessions.len() == SELECTOR_SESSIONS,
        "opened only {} of {SELECTOR_SESSIONS} selector sessions",
        sessions.len()
    );
    write_requests(&file("selector"), sessions.into_iter())?;

    let wrk = Wrk {
        scripts: Path::new("bench/wrk"),
        base: &s.base,
        seconds: secs,
        user_agent: UA,
    };
    let list = |name: &str| ("BENCH_REQUESTS", file(name).display().to_string());
    let fixed = ("BENCH_STATIC", "1".to_owned());
    let pause = || tokio::time::sleep(Duration::from_secs(1));

    println!("{db}: bare route");
    let bare = wrk
        .run("requests.lua", &[list("bare"), fixed.clone()])
        .await?;
    out.push(row(db, "bare", &bare, Some(bare.rps()), json!({})));
    let bare = Some(bare.rps());
    pause().await;

    if a.wants("limit") {
        println!("{db}: limit");
        let r = wrk
            .run("requests.lua", &[list("limit"), fixed.clone()])
            .await?;
        out.push(row(db, "limit", &r, bare, json!({})));
        pause().await;
    }
    if a.wants("first_open") {
        println!("{db}: first open");
        let before = s.sqlite_writes().await;
        let r = wrk.run("requests.lua", &[list("first_open")]).await?;
        let mut extra = json!({ "links": first_links });
        group_commit(&mut extra, before, s.sqlite_writes().await);
        if r.counter("wraps") > 0 {
            extra["warning"] = json!(format!(
                "all {first_links} fresh links were used; later requests re-opened them"
            ));
        }
        out.push(row(db, "first_open", &r, bare, extra));
        pause().await;
    }
    if a.wants("reopen") {
        println!("{db}: re-open");
        let r = wrk
            .run("requests.lua", &[list("reopen"), fixed.clone()])
            .await?;
        out.push(row(db, "reopen", &r, bare, json!({})));
        pause().await;
    }
    if a.wants("selector") {
        println!("{db}: selector POST");
        let r = wrk.run("requests.lua", &[list("selector")]).await?;
        out.push(row(
            db,
            "selector",
            &r,
            bare,
            json!({ "sessions": SELECTOR_SESSIONS }),
        ));
        pause().await;
    }
    if a.wants("card_payment") {
        println!("{db}: card payment");
        let before = s.sqlite_writes().await;
        let r = wrk
            .run(
                "payment.lua",
                &[list("card_payment"), ("BENCH_CARD_FIELDS", card_fields())],
            )
            .await?;
        let paid = r.counter("paid");
        let mut extra = json!({
            "unit": "payments/s (4 requests each); p50/p99 per request",
            "paid": paid,
            "requests_per_s": r.rps(),
            "request_ratio_to_bare": bare.map(|b| r.rps() / b),
            "lost": r.counter("lost"),
            "links": payment_links,
        });
        group_commit(&mut extra, before, s.sqlite_writes().await);
        if r.counter("wraps") > 0 {
            extra["warning"] = json!(format!("all {payment_links} payment links were used"));
        }
        out.push(Scenario {
            rps: paid as f64 / r.seconds().max(1e-9),
            errors: r.errors.total() + r.counter("lost"),
            ratio_to_bare: None,
            ..row(db, "card_payment", &r, None, extra)
        });
        pause().await;
    }
    if a.wants("delivery") {
        println!("{db}: notification delivery");
        out.push(delivery(&s, db, secs).await?);
    }
    memory.insert(
        db.to_owned(),
        Memory {
            idle_mb,
            peak_mb: s.memory_mb("VmHWM:"),
        },
    );
    Ok(())
}

/// Adds SQLite's write transactions and COMMITs during a scenario to its JSON: their ratio is
/// the group commit's average group.
fn group_commit(
    extra: &mut serde_json::Value,
    before: Option<(u64, u64)>,
    after: Option<(u64, u64)>,
) {
    if let (Some((t0, c0)), Some((t1, c1))) = (before, after) {
        extra["sqlite_transactions"] = json!(t1 - t0);
        extra["sqlite_commits"] = json!(c1 - c0);
    }
}

/// Starts the scenarios from a quiet disk: what ran before (bench_search seeds a million
/// payments into PostgreSQL just before these) leaves dirty pages that PostgreSQL's
/// checkpointer would otherwise write out during the scenarios, SQLite's as much as
/// PostgreSQL's (the p99 of every SQLite scenario, the bare route's included, was 16–27 ms in
/// such runs, 4 ms on PostgreSQL after them). Needs a superuser; without one it is skipped and
/// said.
async fn checkpoint(pg: &str) {
    use sqlx::Connection;
    let done = match sqlx::PgConnection::connect(pg).await {
        Ok(mut admin) => sqlx::query("CHECKPOINT")
            .execute(&mut admin)
            .await
            .map(|_| ()),
        Err(e) => Err(e),
    };
    if let Err(e) = done {
        eprintln!("postgres: CHECKPOINT before the scenarios skipped: {e}");
    }
}

/// How fast the worker delivers a backlog of due events: ping events for a local receiver are
/// queued not yet due, then made due by one statement; the rate is taken from the first
/// event received to the last. A backlog is what the worker meets after a burst of payments
/// or when a merchant's endpoint comes back and its retries fall due.
///
/// The events are written from this process, before timing. Queueing them while timing
/// (the scenario's first form) measured what the server never meets: a second process
/// writing SQLite's file (each side waiting in SQLite's busy handler) and a worker not woken
/// by another process's rows, idle until its next poll (`bench/README.md`, 2026-12-03 late).
async fn delivery(s: &Server, db: &str, secs: u64) -> anyhow::Result<Scenario> {
    use axum::routing::post;
    // Arrival times, in ns since `base`, of the first and last event since the last reset.
    let base = Instant::now();
    let got = Arc::new(AtomicU64::new(0));
    let first = Arc::new(AtomicU64::new(u64::MAX));
    let last = Arc::new(AtomicU64::new(0));
    let (g, f, l) = (got.clone(), first.clone(), last.clone());
    let app = axum::Router::new().route(
        "/notify",
        post(move || {
            let (g, f, l) = (g.clone(), f.clone(), l.clone());
            async move {
                let t = base.elapsed().as_nanos() as u64;
                f.fetch_min(t, Ordering::Relaxed);
                l.fetch_max(t, Ordering::Relaxed);
                g.fetch_add(1, Ordering::Relaxed);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/notify", listener.local_addr()?);
    let receiver = tokio::spawn(async move { axum::serve(listener, app).await });
    merchants::set_field(&s.db, server::MERCHANT, "callback_url", &url).await?;
    let n = (2000 * secs).min(20_000);
    // Not due for an hour: the worker leaves them alone while they are written.
    let parked_at = kakehashi::util::now_ms() + 3_600_000;
    let queue_started = Instant::now();
    let queued: Vec<anyhow::Result<()>> = futures_util::stream::iter(0..n)
        .map(|_| async {
            outbox::ping(&s.db, server::MERCHANT, parked_at).await?;
            Ok(())
        })
        .buffer_unordered(ENQUEUERS)
        .collect()
        .await;
    queued.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
    let queued_s = queue_started.elapsed().as_secs_f64();
    // Let the card payments' events drain, then start counting.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = got.load(Ordering::Relaxed);
    first.store(u64::MAX, Ordering::Relaxed);
    last.store(0, Ordering::Relaxed);
    let released = base.elapsed().as_nanos() as u64;
    let due = s
        .db
        .write_exec(
            "UPDATE outbox SET next_attempt_at = $1 WHERE status = 'pending' AND next_attempt_at = $2",
            kakehashi::args![kakehashi::util::now_ms(), parked_at],
        )
        .await?;
    anyhow::ensure!(due == n, "{due} of {n} events made due");
    while got.load(Ordering::Relaxed) - before < n
        && queue_started.elapsed() < Duration::from_secs(180)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let delivered = got.load(Ordering::Relaxed) - before;
    let (t0, t1) = (first.load(Ordering::Relaxed), last.load(Ordering::Relaxed));
    let span_s = t1.saturating_sub(t0) as f64 / 1e9;
    receiver.abort();
    Ok(Scenario {
        db: db.into(),
        scenario: "delivery".into(),
        rps: if span_s > 0.0 {
            delivered.saturating_sub(1) as f64 / span_s
        } else {
            0.0
        },
        p50_ms: None,
        p99_ms: None,
        errors: n.saturating_sub(delivered),
        ratio_to_bare: None,
        extra: json!({
            "unit": "events/s",
            "events": n,
            "delivered": delivered,
            "queued_in_s": queued_s,
            // From the first event received to the last.
            "run_s": span_s,
            // From the events falling due to the first received: the worker's idle poll
            // (it is not woken by another process's rows).
            "first_after_ms": t0.saturating_sub(released) as f64 / 1e6,
        }),
    })
}
