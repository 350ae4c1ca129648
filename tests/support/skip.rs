//! What a test does when a service or program it needs is missing: it fails, naming what is
//! missing and how to install it, unless the run explicitly allows skipping that service with a
//! `KAKEHASHI_SKIP_*=1` variable. A skip is reported on the process's real stderr, which libtest
//! does not capture, so it shows in a plain `cargo test` even when every test passes.
//!
//! Shared by the `api` test binary (tests/api/main.rs) and the `browser` one (tests/browser.rs).

use std::io::Write;

/// Something a test needs from the machine, with the variable that allows skipping it.
#[derive(Clone, Copy, Debug)]
#[allow(dead_code)] // each test binary uses only some of them
pub enum Service {
    /// PostgreSQL at `TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/test`).
    Postgres,
    /// Chromium, Node.js and tests/browser/node_modules, for the browser suite.
    Browser,
    /// A program that runs one of the copy-paste scripts in docs/examples (bash, python3, node,
    /// php, curl, openssl).
    Examples,
    /// localstripe (a Stripe API stand-in, `pip install localstripe`), for the Stripe tests.
    Localstripe,
    /// nginx and openssl, for the reference deployment tests (tests/api/deploy.rs).
    Nginx,
}

impl Service {
    pub fn skip_var(self) -> &'static str {
        match self {
            Service::Postgres => "KAKEHASHI_SKIP_PG",
            Service::Browser => "KAKEHASHI_SKIP_BROWSER",
            Service::Examples => "KAKEHASHI_SKIP_EXAMPLES",
            Service::Localstripe => "KAKEHASHI_SKIP_LOCALSTRIPE",
            Service::Nginx => "KAKEHASHI_SKIP_NGINX",
        }
    }

    /// What setting the variable skips.
    fn scope(self) -> &'static str {
        match self {
            Service::Postgres => "the PostgreSQL runs when PostgreSQL is unreachable",
            Service::Browser => {
                "the browser tests when Chromium, Node.js or tests/browser/node_modules is missing"
            }
            Service::Examples => "each docs/examples script whose program is not installed",
            Service::Localstripe => "the Stripe tests when localstripe is not installed",
            Service::Nginx => "the deployment tests when nginx or openssl is not installed",
        }
    }

    /// Whether this run asked to skip the service when it is missing: the variable is `1`.
    /// Unset, empty or `0` means required; any other value is a mistake and fails the test.
    #[track_caller]
    fn skip_requested(self) -> bool {
        let var = self.skip_var();
        match std::env::var(var).as_deref() {
            Ok("1") => true,
            Ok("" | "0") | Err(std::env::VarError::NotPresent) => false,
            Ok(other) => {
                panic!("{var}={other:?}: set it to 1 to allow skipping, or leave it unset")
            }
            Err(e) => panic!("{var}: {e}"),
        }
    }
}

/// Called when `service` is missing: `missing` says what is missing, `fix` how to install it.
/// Returns (and the caller skips its work) only when the run set the service's
/// `KAKEHASHI_SKIP_*=1`, after printing a `SKIPPED` line that libtest shows; otherwise panics
/// with both and how to skip.
#[track_caller]
pub fn skip_or_fail(service: Service, missing: &str, fix: &str) {
    let var = service.skip_var();
    if !service.skip_requested() {
        panic!(
            "{missing}\nTo fix: {fix}\nOr, to skip instead, set {var}=1: it skips {}.",
            service.scope()
        );
    }
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("?");
    // Not `eprintln!`: libtest captures the print macros, but not writes to the stderr handle.
    let line = format!("SKIPPED {test} ({var}=1): {missing}\n");
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// How to get the PostgreSQL the tests expect.
pub const PG_INSTALL: &str = "start PostgreSQL with user postgres, trust auth and a database \
    `test` (Debian: `apt-get install -y postgresql`, then `pg_ctlcluster <version> main start`), \
    or point TEST_DATABASE_URL at one";
