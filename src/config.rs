//! Server configuration: every setting, its environment variable and its default.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Runtime settings. Built from CLI flags / environment variables (the `cli` module), or
/// directly by tests. `Debug` never prints secrets (the SMS gateway credential is [`Redacted`]).
#[derive(Clone, Debug)]
pub struct Config {
    /// Address to listen on (`KAKEHASHI_ADDR`, default `127.0.0.1:8080`; port 0 picks a free port).
    pub addr: SocketAddr,
    /// `sqlite://path` (default `sqlite://data/kakehashi.db`) or `postgres://...` (`DATABASE_URL`).
    pub database_url: String,
    /// Public base URL used in printed and generated links (`KAKEHASHI_PUBLIC_URL`);
    /// defaults to `http://<addr>`.
    pub public_url: Option<String>,
    /// Folder holding `<name>/theme.toml` (`KAKEHASHI_THEMES_DIR`, default `themes`).
    pub themes_dir: PathBuf,
    /// Folder holding static assets (`KAKEHASHI_STATIC_DIR`, default `static`).
    pub static_dir: PathBuf,
    /// Send `Strict-Transport-Security` (`KAKEHASHI_HSTS=1`) when served behind TLS.
    pub hsts: bool,
    /// Allow merchant callback URLs on loopback addresses (`KAKEHASHI_ALLOW_LOOPBACK_CALLBACKS=1`):
    /// for local development and the test suite only.
    pub allow_loopback_callbacks: bool,
    /// Lifetime of a shopper's checkout session token, in seconds (`KAKEHASHI_SESSION_TTL`, 3600).
    pub session_ttl_s: i64,
    /// Absolute lifetime of a shopper's session, in seconds, however often it is renewed
    /// (`KAKEHASHI_SESSION_MAX_S`, 7200): a leaked `/pay/...` URL stops working after this.
    pub session_max_s: i64,
    /// Card-testing defence: failed card attempts allowed per checkout (`KAKEHASHI_CARD_MAX_FAILS`, 5).
    pub card_max_failures: i64,
    /// Reverse proxies whose `Forwarded` / `X-Forwarded-For` name the client
    /// (`KAKEHASHI_TRUSTED_PROXIES`, CIDR list, empty): see [`crate::client_addr`].
    pub trusted_proxies: Vec<crate::client_addr::Cidr>,
    /// Multiplier on the notification retry schedule (`KAKEHASHI_NOTIFY_RETRY_SCALE`, 1.0): the
    /// test suite shrinks the three-day schedule to milliseconds.
    pub notify_retry_scale: f64,
    /// How long a worker's lease on a notification lasts, in ms (`KAKEHASHI_NOTIFY_LEASE_MS`,
    /// 60000). Longer than the 15 s delivery timeout, so a live worker never loses its event.
    pub notify_lease_ms: i64,
    /// Deliveries to one endpoint (callback URL origin) at once, at most
    /// (`KAKEHASHI_NOTIFY_ENDPOINT_CONCURRENCY`, 4).
    pub notify_endpoint_concurrency: usize,
    /// Days after which an uncaptured card authorization lapses (`KAKEHASHI_CARD_AUTH_DAYS`, 60).
    pub card_auth_lapse_days: i64,
    /// Merchant console: sign-in expires after this many idle seconds (`KAKEHASHI_CONSOLE_IDLE`,
    /// 900 = 15 minutes). Tests shorten it to check the idle timeout.
    pub console_idle_s: i64,
    /// Console sign-in attempts allowed per client address per minute
    /// (`KAKEHASHI_CONSOLE_LOGIN_RATE`, 10); more answer 429 with a console page.
    pub console_login_per_minute: u32,
    /// How long a client may take to send a request's headers, in ms, and how long an idle
    /// connection waits for the next request's first header byte (`KAKEHASHI_HEADER_TIMEOUT_MS`,
    /// 10000). Defends against slow-header (slowloris) connections.
    pub header_timeout_ms: u64,
    /// A keep-alive connection with no bytes read or written for this long is closed, in ms
    /// (`KAKEHASHI_IDLE_TIMEOUT_MS`, 60000). A request in flight is answered first.
    pub idle_timeout_ms: u64,
    /// Open client connections at most (`KAKEHASHI_MAX_CONNECTIONS`, 1024); more wait in the
    /// listen backlog until one closes.
    pub max_connections: usize,
    /// Bearer token that lets a scraper read `/metrics` from anywhere
    /// (`KAKEHASHI_METRICS_TOKEN`). Unset: only direct loopback clients (not through a proxy).
    pub metrics_token: Option<Redacted>,
    /// On a stop signal, how long the instance keeps serving while `/readyz` answers 503
    /// before it closes its listener, in ms (`KAKEHASHI_DRAIN_DELAY_MS`, 0): time for a
    /// balancer's readiness check to take it out of rotation first.
    pub drain_delay_ms: u64,
    /// Mount `GET /bench/limit`, the benchmark's no-database checkout page
    /// (`KAKEHASHI_BENCH_LIMIT=1`, off): for `bench/run.sh` only, never in production, since it
    /// keeps merchants and keys in memory for the life of the process.
    pub bench_limit: bool,
    /// Whether background workers (expiry, notification delivery) run in this process.
    pub workers: bool,
    /// How often the konbini / Pay-easy sweep (expiry, sandbox auto-pay) runs, in milliseconds
    /// (`KAKEHASHI_SWEEP_INTERVAL_MS`, 5000). Tests call the sweep directly instead.
    pub sweep_interval_ms: u64,
    /// SMS gateway endpoint for live merchants (`KAKEHASHI_SMS_HTTP_URL`); unset: live merchants
    /// cannot send SMS. Checked against the SSRF rules at startup.
    pub sms_http_url: Option<String>,
    /// Value of the `Authorization` header sent to the gateway (`KAKEHASHI_SMS_HTTP_AUTH`).
    pub sms_http_auth: Option<Redacted>,
    /// JSON body template with `{to}` and `{text}` placeholders (`KAKEHASHI_SMS_HTTP_BODY`),
    /// filled with JSON-escaped values.
    pub sms_http_body: String,
    /// Messages a merchant may send per minute (`KAKEHASHI_SMS_RATE_PER_MINUTE`, 20).
    pub sms_rate_per_minute: i64,
    /// Master key sealing processor credentials at rest (`KAKEHASHI_MASTER_KEY`, or the file
    /// named by `KAKEHASHI_MASTER_KEY_FILE`): 32 bytes as hex or base64. Unset: live
    /// credentials cannot be stored, so no method can go live.
    pub master_key: Option<Redacted>,
    /// Older master keys still accepted for opening during a rotation
    /// (`KAKEHASHI_MASTER_KEY_PREVIOUS`, comma-separated).
    pub master_key_previous: Vec<Redacted>,
    /// KOMOJU's API host (`KAKEHASHI_KOMOJU_API_BASE`, default `https://komoju.com`): https on a
    /// public host, unless loopback callbacks are allowed (a local fake in development/tests).
    pub komoju_api_base: String,
    /// Where Stripe's API and Stripe.js are (`KAKEHASHI_STRIPE_API_BASE`, `KAKEHASHI_STRIPE_JS_URL`).
    pub stripe: StripeSettings,
    /// The SMTP server that sends shoppers' e-mail (`KAKEHASHI_SMTP_*`, `KAKEHASHI_MAIL_FROM`;
    /// docs/messages.md). No host: no e-mail is sent.
    pub mail: MailSettings,
}

