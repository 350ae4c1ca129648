//! The integration guide's "first hour" path, run as written: every `sh` block of that section,
//! in order, in one bash, in a fresh folder that looks like a checkout of the repository, with
//! the `kakehashi` binary on PATH. Only the two ports are changed (so tests can run side by
//! side); nothing else is added but `set -e` and the cleanup of background jobs.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const GUIDE: &str = "docs/integration-guide.md";
const HEADING: &str = "## First hour: from nothing to a verified notification";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The `sh` code blocks of the first-hour section, in order.
fn first_hour_blocks() -> Vec<String> {
    let text = std::fs::read_to_string(root().join(GUIDE)).unwrap();
    let mut lines = text.lines().skip_while(|l| *l != HEADING);
    assert!(
        lines.next().is_some(),
        "{GUIDE} has the heading {HEADING:?}"
    );
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in lines {
        if current.is_none() && line.starts_with("## ") {
            break;
        }
        match (&mut current, line) {
            (None, "```sh") => current = Some(String::new()),
            (Some(b), "```") => {
                blocks.push(std::mem::take(b));
                current = None;
            }
            (Some(b), l) => {
                b.push_str(l);
                b.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn have(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// A folder laid out like the repository's top folder: the docs, themes and static assets the
/// commands and the server read, and nothing else (the database and files the steps write
/// land here).
fn workdir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for name in ["docs", "themes", "static"] {
        std::os::unix::fs::symlink(root().join(name), dir.path().join(name)).unwrap();
    }
    dir
}

/// Runs `script` with bash in its own process group; kills the group after `limit`.
fn run_bash(dir: &Path, script: &str, limit: Duration) -> (bool, String, String) {
    use std::os::unix::process::CommandExt;
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_kakehashi")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = dir.join("script.out");
    let err = dir.join("script.err");
    let mut cmd = Command::new("bash");
    cmd.arg("-c")
        .arg(script)
        .current_dir(dir)
        .env("PATH", path)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .process_group(0);
    // The developer's shell has none of the server's settings: defaults and flags only.
    for (k, _) in std::env::vars() {
        if k == "DATABASE_URL" || k.starts_with("KAKEHASHI_") {
            cmd.env_remove(k);
        }
    }
    let mut child = cmd.spawn().unwrap();
    let started = Instant::now();
    let ok = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.success();
        }
        if started.elapsed() > limit {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .status();
            let _ = child.wait();
            break false;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    // Background jobs the steps started (server, receiver) end with the script.
    let _ = Command::new("kill")
        .args(["-TERM", "--", &format!("-{}", child.id())])
        .stderr(Stdio::null())
        .status();
    (
        ok,
        std::fs::read_to_string(out).unwrap_or_default(),
        std::fs::read_to_string(err).unwrap_or_default(),
    )
}

#[test]
fn first_hour_path_reaches_a_verified_notification() {
    // bash and python3 are present here and in CI (the signing examples need them too).
    assert!(
        have("bash") && have("python3"),
        "bash and python3 are installed"
    );
    if !have("curl") {
        println!("skipping the first-hour path: curl is not installed");
        return;
    }
    let blocks = first_hour_blocks();
    assert!(blocks.len() >= 5, "the first-hour path has its steps");
    let (server, receiver) = (free_port(), free_port());
    let body = blocks
        .concat()
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{server}"))
        .replace("127.0.0.1:8000", &format!("127.0.0.1:{receiver}"))
        .replace("PORT=8000", &format!("PORT={receiver}"));
    let script =
        format!("set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n{body}");
    let dir = workdir();
    let (ok, out, err) = run_bash(dir.path(), &script, Duration::from_secs(120));
    let server_log = std::fs::read_to_string(dir.path().join("server.log")).unwrap_or_default();
    let context = format!(
        "--- script\n{script}\n--- stdout\n{out}\n--- stderr\n{err}\n--- server.log\n{server_log}"
    );
    assert!(ok, "the first-hour commands failed\n{context}");
    // Step 2: both secrets were printed.
    assert!(out.contains("webhook_secret: whsec_"), "{context}");
    assert!(out.contains("secret:         sk_test_"), "{context}");
    // Step 3: the signed link opens the payment page.
    assert!(
        out.lines().any(|l| l.trim() == "200"),
        "the signed link did not open: {context}"
    );
    // Step 5: the receiver verified the signature and printed the event.
    let events = std::fs::read_to_string(dir.path().join("events.jsonl")).unwrap();
    let event: serde_json::Value = serde_json::from_str(events.lines().next().unwrap()).unwrap();
    assert_eq!(event["type"], "ping", "{context}");
    assert!(event["data"]["merchant_id"]
        .as_str()
        .unwrap()
        .starts_with("m_"));
}

/// The README's quick start: no command at all still serves, and prints the demo link and the
/// demo merchant's two secrets.
#[test]
fn running_without_a_command_serves_and_prints_the_demo_secrets() {
    let dir = workdir();
    let port = free_port();
    let script = format!(
        "KAKEHASHI_ADDR=127.0.0.1:{port} kakehashi > start.log 2>&1 &\n\
         until grep -q 'Merchant console' start.log; do sleep 0.2; done\n\
         kill %1\n"
    );
    let (ok, _, err) = run_bash(dir.path(), &script, Duration::from_secs(60));
    let log = std::fs::read_to_string(dir.path().join("start.log")).unwrap_or_default();
    assert!(ok, "{err}\n{log}");
    assert!(
        log.contains("Demo signing secret (shown once): sk_test_"),
        "{log}"
    );
    assert!(
        log.contains("Demo webhook secret (shown once): whsec_"),
        "{log}"
    );
    assert!(
        log.contains(&format!("http://127.0.0.1:{port}/checkout?")),
        "{log}"
    );
}
