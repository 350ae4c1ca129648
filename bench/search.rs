//! Console search benchmark: seeds N payments (default 1,000,000) with a year of realistic
//! methods, statuses, dates and amounts into a fresh SQLite file (and, with `--postgres URL`, a
//! fresh PostgreSQL database), starts the release server binary on them, signs in to the console
//! through its normal routes with a seeded staff user, and measures with concurrent requests:
//! the first page of the payment list, a deep keyset page (page 500, reached by following the
//! "次のページ" cursors), filtered searches, and a 100,000-row CSV export (its time, and the
//! server's resident memory before, during and after, from /proc).
//!
//! `cargo build --release --bin kakehashi --example bench_search`, then
//! `target/release/examples/bench_search [--payments N] [--seconds S] [--concurrency C]
//! [--postgres URL] [--json] [--keep]`. With `--json` the results go to stdout as
//! `{"scenarios": [...]}` (the shape `bench/run.sh` merges); without, as a table. `--keep`
//! leaves the seeded databases behind and prints where they are (for `EXPLAIN`).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kakehashi::console::Role;
use kakehashi::db::Db;
use kakehashi::domain::payment::PaymentStatus;
use kakehashi::domain::Method;
use rand::{Rng, SeedableRng};

struct Args {
    payments: u64,
    seconds: u64,
    concurrency: usize,
    postgres: Option<String>,
    json: bool,
    /// Leave the seeded databases behind (and print where), for `EXPLAIN` sessions.
    keep: bool,
}