/// How the SMTP connection is secured (`KAKEHASHI_SMTP_TLS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS, which must succeed (port 587).
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No TLS: only for a catcher on this machine (loopback); refused for any other host.
    None,
}

impl SmtpTls {
    pub fn parse(s: &str) -> Option<SmtpTls> {
        match s {
            "starttls" => Some(SmtpTls::Starttls),
            "tls" => Some(SmtpTls::Tls),
            "none" => Some(SmtpTls::None),
            _ => None,
        }
    }

    pub fn default_port(self) -> u16 {
        match self {
            SmtpTls::Starttls => 587,
            SmtpTls::Tls => 465,
            SmtpTls::None => 25,
        }
    }
}

/// SMTP settings for shopper e-mail.
#[derive(Debug, Clone, Default)]
pub struct MailSettings {
    /// `KAKEHASHI_SMTP_HOST`; unset: e-mail is off.
    pub smtp_host: Option<String>,
    /// `KAKEHASHI_SMTP_PORT`; default from the TLS mode (587, 465, 25).
    pub smtp_port: Option<u16>,
    /// `KAKEHASHI_SMTP_TLS`: starttls (default) | tls | none.
    pub smtp_tls: SmtpTls,
    /// `KAKEHASHI_SMTP_USER` / `KAKEHASHI_SMTP_PASSWORD`: AUTH when both are set.
    pub smtp_user: Option<String>,
    pub smtp_password: Option<Redacted>,
    /// The From address (`KAKEHASHI_MAIL_FROM`), e.g. `pay@mail.example.jp`; the display name
    /// is each merchant's (`merchant messages --sender-name`, default the shop name).
    pub from: Option<String>,
    /// Seconds an SMTP conversation may take (`KAKEHASHI_SMTP_TIMEOUT`, 30).
    pub timeout_s: u64,
    /// DKIM signing, when the relay does not sign: the selector published in DNS
    /// (`KAKEHASHI_DKIM_SELECTOR`) and the private key file (`KAKEHASHI_DKIM_KEY_FILE`: an RSA
    /// PKCS#1 PEM, or an Ed25519 key as base64 of its 32 bytes). Both or neither.
    pub dkim_selector: Option<String>,
    pub dkim_key_file: Option<PathBuf>,
    /// The signing domain (`KAKEHASHI_DKIM_DOMAIN`); default: the From address's domain.
    pub dkim_domain: Option<String>,
}

