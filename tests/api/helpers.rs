//! Test harness: spawn the app on port 0 with a fresh SQLite file or PostgreSQL schema.

use std::str::FromStr;

use kakehashi::config::Config;
use kakehashi::db::merchants::{self, NewMerchant};
use kakehashi::db::Db;
use kakehashi::domain::{Method, Mode};
use kakehashi::startup::App;
use sqlx::postgres::PgConnectOptions;
use sqlx::Connection;

pub use crate::skip::{skip_or_fail, Service, PG_INSTALL};

pub const SHOP: &str = "https://shop.example";

pub const UA_PC: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
pub const UA_MAC: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Safari/605.1.15";
pub const UA_IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1";
pub const UA_ANDROID: &str = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36";
pub const UA_IPAD: &str = "Mozilla/5.0 (iPad; CPU OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1";
pub const UA_ANDROID_TABLET: &str = "Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
pub const UA_DOCOMO: &str = "DoCoMo/2.0 P903i(c100;TB;W24H12)";
pub const UA_DOCOMO_1: &str = "DoCoMo/1.0/N505i/c20/TB/W20H10";
pub const UA_AU: &str = "KDDI-SH3I UP.Browser/6.2.0.13.2 (GUI) MMP/2.0";
pub const UA_SOFTBANK: &str = "SoftBank/1.0/930SH/SHJ001/SN353012345678901 Browser/NetFront/3.5 Profile/MIDP-2.0 Configuration/CLDC-1.1";
pub const UA_CRAWLER: &str =
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";

#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct TestApp {
    pub base: String,
    pub db: Db,
    /// The running server's state (its connector registry, keys, config).
    pub state: kakehashi::state::AppState,
    /// The server's clock: tests move it instead of sleeping.
    pub clock: std::sync::Arc<kakehashi::context::ManualClock>,
    /// A client that never follows redirects and keeps no cookies.
    pub client: reqwest::Client,
    _dir: Option<tempfile::TempDir>,
}

/// A merchant created for a test, with its signing credentials.
#[derive(Clone, Debug)]
pub struct TestMerchant {
    pub id: String,
    pub key_id: String,
    pub secret: String,
}

pub fn pg_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// Called when `program`, which docs/examples/`script` runs with, is not installed: fails, or
/// returns when the run set `KAKEHASHI_SKIP_EXAMPLES=1` (the caller then skips the script).
#[track_caller]
pub fn example_program_missing(script: &str, program: &str) {
    let package = match program {
        "node" => "nodejs",
        "php" => "php-cli",
        other => other,
    };
    skip_or_fail(
        Service::Examples,
        &format!("docs/examples/{script} needs {program}, which is not installed"),
        &format!("apt-get install -y {package} (Debian)"),
    );
}

/// A card expiry year three years from now, as the two digits a shopper types.
pub fn future_exp_year() -> String {
    format!("{:02}", future_exp_year_full() % 100)
}

/// A card expiry year three years from now, four digits.
pub fn future_exp_year_full() -> i32 {
    time::OffsetDateTime::now_utc().year() + 3
}

/// Last year as two digits: a card expiring in any month of it has expired.
pub fn past_exp_year() -> String {
    format!("{:02}", (time::OffsetDateTime::now_utc().year() - 1) % 100)
}

/// Starts the app on the given backend. `None` only for PostgreSQL when it is unreachable and the
/// run set `KAKEHASHI_SKIP_PG=1` (a `SKIPPED` line is printed); unreachable otherwise fails.
pub async fn spawn_app(backend: Backend) -> Option<TestApp> {
    spawn_app_with(backend, |_| {}).await
}

/// Everything the server logs during the test run (all tests share it), at debug level, so
/// tests can check what never appears in logs.
pub fn logs() -> String {
    String::from_utf8_lossy(&LOGS.lock().unwrap()).into_owned()
}

static LOGS: std::sync::Mutex<Vec<u8>> = std::sync::Mutex::new(Vec::new());

struct LogWriter;
impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOGS.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn init_logs() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("debug,sqlx=debug,hyper=info,h2=info,rustls=info")
            .with_writer(|| LogWriter)
            .with_ansi(false)
            .try_init();
    });
}

pub async fn spawn_app_with(backend: Backend, tweak: impl FnOnce(&mut Config)) -> Option<TestApp> {
    spawn_app_full(backend, tweak, Vec::new()).await
}