fn args() -> Args {
    let mut a = Args {
        payments: 1_000_000,
        seconds: 5,
        concurrency: 8,
        postgres: None,
        json: false,
        keep: false,
    };
    let mut it = std::env::args().skip(1);
    fn num(it: &mut impl Iterator<Item = String>, what: &str) -> u64 {
        it.next()
            .and_then(|s| s.replace('_', "").parse().ok())
            .unwrap_or_else(|| panic!("{what} needs a number"))
    }
    while let Some(x) = it.next() {
        match x.as_str() {
            "--payments" => a.payments = num(&mut it, "--payments"),
            "--seconds" => a.seconds = num(&mut it, "--seconds"),
            "--concurrency" => a.concurrency = num(&mut it, "--concurrency") as usize,
            "--postgres" => a.postgres = it.next(),
            "--json" => a.json = true,
            "--keep" => a.keep = true,
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

/// The merchant whose console is searched (created by the server at first start).
const MERCHANT: &str = "m_demo";
/// Rows per INSERT statement and statements per transaction while seeding.
const ROWS_PER_INSERT: u64 = 500;
const INSERTS_PER_TX: u64 = 20;
/// Page of the deep-page scenario (50 rows a page).
const DEEP_PAGE: usize = 500;
/// Rows of the CSV export scenario (at least; the date filter ends on a day boundary).
const CSV_ROWS: u64 = 100_000;
const YEAR_MS: i64 = 365 * 86_400_000;

/// One payment to seed; values are ours (generated here), never input, so the INSERT text
/// carries them as literals.
struct Seed {
    id: String,
    checkout_id: String,
    order_id: String,
    method: Method,
    institution: Option<&'static str>,
    status: &'static str,
    amount: i64,
    captured: i64,
    fee: i64,
    deadline_at: Option<i64>,
    paid_at: Option<i64>,
    created_at: i64,
}

fn pick_method(r: &mut impl Rng) -> Method {
    // A card-heavy shop: card, konbini, then the rest.
    let x = r.gen_range(0..100);
    match x {
        0..=54 => Method::Card,
        55..=74 => Method::Konbini,
        75..=79 => Method::Payeasy,
        80..=84 => Method::Banknet,
        85..=88 => Method::Docomo,
        89..=91 => Method::Au,
        92..=94 => Method::Softbank,
        _ => Method::Wallet,
    }
}

fn seed_row(r: &mut impl Rng, i: u64, now: i64) -> Seed {
    let method = pick_method(r);
    let statuses = PaymentStatus::all_for(method);
    let paid: Vec<PaymentStatus> = statuses.iter().copied().filter(|s| s.is_paid()).collect();
    // Most payments end paid; the others spread over every status of the method.
    let status = if !paid.is_empty() && r.gen_bool(0.6) {
        paid[r.gen_range(0..paid.len())]
    } else {
        statuses[r.gen_range(0..statuses.len())]
    };
    // Amounts: log-uniform from 100 to 300,000 yen, in tens.
    let amount = ((100f64 * 3000f64.powf(r.gen::<f64>())) as i64 / 10 * 10).max(100);
    // Created over the last year, busier recently; whole seconds, so some share a millisecond.
    let age = (r.gen::<f64>().powf(1.3) * YEAR_MS as f64) as i64;
    let created_at = (now - age) / 1000 * 1000;
    let institution = match method {
        Method::Card => Some(["VISA", "MASTER", "JCB", "AMEX"][r.gen_range(0..4)]),
        Method::Konbini => Some(["seven", "lawson", "famima", "ministop"][r.gen_range(0..4)]),
        _ => None,
    };
    let deadline_at =
        matches!(method, Method::Konbini | Method::Payeasy).then_some(created_at + 3 * 86_400_000);
    let is_paid = status.is_paid();
    Seed {
        id: kakehashi::util::random_id("pay", 20),
        checkout_id: kakehashi::util::random_id("co", 20),
        order_id: format!("bench-{i:08}"),
        method,
        institution,
        status: status.code(),
        amount,
        captured: if is_paid { amount } else { 0 },
        fee: if method == Method::Konbini && amount >= 50_000 {
            200
        } else {
            0
        },
        deadline_at,
        paid_at: is_paid.then_some(created_at + r.gen_range(0..2 * 86_400_000)),
        created_at,
    }
}

fn opt(v: Option<i64>) -> String {
    v.map_or("NULL".into(), |v| v.to_string())
}

/// The secondary indexes of the seeded tables, `(name, CREATE statement)`: dropped while
/// seeding and built again after, which is many times faster than updating seventeen indexes
/// row by row (the indexes end up as a long-running server's would, only more compact).
async fn secondary_indexes(db: &Db) -> Vec<(String, String)> {
    match db {
        Db::Sqlite { write, .. } => sqlx::query_as(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' \
             AND tbl_name IN ('payments', 'checkouts') AND sql IS NOT NULL",
        )
        .fetch_all(write.lock().await.conn().unwrap())
        .await
        .unwrap(),
        Db::Postgres(pool) => sqlx::query_as(
            "SELECT indexname::text, indexdef FROM pg_indexes \
             WHERE tablename IN ('payments', 'checkouts') AND schemaname = current_schema() \
             AND NOT EXISTS (SELECT 1 FROM pg_constraint c \
                 WHERE c.conindid = (quote_ident(schemaname) || '.' || quote_ident(indexname))::regclass)",
        )
        .fetch_all(pool.acquire().await.unwrap().conn())
        .await
        .unwrap(),
    }
}

async fn exec(db: &Db, sql: &str) {
    let mut tx = db.begin().await.unwrap();
    kakehashi::exec_tx!(&mut tx, c => sqlx::query(sql).execute(c).await).unwrap();
    tx.commit().await.unwrap();
}

/// Seeds `n` payments (with their checkouts) for [`MERCHANT`]; returns the seconds taken.
async fn seed(db: &Db, n: u64) -> f64 {
    let started = Instant::now();
    let indexes = secondary_indexes(db).await;
    for (name, _) in &indexes {
        exec(db, &format!("DROP INDEX {name}")).await;
    }
    let now = kakehashi::util::now_ms();
    let mut rng = rand::rngs::StdRng::seed_from_u64(21);
    let mut i = 0;
    while i < n {
        let mut tx = db.begin().await.unwrap();
        for _ in 0..INSERTS_PER_TX {
            if i >= n {
                break;
            }
            let rows: Vec<Seed> = (i..(i + ROWS_PER_INSERT).min(n))
                .map(|k| seed_row(&mut rng, k, now))
                .collect();
            i += rows.len() as u64;
            let mut co = String::from(
                "INSERT INTO checkouts (id, merchant_id, order_id, content_hash, amount, item_name, \
                 methods, return_url, lang, status, selected_method, created_at, updated_at) VALUES ",
            );
            let mut pay = String::from(
                "INSERT INTO payments (id, merchant_id, checkout_id, order_id, method, institution, \
                 status, amount, captured_amount, refunded_amount, fee, deadline_at, paid_at, \
                 connector_ref, details, attempts, created_at, updated_at, connector) VALUES ",
            );
            for (k, s) in rows.iter().enumerate() {
                let sep = if k == 0 { "" } else { "," };
                let m = s.method.code();
                co.push_str(&format!(
                    "{sep}('{}','{MERCHANT}','{}','bench',{},'ベンチマーク商品','{m}',\
                     'https://shop.example/return','ja','pending','{m}',{},{})",
                    s.checkout_id, s.order_id, s.amount, s.created_at, s.created_at
                ));
                pay.push_str(&format!(
                    "{sep}('{}','{MERCHANT}','{}','{}','{m}',{},'{}',{},{},0,{},{},{},NULL,'{{}}',1,{},{},'sandbox')",
                    s.id,
                    s.checkout_id,
                    s.order_id,
                    s.institution.map_or("NULL".into(), |v| format!("'{v}'")),
                    s.status,
                    s.amount,
                    s.captured,
                    s.fee,
                    opt(s.deadline_at),
                    opt(s.paid_at),
                    s.created_at,
                    s.paid_at.unwrap_or(s.created_at),
                ));
            }
            kakehashi::exec_tx!(&mut tx, c => sqlx::query(&co).execute(c).await).unwrap();
            kakehashi::exec_tx!(&mut tx, c => sqlx::query(&pay).execute(c).await).unwrap();
        }
        tx.commit().await.unwrap();
    }
    for (_, create) in &indexes {
        exec(db, create).await;
    }
    started.elapsed().as_secs_f64()
}

struct Server {
    child: std::process::Child,
    base: String,
}

impl Server {
    fn memory_kb(&self, field: &str) -> u64 {
        memory_kb(self.child.id(), field)
    }
}

fn memory_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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
        .env("RUST_LOG", "error")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("server binary (cargo build --release first)");
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    for _ in 0..600 {
        if client.get(format!("{base}/healthz")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Server { child, base }
}

/// Waits until the server has created the demo merchant (its first start).
async fn wait_for_merchant(db: &Db) {
    for _ in 0..600 {
        let n: i64 = kakehashi::on_db!(db, c => sqlx::query_scalar(
            "SELECT COUNT(*) FROM merchants WHERE id = $1").bind(MERCHANT).fetch_one(c).await)
        .unwrap();
        if n == 1 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the server did not create {MERCHANT}");
}

/// Signs a new general user of [`MERCHANT`] in with password and TOTP code, like a browser.
async fn console_client(db: &Db, base: &str) -> reqwest::Client {
    let keys = kakehashi::secrets::Keyring::new(
        std::env::var("KAKEHASHI_MASTER_KEY").ok().as_deref(),
        &[],
    )
    .unwrap();
    let email = format!("{}@bench.example", kakehashi::util::random_id("u", 8));
    let now = kakehashi::util::now_ms();
    let u =
        kakehashi::console::users::create(db, &keys, Some(MERCHANT), &email, Role::General, now)
            .await
            .unwrap();
    let c = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let csrf = |page: &str| {
        let i = page.find("name=\"csrf\" value=\"").expect("csrf field") + 19;
        page[i..].split('"').next().unwrap().to_owned()
    };
    let page = c.get(format!("{base}/console/login")).send().await.unwrap();
    let token = csrf(&page.text().await.unwrap());
    let r = c
        .post(format!("{base}/console/login"))
        .form(&[
            ("csrf", token.as_str()),
            ("email", &u.email),
            ("password", &u.password),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "password step");
    let page = c
        .get(format!("{base}/console/login/totp"))
        .send()
        .await
        .unwrap();
    let token = csrf(&page.text().await.unwrap());
    let code = kakehashi::console::users::totp(&u.totp_secret, &u.email)
        .unwrap()
        .generate_current()
        .unwrap();
    let r = c
        .post(format!("{base}/console/login/totp"))
        .form(&[("csrf", token.as_str()), ("code", &code)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "code step");
    c
}

/// The "次のページ" link of a list page, if any.
fn next_link(page: &str) -> Option<String> {
    let rest = page.split("id=\"next-page\" href=\"").nth(1)?;
    Some(
        rest.split('"')
            .next()?
            .replace("&#38;", "&")
            .replace("&amp;", "&"),
    )
}

#[derive(serde::Serialize)]
struct Scenario {
    db: &'static str,
    scenario: &'static str,
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
    ratio_to_bare: Option<f64>,
    extra: serde_json::Value,
}

/// GETs `urls[n % len]` from `concurrency` tasks for `secs` seconds; a 200 with the list's
/// table counts as a success.
async fn load(
    c: &reqwest::Client,
    urls: Vec<String>,
    concurrency: usize,
    secs: u64,
) -> (f64, f64, f64, u64) {
    let urls = Arc::new(urls);
    let counter = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let started = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (c, urls, counter, errors) = (c.clone(), urls.clone(), counter.clone(), errors.clone());
        set.spawn(async move {
            let mut lat = Vec::with_capacity(4096);
            while Instant::now() < deadline {
                let n = counter.fetch_add(1, Ordering::Relaxed) as usize;
                let t = Instant::now();
                let ok = match c.get(&urls[n % urls.len()]).send().await {
                    Ok(r) if r.status() == 200 => {
                        r.text().await.is_ok_and(|b| b.contains("<table"))
                    }
                    _ => false,
                };
                if !ok {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
                lat.push(t.elapsed().as_micros() as u32);
            }
            lat
        });
    }
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
    (
        all.len() as f64 / elapsed,
        pct(0.50),
        pct(0.99),
        errors.load(Ordering::Relaxed),
    )
}

/// The Japan-time date (`YYYY-MM-DD`) of a unix-ms instant.
fn jst_date(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(ms / 1000)
        .unwrap()
        .to_offset(kakehashi::domain::jst::OFFSET);
    format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day())
}

async fn run(label: &'static str, url: &str, a: &Args) -> Vec<Scenario> {
    let server = start(url).await;
    let db = Db::connect(url).await.unwrap();
    wait_for_merchant(&db).await;
    let seeded_s = seed(&db, a.payments).await;
    // PostgreSQL's autovacuum would soon vacuum and analyze the new rows (a table that only
    // had inserts is vacuumed too, since PostgreSQL 13); do it now, so the first measurement
    // does not race it, and the store is as a long-running server's would be. Without the
    // vacuum no page is marked all-visible, and every index-only scan (the amount range's
    // count, db/search.rs) reads each row from the table as well: 44 ms instead of 1.4 ms for
    // 5,000 entries. This machine's PostgreSQL runs with autovacuum off for the test suite.
    // SQLite plans without statistics, as a server would.
    if let Db::Postgres(pool) = &db {
        // VACUUM cannot run in a transaction block, so not through `exec`.
        sqlx::query("VACUUM (ANALYZE)")
            .execute(pool.acquire().await.unwrap().conn())
            .await
            .unwrap();
    }
    eprintln!("{label}: seeded {} payments in {seeded_s:.1} s", a.payments);
    let c = console_client(&db, &server.base).await;
    let base = &server.base;
    let mut out = Vec::new();
    let mut push = |scenario: &'static str, r: (f64, f64, f64, u64), extra: serde_json::Value| {
        out.push(Scenario {
            db: label,
            scenario,
            rps: r.0,
            p50_ms: r.1,
            p99_ms: r.2,
            errors: r.3,
            ratio_to_bare: None,
            extra,
        })
    };
    let conc = serde_json::json!({"payments": a.payments, "concurrency": a.concurrency});

    let first = format!("{base}/console/payments");
    let r = load(&c, vec![first.clone()], a.concurrency, a.seconds).await;
    push("console_search_first", r, conc.clone());

    // Page 500 by following the cursors, as a user clicking "次のページ" would.
    let walk = Instant::now();
    let mut url = first.clone();
    let mut pages = 1;
    while pages < DEEP_PAGE {
        let body = c.get(&url).send().await.unwrap().text().await.unwrap();
        match next_link(&body) {
            Some(next) => url = format!("{base}{next}"),
            None => break,
        }
        pages += 1;
    }
    let walk_ms = walk.elapsed().as_secs_f64() * 1000.0;
    let r = load(&c, vec![url.clone()], a.concurrency, a.seconds).await;
    let mut extra = conc.clone();
    extra["page"] = pages.into();
    extra["walk_ms_per_page"] = (walk_ms / pages as f64).into();
    push("console_search_deep", r, extra);

    // Filtered searches, each combination the form offers, in turn; and page 2 of each.
    let now = kakehashi::util::now_ms();
    let (d90, d30, d7, today) = (
        jst_date(now - 90 * 86_400_000),
        jst_date(now - 30 * 86_400_000),
        jst_date(now - 7 * 86_400_000),
        jst_date(now),
    );
    let filters = [
        "status=captured".to_owned(),
        "method=konbini".to_owned(),
        "method=docomo&method=au&method=softbank".to_owned(),
        "method=konbini&status=paid".to_owned(),
        format!("from={d30}&to={today}"),
        format!("method=card&from={d7}&to={today}"),
        "min=100000&max=200000".to_owned(),
        format!("status=captured&min=5000&max=6000&from={d90}&to={today}"),
        "order_id=bench-00123456".to_owned(),
        "sort=amount&dir=desc".to_owned(),
        "sort=order_id&dir=asc&method=card".to_owned(),
        "sort=paid_at&dir=desc&status=captured".to_owned(),
    ];
    let mut urls = Vec::new();
    let mut per = serde_json::Map::new();
    for f in &filters {
        let u = format!("{base}/console/payments?{f}");
        let t = Instant::now();
        let body = c.get(&u).send().await.unwrap().text().await.unwrap();
        per.insert(f.clone(), (t.elapsed().as_secs_f64() * 1000.0).into());
        urls.push(u);
        if let Some(next) = next_link(&body) {
            urls.push(format!("{base}{next}"));
        }
    }
    let r = load(&c, urls, a.concurrency, a.seconds).await;
    let mut extra = conc.clone();
    extra["filters"] = filters.len().into();
    extra["single_request_ms"] = per.into();
    push("console_search_filtered", r, extra);

    // CSV of at least CSV_ROWS rows: the newest days holding that many.
    let from_at: i64 = kakehashi::on_db!(&db, c => sqlx::query_scalar(
        "SELECT created_at FROM payments WHERE merchant_id = $1 ORDER BY created_at DESC, id DESC \
         LIMIT 1 OFFSET $2").bind(MERCHANT).bind(CSV_ROWS.min(a.payments) as i64 - 1)
        .fetch_one(c).await)
    .unwrap();
    let csv_url = format!(
        "{base}/console/payments.csv?enc=utf8&from={}&to={today}",
        jst_date(from_at)
    );
    let pid = server.child.id();
    let rss_before = server.memory_kb("VmRSS:");
    let hwm_before = server.memory_kb("VmHWM:");
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let sampling = sampling.clone();
        tokio::spawn(async move {
            let mut max = 0;
            while sampling.load(Ordering::Relaxed) {
                max = max.max(memory_kb(pid, "VmRSS:"));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            max
        })
    };
    let t = Instant::now();
    let mut resp = c.get(&csv_url).send().await.unwrap();
    let ok = resp.status() == 200;
    let (mut bytes, mut lines) = (0u64, 0u64);
    while let Some(chunk) = resp.chunk().await.unwrap_or(None) {
        bytes += chunk.len() as u64;
        lines += chunk.iter().filter(|b| **b == b'\n').count() as u64;
    }
    let secs = t.elapsed().as_secs_f64();
    sampling.store(false, Ordering::Relaxed);
    let rss_peak_during = sampler.await.unwrap();
    let rows = lines.saturating_sub(1);
    let extra = serde_json::json!({
        "payments": a.payments,
        "rows": rows,
        "bytes": bytes,
        "seconds": secs,
        "rss_kb_before": rss_before,
        "rss_kb_peak_during": rss_peak_during,
        "rss_kb_after": server.memory_kb("VmRSS:"),
        "hwm_kb_before": hwm_before,
        "hwm_kb_after": server.memory_kb("VmHWM:"),
    });
    push(
        "console_csv_export",
        (
            rows as f64 / secs,
            secs * 1000.0,
            secs * 1000.0,
            u64::from(!ok),
        ),
        extra,
    );
    out
}

fn print_table(rows: &[Scenario]) {
    println!("| db | scenario | req/s (CSV: rows/s) | p50 ms | p99 ms | errors | extra |");
    println!("|---|---|---:|---:|---:|---:|---|");
    for r in rows {
        println!(
            "| {} | {} | {:.0} | {:.1} | {:.1} | {} | {} |",
            r.db, r.scenario, r.rps, r.p50_ms, r.p99_ms, r.errors, r.extra
        );
    }
}

#[tokio::main]
async fn main() {
    let a = args();
    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite://{}", dir.path().join("search.db").display());
    let mut all = run("sqlite", &sqlite, &a).await;
    if a.keep {
        eprintln!("kept: {sqlite}");
        std::mem::forget(dir);
    }
    if let Some(pg) = &a.postgres {
        use sqlx::Connection;
        let mut admin = sqlx::PgConnection::connect(pg)
            .await
            .expect("PostgreSQL reachable");
        let name = kakehashi::util::random_id("bench", 8);
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .unwrap();
        let url = format!("{}/{name}", pg.rsplit_once('/').unwrap().0);
        all.extend(run("postgres", &url, &a).await);
        if a.keep {
            eprintln!("kept: {url}");
        } else {
            let _ = sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
                .execute(&mut admin)
                .await;
        }
    }
    if a.json {
        println!("{}", serde_json::json!({ "scenarios": all }));
    } else {
        print_table(&all);
    }
}
