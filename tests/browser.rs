//! Runs the browser end-to-end suite (tests/browser/e2e.test.mjs: Playwright driving Debian's
//! Chromium, axe-core, the Nu Html Checker) against the real server binary, on SQLite and on
//! PostgreSQL. When Node.js, Chromium or tests/browser/node_modules is missing the tests fail,
//! unless the run set `KAKEHASHI_SKIP_BROWSER=1` (then they are skipped with a printed line);
//! likewise an unreachable PostgreSQL fails the PostgreSQL run unless `KAKEHASHI_SKIP_PG=1`.

use std::path::Path;
use std::process::Command;

#[path = "support/skip.rs"]
mod skip;

use skip::{skip_or_fail, Service, PG_INSTALL};

fn run_suite(database_url: &str, label: &str) {
    let root = env!("CARGO_MANIFEST_DIR");
    let dir = Path::new(root).join("tests/browser");
    let artifacts = Path::new(root).join("target/browser-artifacts").join(label);
    let out = Command::new("node")
        .args(["--test", "--test-reporter=spec", "e2e.test.mjs"])
        .current_dir(&dir)
        .env("KAKEHASHI_BIN", env!("CARGO_BIN_EXE_kakehashi"))
        .env("KAKEHASHI_ROOT", root)
        .env("DATABASE_URL", database_url)
        .env("ARTIFACTS_DIR", &artifacts)
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}\n{stderr}");
    assert!(
        out.status.success(),
        "browser suite failed on {label} (screenshots in {})",
        artifacts.display()
    );
}

/// Whether Node.js, Chromium and the Node modules are here; when not, fails the test or (with
/// `KAKEHASHI_SKIP_BROWSER=1`) prints a skip line and returns false.
fn available() -> bool {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let modules = root.join("tests/browser/node_modules");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let (mut missing, mut install) = (Vec::new(), Vec::new());
    if Command::new("node").arg("--version").output().is_err() {
        missing.push("Node.js".to_owned());
        install.push("apt-get install -y nodejs npm".to_owned());
    }
    if !Path::new(&chromium).exists() {
        missing.push(format!("Chromium at {chromium}"));
        install.push("apt-get install -y chromium (or set CHROMIUM to its path)".to_owned());
    }
    let absent: Vec<&str> = ["playwright-core", "axe-core", "vnu-jar"]
        .into_iter()
        .filter(|m| !modules.join(m).is_dir())
        .collect();
    if !absent.is_empty() {
        missing.push(format!(
            "{} in tests/browser/node_modules",
            absent.join(", ")
        ));
        install.push("(cd tests/browser && npm ci)".to_owned());
    }
    if missing.is_empty() {
        return true;
    }
    skip_or_fail(
        Service::Browser,
        &format!("the browser tests need {}", missing.join("; ")),
        &install.join("; "),
    );
    false
}

#[test]
fn browser_end_to_end_sqlite() {
    if !available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("browser.db").display());
    run_suite(&url, "sqlite");
}

#[tokio::test]
async fn browser_end_to_end_postgres() {
    if !available() {
        return;
    }
    use sqlx::Connection;
    let admin_url = std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let mut admin = match sqlx::PgConnection::connect(&admin_url).await {
        Ok(c) => c,
        Err(e) => {
            skip_or_fail(
                Service::Postgres,
                &format!("PostgreSQL is unreachable at {admin_url} ({e})"),
                PG_INSTALL,
            );
            return;
        }
    };
    let name = kakehashi::util::random_id("kb", 12);
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .unwrap();
    let url = match admin_url.rsplit_once('/') {
        Some((prefix, _)) => format!("{prefix}/{name}"),
        None => panic!("unexpected TEST_DATABASE_URL {admin_url}"),
    };
    tokio::task::spawn_blocking(move || run_suite(&url, "postgres"))
        .await
        .unwrap();
    let _ = sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .execute(&mut admin)
        .await;
}
