//! A run's results: the JSON file under bench/results/ (read back by bench/compare.py), the
//! table printed at the end, and the targets of issue #21 with PASS / MISS for each.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One scenario on one database. `bench_search --json` prints the same shape.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Scenario {
    pub db: String,
    pub scenario: String,
    /// Requests per second; payments per second for `card_payment`, events per second for
    /// `delivery`.
    pub rps: f64,
    /// Latency per request; `null` where there is no request to time (delivery).
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub errors: u64,
    /// `rps` over the bare route's in the same run on the same database; `null` when the unit
    /// is not a request (payments, events).
    pub ratio_to_bare: Option<f64>,
    #[serde(default)]
    pub extra: serde_json::Value,
}

/// The server's memory on one database.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Memory {
    /// `VmRSS` after start, before any load.
    pub idle_mb: f64,
    /// `VmHWM` after every scenario.
    pub peak_mb: f64,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Machine {
    pub cpus: usize,
    pub kernel: String,
    /// /proc/loadavg at the start: other work on the machine lowers every figure.
    pub loadavg: String,
}

/// The result file.
#[derive(Debug, Serialize, Deserialize)]
pub struct Results {
    pub commit: String,
    /// Uncommitted changes in the tree that was built.
    pub dirty: bool,
    pub date: String,
    /// Length of each scenario.
    pub seconds: u64,
    pub connections: u32,
    pub machine: Machine,
    pub scenarios: Vec<Scenario>,
    /// By database (`sqlite`, `postgres`).
    pub memory: BTreeMap<String, Memory>,
}

/// Scenario ids in the order they run, with the label printed for each.
pub const LABELS: &[(&str, &str)] = &[
    ("bare", "bare route (GET /healthz)"),
    ("limit", "limit: link verified + rendered, no database"),
    ("first_open", "open link, first time (insert)"),
    ("reopen", "re-open link (read + render)"),
    ("selector", "method selector POST"),
    ("card_payment", "full card payment (payments/s, 4 requests)"),
    ("delivery", "notification delivery (events/s)"),
];

/// Scenarios whose PostgreSQL figure must be ≥ 70% of SQLite's: every one that uses the
/// database (the bare route and the limit use none).
const DB_SCENARIOS: &[&str] = &[
    "first_open",
    "reopen",
    "selector",
    "card_payment",
    "delivery",
];

fn label(id: &str) -> &str {
    LABELS
        .iter()
        .find(|(i, _)| *i == id)
        .map_or(id, |(_, l)| *l)
}

impl Results {
    pub fn get(&self, db: &str, scenario: &str) -> Option<&Scenario> {
        self.scenarios
            .iter()
            .find(|s| s.db == db && s.scenario == scenario)
    }

    fn dbs(&self) -> Vec<&str> {
        ["sqlite", "postgres"]
            .into_iter()
            .filter(|d| self.scenarios.iter().any(|s| s.db == *d))
            .collect()
    }

    /// The scenario table (one column group per database) and the targets.
    pub fn print(&self) {
        let dbs = self.dbs();
        let mut ids: Vec<&str> = LABELS.iter().map(|(i, _)| *i).collect();
        for s in &self.scenarios {
            if !ids.contains(&s.scenario.as_str()) {
                ids.push(&s.scenario);
            }
        }
        println!(
            "\n## Results ({} s per scenario, wrk -t1 -c{}, commit {}{})\n",
            self.seconds,
            self.connections,
            short(&self.commit),
            if self.dirty { " + changes" } else { "" }
        );
        let mut head = String::from("| scenario |");
        let mut rule = String::from("|---|");
        for db in &dbs {
            head += &format!(" {db} rate | % of bare | p50 ms | p99 ms | errors |");
            rule += "---:|---:|---:|---:|---:|";
        }
        if dbs.len() == 2 {
            head += " PG / SQLite |";
            rule += "---:|";
        }
        println!("{head}\n{rule}");
        for id in ids {
            let mut row = format!("| {} |", label(id));
            let mut any = false;
            for db in &dbs {
                match self.get(db, id) {
                    Some(s) => {
                        any = true;
                        row += &format!(
                            " {} | {} | {} | {} | {} |",
                            thousands(s.rps),
                            s.ratio_to_bare
                                .map_or("–".into(), |r| format!("{:.0}%", r * 100.0)),
                            ms(s.p50_ms),
                            ms(s.p99_ms),
                            s.errors
                        );
                    }
                    None => row += " – | – | – | – | – |",
                }
            }
            if dbs.len() == 2 {
                row += &match (self.get("sqlite", id), self.get("postgres", id)) {
                    (Some(a), Some(b)) if a.rps > 0.0 => {
                        format!(" {:.0}% |", 100.0 * b.rps / a.rps)
                    }
                    _ => " – |".into(),
                };
            }
            if any {
                println!("{row}");
            }
        }
        let warnings: Vec<String> = self
            .scenarios
            .iter()
            .filter_map(|s| {
                let w = s.extra.get("warning")?.as_str()?;
                Some(format!("{} on {}: {w}", s.scenario, s.db))
            })
            .collect();
        for w in &warnings {
            println!("\nwarning: {w}");
        }
        let mem: Vec<String> = dbs
            .iter()
            .filter_map(|db| {
                let m = self.memory.get(*db)?;
                Some(format!(
                    "{db}: idle {:.1} MB, peak {:.1} MB",
                    m.idle_mb, m.peak_mb
                ))
            })
            .collect();
        println!("\nserver memory: {}", mem.join("; "));
        self.print_targets();
    }