/// A fixed master key for tests that store processor credentials.
pub const TEST_MASTER_KEY: &str =
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// Like [`spawn_app_with`], with a master key and these processor drivers registered (test
/// doubles of live processors exist only in the tests).
pub async fn spawn_app_live(
    backend: Backend,
    drivers: Vec<std::sync::Arc<dyn kakehashi::connectors::registry::ProcessorDriver>>,
) -> Option<TestApp> {
    spawn_app_full(
        backend,
        |c| c.master_key = Some(kakehashi::config::Redacted(TEST_MASTER_KEY.into())),
        drivers,
    )
    .await
}

pub async fn spawn_app_full(
    backend: Backend,
    tweak: impl FnOnce(&mut Config),
    drivers: Vec<std::sync::Arc<dyn kakehashi::connectors::registry::ProcessorDriver>>,
) -> Option<TestApp> {
    init_logs();
    let (db, dir, url) = match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite://{}", dir.path().join("test.db").display());
            (Db::connect(&url).await.unwrap(), Some(dir), url)
        }
        Backend::Postgres => {
            let url = pg_url();
            let mut admin = match sqlx::PgConnection::connect(&url).await {
                Ok(c) => c,
                Err(e) => {
                    skip_or_fail(
                        Service::Postgres,
                        &format!("PostgreSQL is unreachable at {url} ({e})"),
                        PG_INSTALL,
                    );
                    return None;
                }
            };
            let schema = kakehashi::util::random_id("t", 16);
            sqlx::query(&format!("CREATE SCHEMA {schema}"))
                .execute(&mut admin)
                .await
                .unwrap();
            let opts = PgConnectOptions::from_str(&url)
                .unwrap()
                .options([("search_path", schema.as_str())]);
            (Db::connect_pg(opts).await.unwrap(), None, url)
        }
    };
    let mut config = Config::for_tests(url);
    tweak(&mut config);
    Some(start(config, db, dir, drivers).await)
}

async fn start(
    config: Config,
    db: Db,
    dir: Option<tempfile::TempDir>,
    drivers: Vec<std::sync::Arc<dyn kakehashi::connectors::registry::ProcessorDriver>>,
) -> TestApp {
    let mut app = App::build_with_db(config, db.clone()).await.unwrap();
    let clock = std::sync::Arc::new(kakehashi::context::ManualClock::default());
    app.set_clock(clock.clone());
    for d in drivers {
        app.register_driver(d);
    }
    let base = format!("http://{}", app.addr);
    let state = app.state.clone();
    // Tests stop with the runtime; they install no process signal handlers.
    tokio::spawn(app.run_until(std::future::pending()));
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    TestApp {
        base,
        db,
        state,
        clock,
        client,
        _dir: dir,
    }
}

/// A second server instance on the same database (its own listener and worker).
pub async fn spawn_app_sharing(other: &TestApp, workers: bool) -> TestApp {
    spawn_app_sharing_with(other, workers, |_| {}).await
}

/// Like [`spawn_app_sharing`], with a configuration tweak (e.g. the same master key).
pub async fn spawn_app_sharing_with(
    other: &TestApp,
    workers: bool,
    tweak: impl FnOnce(&mut Config),
) -> TestApp {
    let mut config = Config::for_tests(String::new());
    config.workers = workers;
    tweak(&mut config);
    start(config, other.db.clone(), None, Vec::new()).await
}

/// Declares `sqlite` and `postgres` test functions running `$body(app)`.
macro_rules! both {
    ($name:ident) => {
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                let app = $crate::helpers::spawn_app($crate::helpers::Backend::Sqlite)
                    .await
                    .unwrap();
                super::$name(app).await;
            }
            #[tokio::test]
            async fn postgres() {
                if let Some(app) =
                    $crate::helpers::spawn_app($crate::helpers::Backend::Postgres).await
                {
                    super::$name(app).await;
                }
            }
        }
    };
}
pub(crate) use both;

pub fn now_s() -> i64 {
    kakehashi::util::now_ms() / 1000
}

impl TestApp {
    /// Creates a test-mode merchant with every method and `https://shop.example` registered.
    pub async fn merchant(&self) -> TestMerchant {
        self.merchant_with(|_| {}).await
    }

