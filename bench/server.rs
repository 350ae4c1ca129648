//! The release server under test: started as its own process on loopback with the limit route
//! on, its demo merchant's signing key read back to sign links like a merchant's cart, and its
//! memory read from /proc.

use std::time::Duration;

use kakehashi::db::{merchants, Db};

pub struct Server {
    child: std::process::Child,
    pub base: String,
    pub db: Db,
    key_id: String,
    secret: String,
}

/// The demo merchant, which `kakehashi` creates on first start.
pub const MERCHANT: &str = "m_demo";

impl Server {
    /// Starts `target/release/kakehashi` (or `$KAKEHASHI_BIN`) on a free port.
    pub async fn start(database_url: &str) -> anyhow::Result<Server> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let bin =
            std::env::var("KAKEHASHI_BIN").unwrap_or_else(|_| "target/release/kakehashi".into());
        let child = std::process::Command::new(&bin)
            .env("DATABASE_URL", database_url)
            .env("KAKEHASHI_ADDR", format!("127.0.0.1:{port}"))
            .env("KAKEHASHI_ALLOW_LOOPBACK_CALLBACKS", "1")
            .env("KAKEHASHI_BENCH_LIMIT", "1")
            // BENCH_SERVER_LOG=warn shows what the server complains about under load.
            .env(
                "RUST_LOG",
                std::env::var("BENCH_SERVER_LOG").unwrap_or_else(|_| "error".into()),
            )
            // BENCH_SERVER_STDOUT=<file> keeps the server's log lines (they go to stdout).
            .stdout(match std::env::var("BENCH_SERVER_STDOUT") {
                Ok(path) => std::process::Stdio::from(std::fs::File::create(path)?),
                Err(_) => std::process::Stdio::null(),
            })
            .spawn()
            .map_err(|e| anyhow::anyhow!("{bin}: {e} (cargo build --release first)"))?;
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        let mut up = false;
        for _ in 0..300 {
            if client.get(format!("{base}/healthz")).send().await.is_ok() {
                up = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        anyhow::ensure!(up, "the server did not answer /healthz within 30 s");
        let db = Db::connect(database_url).await?;
        // The same master key as the server (if any) opens the demo key.
        let keys = kakehashi::secrets::Keyring::new(
            std::env::var("KAKEHASHI_MASTER_KEY").ok().as_deref(),
            &[],
        )?;
        let mut key = None;
        for _ in 0..100 {
            key = merchants::newest_key(&db, &keys, MERCHANT).await?;
            if key.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let (key_id, secret) =
            key.ok_or_else(|| anyhow::anyhow!("the server created no demo merchant key"))?;
        Ok(Server {
            child,
            base,
            db,
            key_id,
            secret,
        })
    }

    /// SQLite's writer counters from the server's /metrics (loopback may read it): transactions
    /// ended and COMMITs run. `None` on PostgreSQL, which has no such counters.
    pub async fn sqlite_writes(&self) -> Option<(u64, u64)> {
        let text = reqwest::get(format!("{}/metrics", self.base))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        let read = |name: &str| -> Option<u64> {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
                .and_then(|v| v.trim().parse().ok())
        };
        Some((
            read("kakehashi_sqlite_transactions_total")?,
            read("kakehashi_sqlite_commits_total")?,
        ))
    }

    /// A field of /proc/<pid>/status in MB (`VmRSS:` now, `VmHWM:` the peak so far).
    pub fn memory_mb(&self, field: &str) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        let kb: u64 = status
            .lines()
            .find(|l| l.starts_with(field))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        kb as f64 / 1024.0
    }

    /// The signed query of a one-hour link for `order_id` (1,500 yen), as a merchant's cart
    /// would make it.
    pub fn link_query(&self, order_id: &str) -> String {
        let expires = (kakehashi::util::now_ms() / 1000 + 3600).to_string();
        let ret = format!("{}/demo/return", self.base);
        kakehashi::signing::signed_query(
            &self.secret,
            &[
                ("merchant_id", MERCHANT),
                ("key_id", &self.key_id),
                ("order_id", order_id),
                ("amount", "1500"),
                ("item_name", "ベンチマーク商品"),
                ("return_url", &ret),
                ("expires_at", &expires),
            ],
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