    fn print_targets(&self) {
        println!("\n## Targets (issue #21)\n");
        println!("| target | sqlite | postgres | result |");
        println!("|---|---:|---:|---|");
        for t in self.targets() {
            println!(
                "| {} | {} | {} | {} |",
                t.name,
                t.cells[0].as_ref().map_or("–", |c| c.0.as_str()),
                t.cells[1].as_ref().map_or("–", |c| c.0.as_str()),
                t.verdict()
            );
        }
    }

    /// Every target of issue #21 this harness measures (search is bench_search's).
    pub fn targets(&self) -> Vec<Target> {
        let per_db = |name: String, f: &dyn Fn(&str) -> Option<(String, bool)>| Target {
            name,
            cells: ["sqlite", "postgres"].map(f),
        };
        let ratio = |db: &str, id: &str, min: f64| {
            let r = self.get(db, id)?.ratio_to_bare?;
            Some((format!("{:.0}%", r * 100.0), r >= min))
        };
        let mut out = vec![
            per_db("re-open ≥ 36% of bare".into(), &|db| {
                ratio(db, "reopen", 0.36)
            }),
            per_db("first open ≥ 5,000/s, p99 < 15 ms".into(), &|db| {
                let s = self.get(db, "first_open")?;
                let p99 = s.p99_ms.unwrap_or(f64::INFINITY);
                Some((
                    format!("{}/s, p99 {}", thousands(s.rps), ms(s.p99_ms)),
                    s.rps >= 5000.0 && p99 < 15.0,
                ))
            }),
            per_db("selector POST ≥ 25% of bare".into(), &|db| {
                ratio(db, "selector", 0.25)
            }),
            per_db(
                "card payment ≥ 1,000/s SQLite, ≥ 800/s PostgreSQL".into(),
                &|db| {
                    let s = self.get(db, "card_payment")?;
                    let min = if db == "sqlite" { 1000.0 } else { 800.0 };
                    Some((format!("{}/s", thousands(s.rps)), s.rps >= min))
                },
            ),
            per_db(
                "delivery ≥ 5,000 events/s SQLite, ≥ 3,000/s PostgreSQL".into(),
                &|db| {
                    let s = self.get(db, "delivery")?;
                    let min = if db == "sqlite" { 5000.0 } else { 3000.0 };
                    Some((format!("{}/s", thousands(s.rps)), s.rps >= min))
                },
            ),
        ];
        for id in DB_SCENARIOS {
            let (Some(a), Some(b)) = (self.get("sqlite", id), self.get("postgres", id)) else {
                continue;
            };
            let r = if a.rps > 0.0 { b.rps / a.rps } else { 0.0 };
            out.push(Target {
                name: format!("PostgreSQL ≥ 70% of SQLite: {id}"),
                cells: [None, Some((format!("{:.0}%", r * 100.0), r >= 0.7))],
            });
        }
        out.push(per_db("idle memory < 50 MB".into(), &|db| {
            let m = self.memory.get(db)?;
            Some((format!("{:.1} MB", m.idle_mb), m.idle_mb < 50.0))
        }));
        out.push(per_db("peak memory < 100 MB".into(), &|db| {
            let m = self.memory.get(db)?;
            Some((format!("{:.1} MB", m.peak_mb), m.peak_mb < 100.0))
        }));
        out
    }
}

/// One target: the figure and whether it is met, per database (`None`: not measured).
pub struct Target {
    pub name: String,
    pub cells: [Option<(String, bool)>; 2],
}

impl Target {
    pub fn verdict(&self) -> &'static str {
        let measured: Vec<bool> = self.cells.iter().flatten().map(|c| c.1).collect();
        match measured.as_slice() {
            [] => "not measured",
            m if m.iter().all(|ok| *ok) => "PASS",
            _ => "MISS",
        }
    }
}

fn short(commit: &str) -> &str {
    &commit[..commit.len().min(7)]
}

fn ms(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| format!("{v:.2}"))
}

/// 12345.6 → "12,346".
pub fn thousands(v: f64) -> String {
    kakehashi::util::format_yen(v.round() as i64)
}