/// Default gateway body: `{"to":"{to}","text":"{text}"}`.
pub const DEFAULT_SMS_HTTP_BODY: &str = r#"{"to":"{to}","text":"{text}"}"#;

/// KOMOJU's API host.
pub const DEFAULT_KOMOJU_API_BASE: &str = "https://komoju.com";

/// Stripe's API.
pub const DEFAULT_STRIPE_API_BASE: &str = "https://api.stripe.com";
/// Stripe.js.
pub const DEFAULT_STRIPE_JS_URL: &str = "https://js.stripe.com/v3/";

/// Where Stripe is, from the server settings (`KAKEHASHI_STRIPE_API_BASE`,
/// `KAKEHASHI_STRIPE_JS_URL`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StripeSettings {
    pub api_base: String,
    pub js_url: String,
}

impl Default for StripeSettings {
    fn default() -> Self {
        StripeSettings {
            api_base: DEFAULT_STRIPE_API_BASE.into(),
            js_url: DEFAULT_STRIPE_JS_URL.into(),
        }
    }
}

/// A setting that is a credential: `Debug` prints `***` so configs can be logged.
#[derive(Clone)]
pub struct Redacted(pub String);

impl std::fmt::Debug for Redacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl Config {
    /// The master keys as a keyring ([`crate::secrets`]).
    pub fn keyring(&self) -> Result<crate::secrets::Keyring, crate::secrets::SealError> {
        let previous: Vec<String> = self
            .master_key_previous
            .iter()
            .map(|k| k.0.clone())
            .collect();
        crate::secrets::Keyring::new(self.master_key.as_ref().map(|k| k.0.as_str()), &previous)
    }

    /// Defaults suitable for tests: random port, given database, repo-relative asset folders.
    pub fn for_tests(database_url: String) -> Self {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        Config {
            addr: "127.0.0.1:0".parse().expect("valid addr"),
            database_url,
            public_url: None,
            themes_dir: root.join("themes"),
            static_dir: root.join("static"),
            hsts: false,
            allow_loopback_callbacks: true,
            session_ttl_s: 3600,
            session_max_s: 7200,
            card_max_failures: 5,
            trusted_proxies: Vec::new(),
            notify_retry_scale: 0.001,
            card_auth_lapse_days: 60,
            notify_lease_ms: 60_000,
            notify_endpoint_concurrency: 4,
            console_idle_s: 900,
            console_login_per_minute: 1000,
            header_timeout_ms: 10_000,
            idle_timeout_ms: 60_000,
            max_connections: 1024,
            metrics_token: None,
            drain_delay_ms: 0,
            bench_limit: false,
            workers: true,
            sweep_interval_ms: 3_600_000,
            sms_http_url: None,
            sms_http_auth: None,
            sms_http_body: DEFAULT_SMS_HTTP_BODY.into(),
            sms_rate_per_minute: 20,
            master_key: None,
            master_key_previous: Vec::new(),
            komoju_api_base: DEFAULT_KOMOJU_API_BASE.into(),
            stripe: Default::default(),
            mail: MailSettings {
                timeout_s: 30,
                ..Default::default()
            },
        }
    }
}