    pub async fn merchant_with(&self, tweak: impl FnOnce(&mut NewMerchant)) -> TestMerchant {
        let mut m = NewMerchant {
            id: None,
            name: "テスト商店".into(),
            mode: Mode::Test,
            methods: Method::ALL.to_vec(),
            konbini_chains: kakehashi::cli::ALL_CHAINS
                .split(',')
                .map(str::to_owned)
                .collect(),
            return_origins: vec![SHOP.into()],
            callback_url: None,
            notify_format: "standard".into(),
            theme: "demo".into(),
            konbini_days: 7,
            capture_mode: "auto".into(),
            card_options: "lump,inst3,inst6,bonus,revo".into(),
        };
        tweak(&mut m);
        let (id, key) = merchants::create(&self.db, &self.state.keys, &m, self.state.now_ms())
            .await
            .unwrap();
        TestMerchant {
            id,
            key_id: key.key_id,
            secret: key.secret,
        }
    }

    /// Link fields for an order of `amount` yen; override or add with `extra` ("" removes).
    pub fn fields(
        &self,
        m: &TestMerchant,
        order_id: &str,
        amount: i64,
        extra: &[(&str, &str)],
    ) -> Vec<(String, String)> {
        let mut f: Vec<(String, String)> = vec![
            ("merchant_id".into(), m.id.clone()),
            ("key_id".into(), m.key_id.clone()),
            ("order_id".into(), order_id.into()),
            ("amount".into(), amount.to_string()),
            ("item_name".into(), "テスト商品".into()),
            ("return_url".into(), format!("{SHOP}/thanks")),
            ("expires_at".into(), (now_s() + 3600).to_string()),
        ];
        for (k, v) in extra {
            f.retain(|(fk, _)| fk != k);
            if !v.is_empty() {
                f.push((k.to_string(), v.to_string()));
            }
        }
        f
    }

    /// A signed checkout URL for the fields.
    pub fn link(&self, m: &TestMerchant, fields: &[(String, String)]) -> String {
        let pairs: Vec<(&str, &str)> = fields
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        format!(
            "{}/checkout?{}",
            self.base,
            kakehashi::signing::signed_query(&m.secret, &pairs)
        )
    }

    pub async fn get(&self, url: &str, ua: &str) -> reqwest::Response {
        let url = if url.starts_with('/') {
            format!("{}{url}", self.base)
        } else {
            url.to_owned()
        };
        self.client
            .get(url)
            .header("user-agent", ua)
            .send()
            .await
            .unwrap()
    }

    pub async fn post_form(&self, url: &str, ua: &str, form: &[(&str, &str)]) -> reqwest::Response {
        let url = if url.starts_with('/') {
            format!("{}{url}", self.base)
        } else {
            url.to_owned()
        };
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        self.client
            .post(url)
            .header("user-agent", ua)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap()
    }

    /// Opens a signed link and returns (status, body).
    pub async fn open(
        &self,
        m: &TestMerchant,
        fields: &[(String, String)],
        ua: &str,
    ) -> (u16, String) {
        let r = self.get(&self.link(m, fields), ua).await;
        (r.status().as_u16(), r.text().await.unwrap())
    }

    pub async fn count(&self, table: &str) -> i64 {
        let sql = format!("SELECT COUNT(*) FROM {table}");
        kakehashi::on_db!(&self.db, c => sqlx::query_scalar(&sql).fetch_one(c).await).unwrap()
    }
}

/// The value of `name="..." value="..."` hidden input in a page.
pub fn hidden(body: &str, name: &str) -> String {
    let needle = format!("name=\"{name}\" value=\"");
    let start = body
        .find(&needle)
        .unwrap_or_else(|| panic!("no hidden {name} in {body}"))
        + needle.len();
    body[start..].split('"').next().unwrap().to_owned()
}

/// The first `action="..."` in a page.
pub fn action(body: &str) -> String {
    let start = body.find("action=\"").expect("form action") + 8;
    body[start..]
        .split('"')
        .next()
        .unwrap()
        .replace("&amp;", "&")
        .replace("&#38;", "&")
}

/// The error code shown on an error page.
pub fn error_code(body: &str) -> String {
    if let Some(i) = body.find("id=\"error-code\">") {
        return body[i + 16..].split('<').next().unwrap().to_owned();
    }
    // Feature-phone page: "エラーコード:<code>"
    let i = body.find("エラーコード:").expect("error code on page") + "エラーコード:".len();
    body[i..].split(['<', '(']).next().unwrap().to_owned()
}

/// A merchant's notification endpoint, local to the test: records every request and answers
/// with scripted statuses (then 200).
#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    pub hits: std::sync::Arc<std::sync::Mutex<Vec<Hit>>>,
    script: std::sync::Arc<std::sync::Mutex<std::collections::VecDeque<(u16, String)>>>,
}

