//! Runs the browser end-to-end suite (tests/browser/e2e.test.mjs: Playwright driving Debian's
//! Chromium, axe-core, the Nu Html Checker) against the real server binary, on SQLite and on
//! PostgreSQL. Skipped with a printed line when Node modules or Chromium are missing, unless
//! `REQUIRE_BROWSER=1` (set in .ci/run).

use std::path::Path;
use std::process::Command;

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

fn available() -> bool {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/node_modules");
    let ok = dir.join("playwright-core").is_dir()
        && dir.join("axe-core").is_dir()
        && dir.join("vnu-jar").is_dir()
        && Path::new(&std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()))
            .exists();
    if !ok {
        assert!(
            std::env::var("REQUIRE_BROWSER").as_deref() != Ok("1"),
            "REQUIRE_BROWSER=1 but Chromium or tests/browser/node_modules is missing (npm ci in tests/browser)"
        );
        println!("skipping browser tests: install chromium and run `npm ci` in tests/browser");
    }
    ok
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
            assert!(
                std::env::var("REQUIRE_POSTGRES").as_deref() != Ok("1"),
                "PostgreSQL unreachable: {e}"
            );
            println!("skipping PostgreSQL browser run: {e}");
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
