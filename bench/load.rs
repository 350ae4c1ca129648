//! The load generator: `wrk` in its own process (one thread, so it keeps to one of the two
//! cores and the server gets the rest), driven by a Lua script under bench/wrk/ that reads the
//! requests this program wrote, and the `BENCH_JSON` line those scripts print when done.

use std::path::Path;

use serde::Deserialize;

/// Connections held open by wrk for every scenario.
pub const CONNECTIONS: u32 = 64;

/// What one wrk run measured.
#[derive(Debug, Deserialize)]
pub struct WrkResult {
    pub requests: u64,
    pub duration_us: u64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub errors: WrkErrors,
    /// The script's own counters (`wraps`, `paid`, `lost`).
    #[serde(flatten)]
    pub counters: std::collections::BTreeMap<String, u64>,
}

/// wrk's error counts: socket errors and answers with a status of 400 or more.
#[derive(Debug, Deserialize)]
pub struct WrkErrors {
    pub connect: u64,
    pub read: u64,
    pub write: u64,
    pub status: u64,
    pub timeout: u64,
}

impl WrkErrors {
    pub fn total(&self) -> u64 {
        self.connect + self.read + self.write + self.status + self.timeout
    }
}

impl WrkResult {
    pub fn seconds(&self) -> f64 {
        self.duration_us as f64 / 1e6
    }

    pub fn rps(&self) -> f64 {
        self.requests as f64 / self.seconds().max(1e-9)
    }

    pub fn counter(&self, name: &str) -> u64 {
        self.counters.get(name).copied().unwrap_or(0)
    }
}

/// One wrk run.
pub struct Wrk<'a> {
    /// bench/wrk: the scripts.
    pub scripts: &'a Path,
    pub base: &'a str,
    pub seconds: u64,
    pub user_agent: &'a str,
}

impl Wrk<'_> {
    /// Runs `script` against the server for the configured time with `env` (the request list
    /// and the script's settings) and reads its result line.
    pub async fn run(&self, script: &str, env: &[(&str, String)]) -> anyhow::Result<WrkResult> {
        let mut cmd = tokio::process::Command::new("wrk");
        cmd.arg("-t1")
            .arg(format!("-c{CONNECTIONS}"))
            .arg(format!("-d{}s", self.seconds))
            .arg("--timeout")
            .arg("10s")
            .arg("-s")
            .arg(self.scripts.join(script))
            .arg(self.base)
            .env("BENCH_WRK_DIR", self.scripts)
            .env("BENCH_UA", self.user_agent)
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd
            .output()
            .await
            .map_err(|e| anyhow::anyhow!("wrk: {e} (apt-get install wrk)"))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let line = stdout
            .lines()
            .find_map(|l| l.strip_prefix("BENCH_JSON "))
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "wrk {script} printed no result ({}):\n{stdout}\n{}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                )
            })?;
        Ok(serde_json::from_str(line)?)
    }
}