#[derive(Clone, Debug)]
pub struct Hit {
    pub path: String,
    pub headers: axum::http::HeaderMap,
    pub body: Vec<u8>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        use axum::response::IntoResponse;
        let hits: std::sync::Arc<std::sync::Mutex<Vec<Hit>>> = Default::default();
        let script: std::sync::Arc<std::sync::Mutex<std::collections::VecDeque<(u16, String)>>> =
            Default::default();
        let (h, s) = (hits.clone(), script.clone());
        let app = axum::Router::new().fallback(
            move |uri: axum::http::Uri, headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let (h, s) = (h.clone(), s.clone());
                async move {
                    h.lock().unwrap().push(Hit {
                        path: uri.path().to_owned(),
                        headers,
                        body: body.to_vec(),
                    });
                    let (status, text) =
                        s.lock().unwrap().pop_front().unwrap_or((200, "ok".into()));
                    let mut r =
                        (axum::http::StatusCode::from_u16(status).unwrap(), text).into_response();
                    if status == 302 {
                        r.headers_mut()
                            .insert("location", "/redirected".parse().unwrap());
                    }
                    if status == 503 {
                        r.headers_mut().insert("retry-after", "1".parse().unwrap());
                    }
                    r
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/notify", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver { url, hits, script }
    }

    /// Queues responses for the next requests.
    pub fn respond(&self, statuses: &[(u16, &str)]) {
        let mut s = self.script.lock().unwrap();
        for (code, body) in statuses {
            s.push_back((*code, body.to_string()));
        }
    }

    pub fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }

    /// Waits (bounded) until `pred` holds for the recorded hits.
    pub async fn wait_for(&self, what: &str, pred: impl Fn(&[Hit]) -> bool) -> Vec<Hit> {
        for _ in 0..400 {
            let hits = self.hits();
            if pred(&hits) {
                return hits;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        panic!(
            "timed out waiting for {what}; hits: {:?}",
            self.hits().len()
        );
    }
}

impl Hit {
    pub fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// Polls `f` until it returns Some (bounded), for state that settles asynchronously.
pub async fn eventually<T, F, Fut>(what: &str, f: F) -> T
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    for _ in 0..400 {
        if let Some(v) = f().await {
            return v;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for {what}");
}

impl TestApp {
    pub async fn scalar_str(&self, sql: &str) -> Option<String> {
        kakehashi::on_db!(&self.db, c => sqlx::query_scalar::<_, String>(sql).fetch_optional(c).await).unwrap()
    }

    pub async fn webhook_secret(&self, merchant_id: &str) -> String {
        let m = kakehashi::db::merchants::get(&self.db, merchant_id)
            .await
            .unwrap()
            .unwrap();
        m.webhook_secrets(&self.state.keys).unwrap()[0].clone()
    }
}

/// The `location` header of a redirect response.
pub fn location(r: &reqwest::Response) -> String {
    r.headers()
        .get("location")
        .unwrap_or_else(|| panic!("no location on {}", r.status()))
        .to_str()
        .unwrap()
        .to_owned()
}

/// A body decoded as Shift_JIS (feature-phone pages).
pub async fn sjis_text(r: reqwest::Response) -> String {
    let bytes = r.bytes().await.unwrap();
    encoding_rs::SHIFT_JIS.decode(&bytes).0.into_owned()
}

impl TestApp {
    /// Posts a form encoded in Shift_JIS, as a feature phone does (no charset announced).
    pub async fn post_sjis(&self, url: &str, ua: &str, form: &[(&str, &str)]) -> reqwest::Response {
        let url = if url.starts_with('/') {
            format!("{}{url}", self.base)
        } else {
            url.to_owned()
        };
        let enc = |s: &str| {
            let (bytes, _, _) = encoding_rs::SHIFT_JIS.encode(s);
            percent_encoding::percent_encode(&bytes, percent_encoding::NON_ALPHANUMERIC).to_string()
        };
        let body = form
            .iter()
            .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
            .collect::<Vec<_>>()
            .join("&");
        self.client
            .post(url)
            .header("user-agent", ua)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap()
    }

    /// Opens a link and picks `method` on the selector; returns the method page's path
    /// (`/pay/{token}/{method}`).
    pub async fn choose(
        &self,
        m: &TestMerchant,
        order_id: &str,
        amount: i64,
        method: &str,
        ua: &str,
    ) -> String {
        let f = self.fields(m, order_id, amount, &[]);
        let (status, body) = self.open(m, &f, ua).await;
        assert_eq!(status, 200, "{body}");
        let r = self
            .post_form(
                &action(&body),
                ua,
                &[("csrf", &hidden(&body, "csrf")), ("method", method)],
            )
            .await;
        assert_eq!(r.status().as_u16(), 303, "choosing {method}");
        location(&r)
    }

    pub async fn payment_status(&self, id: &str) -> String {
        kakehashi::db::payments::get(&self.db, id)
            .await
            .unwrap()
            .unwrap()
            .status
            .code()
            .to_owned()
    }

    pub async fn checkout_status(&self, m: &TestMerchant, order_id: &str) -> String {
        kakehashi::db::checkouts::find_by_order(&self.db, &m.id, order_id)
            .await
            .unwrap()
            .unwrap()
            .status
            .code()
            .to_owned()
    }
}

/// A response of the JSON API: status, headers and parsed body.
pub struct ApiResp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub json: serde_json::Value,
}

impl ApiResp {
    /// The error code of an error body ("" when none).
    pub fn code(&self) -> &str {
        self.json["error"]["code"].as_str().unwrap_or("")
    }
}

impl TestApp {
    /// Moves the server's clock forward to `at_ms` (unix ms) unless it is already there: a
    /// test that runs a job "at" a later time lets the server's clock reach it too (rows the
    /// job wrote, e.g. notifications, are due from then on).
    pub fn advance_clock_to(&self, at_ms: i64) {
        let behind = at_ms - self.state.now_ms();
        if behind > 0 {
            self.clock
                .advance(std::time::Duration::from_millis(behind as u64));
        }
    }

    /// Creates an API key for the merchant and returns its secret.
    pub async fn api_key(&self, m: &TestMerchant) -> String {
        kakehashi::api::keys::create(&self.db, &m.id, self.state.now_ms())
            .await
            .unwrap()
            .1
    }

    /// Sends an API request: `key` as the bearer (None: no header), `idem` as Idempotency-Key.
    pub async fn api(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        idem: Option<&str>,
        body: Option<&serde_json::Value>,
    ) -> ApiResp {
        let mut rb = self.client.request(
            reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
            format!("{}{path}", self.base),
        );
        if let Some(k) = key {
            rb = rb.header("authorization", format!("Bearer {k}"));
        }
        if let Some(i) = idem {
            rb = rb.header("idempotency-key", i);
        }
        if let Some(b) = body {
            rb = rb
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let r = rb.send().await.unwrap();
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap();
        let json = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
        ApiResp {
            status,
            headers,
            json,
        }
    }

    /// POST with a fresh Idempotency-Key.
    pub async fn api_post(&self, path: &str, key: &str, body: serde_json::Value) -> ApiResp {
        let idem = kakehashi::util::random_id("idem", 16);
        self.api("POST", path, Some(key), Some(&idem), Some(&body))
            .await
    }

    pub async fn api_get(&self, path: &str, key: &str) -> ApiResp {
        self.api("GET", path, Some(key), None, None).await
    }
}

impl TestApp {
    /// The same server and database reached another way: requests go to `base` with `client`
    /// (e.g. through a TLS proxy in front of several instances).
    pub fn through(&self, base: String, client: reqwest::Client) -> TestApp {
        TestApp {
            base,
            db: self.db.clone(),
            state: self.state.clone(),
            clock: self.clock.clone(),
            client,
            _dir: None,
        }
    }
}

impl TestApp {
    /// Fails if any of the PostgreSQL connections (all 16, taken at once, so the workers' too
    /// once they let go of one) holds a prepared statement starting with `prefix`: a statement
    /// meant to be planned at each run (`Db::write_fetch_all_replanned`).
    pub async fn assert_not_prepared(&self, prefix: &str) {
        let kakehashi::db::Db::Postgres(pg) = &self.db else {
            panic!("a PostgreSQL app")
        };
        let mut conns = Vec::new();
        for _ in 0..16 {
            conns.push(pg.acquire().await.unwrap());
        }
        for c in &mut conns {
            let kept: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_prepared_statements WHERE starts_with(statement, $1)",
            )
            .bind(prefix)
            .fetch_one(c.conn())
            .await
            .unwrap();
            assert_eq!(kept, 0, "{prefix}… is kept as a prepared statement");
        }
    }
}
