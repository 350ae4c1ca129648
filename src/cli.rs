//! Command line: `serve` (the default) and merchant administration. Commands run with no app
//! context, so rows they write are stamped with the wall clock (`util::now_ms`).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::Config;
use crate::db::merchants::{self, NewMerchant};
use crate::db::Db;
use std::sync::Arc;

use crate::connectors::registry::{Registry, Unusable};
use crate::domain::processor::Processor;
use crate::domain::{Method, Mode};
use crate::flows::merchant_admin as merchant_flow;
use crate::flows::processors::{self as processor_flow, AccountInput};
use crate::secrets::Keyring;

#[derive(Parser, Debug)]
#[command(
    name = "kakehashi",
    version,
    about = "Hosted checkout for Japanese merchants",
    after_help = "Without a command, runs `serve` with its settings taken from the environment."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The one option every command shares: which database to use.
#[derive(Args, Debug, Clone)]
pub struct Global {
    /// Database: sqlite://path (default) or postgres://...
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://data/kakehashi.db",
        global = true
    )]
    pub database_url: String,
    /// Master key sealing processor credentials (32 bytes, hex or base64).
    #[arg(
        long,
        env = "KAKEHASHI_MASTER_KEY",
        global = true,
        hide_env_values = true
    )]
    pub master_key: Option<String>,
    /// File holding the master key (used when KAKEHASHI_MASTER_KEY is unset).
    #[arg(long, env = "KAKEHASHI_MASTER_KEY_FILE", global = true)]
    pub master_key_file: Option<PathBuf>,
    /// Older master keys still accepted for opening during a rotation (comma-separated).
    #[arg(
        long,
        env = "KAKEHASHI_MASTER_KEY_PREVIOUS",
        global = true,
        hide_env_values = true,
        value_delimiter = ','
    )]
    pub master_key_previous: Vec<String>,
    /// Log line format: text (for people) or json (one object a line, for log collectors).
    #[arg(
        long,
        env = "KAKEHASHI_LOG_FORMAT",
        value_enum,
        default_value = "text",
        global = true
    )]
    pub log_format: LogFormat,
}

/// How log lines are written (`KAKEHASHI_LOG_FORMAT`).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines; a request's span (request id, method, route) prefixes each line.
    Text,
    /// One JSON object per line with the timestamp, level, message, fields and the current
    /// span's fields (request id, method, route).
    Json,
}

impl Global {
    /// The server settings from environment variables and defaults (no flags): for running
    /// without a command, and for commands that build the app without serving it.
    pub fn config(&self) -> anyhow::Result<Config> {
        ServeArgs::from_env().config(self)
    }
}

/// The server's settings: flags of `serve`, each also an environment variable.
#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "KAKEHASHI_ADDR", default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    /// Public base URL (default http://<addr>).
    #[arg(long, env = "KAKEHASHI_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Folder of themes (<name>/theme.toml and logos).
    #[arg(long, env = "KAKEHASHI_THEMES_DIR", default_value = "themes")]
    pub themes_dir: PathBuf,
    /// Folder of static assets (stylesheets, favicon).
    #[arg(long, env = "KAKEHASHI_STATIC_DIR", default_value = "static")]
    pub static_dir: PathBuf,
    /// Send Strict-Transport-Security (set when served behind TLS).
    #[arg(long, env = "KAKEHASHI_HSTS", value_parser = clap::builder::BoolishValueParser::new())]
    pub hsts: bool,
    /// Allow callback URLs on loopback addresses (local development only).
    #[arg(long, env = "KAKEHASHI_ALLOW_LOOPBACK_CALLBACKS", value_parser = clap::builder::BoolishValueParser::new())]
    pub allow_loopback_callbacks: bool,
    /// Shopper session lifetime in seconds.
    #[arg(long, env = "KAKEHASHI_SESSION_TTL", default_value_t = 3600)]
    pub session_ttl: i64,
    /// Absolute shopper session lifetime in seconds, however often it is renewed.
    #[arg(long, env = "KAKEHASHI_SESSION_MAX_S", default_value_t = 7200)]
    pub session_max_s: i64,
    /// Failed card attempts allowed per checkout before it locks.
    #[arg(long, env = "KAKEHASHI_CARD_MAX_FAILS", default_value_t = 5)]
    pub card_max_failures: i64,
    /// Reverse proxies (CIDR list) whose Forwarded / X-Forwarded-For headers name the client.
    #[arg(long, env = "KAKEHASHI_TRUSTED_PROXIES", default_value = "")]
    pub trusted_proxies: String,
    /// Multiplier on notification retry delays, Retry-After included (tests shrink it).
    #[arg(long, env = "KAKEHASHI_NOTIFY_RETRY_SCALE", default_value_t = 1.0)]
    pub notify_retry_scale: f64,
    /// Notification lease in milliseconds (a dead worker's events are retried after it).
    #[arg(long, env = "KAKEHASHI_NOTIFY_LEASE_MS", default_value_t = 60_000)]
    pub notify_lease_ms: i64,
    /// Days after which an uncaptured card authorization lapses.
    #[arg(long, env = "KAKEHASHI_CARD_AUTH_DAYS", default_value_t = 60)]
    pub card_auth_lapse_days: i64,
    /// How often the konbini / Pay-easy expiry and sandbox auto-pay sweep runs (milliseconds).
    #[arg(long, env = "KAKEHASHI_SWEEP_INTERVAL_MS", default_value_t = 5000)]
    pub sweep_interval_ms: u64,
    /// Console sign-in idle timeout in seconds.
    #[arg(long, env = "KAKEHASHI_CONSOLE_IDLE", default_value_t = 900)]
    pub console_idle: i64,
    /// Console sign-in attempts allowed per client address per minute.
    #[arg(long, env = "KAKEHASHI_CONSOLE_LOGIN_RATE", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub console_login_rate: u32,
    /// Notification deliveries to one endpoint (callback URL origin) at once, at most.
    #[arg(long, env = "KAKEHASHI_NOTIFY_ENDPOINT_CONCURRENCY", default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub notify_endpoint_concurrency: u64,
    /// Milliseconds a client may take to send a request's headers (also the wait for the next
    /// request on an idle connection).
    #[arg(long, env = "KAKEHASHI_HEADER_TIMEOUT_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub header_timeout_ms: u64,
    /// On a stop signal, milliseconds to keep serving with /readyz answering 503 before the
    /// listener closes (lets a balancer's readiness check take the instance out first).
    #[arg(long, env = "KAKEHASHI_DRAIN_DELAY_MS", default_value_t = 0)]
    pub drain_delay_ms: u64,
    /// Serve GET /bench/limit, the benchmark's no-database checkout page (bench/run.sh only;
    /// never in production).
    #[arg(long, env = "KAKEHASHI_BENCH_LIMIT", value_parser = clap::builder::BoolishValueParser::new())]
    pub bench_limit: bool,
    /// Milliseconds without traffic after which a keep-alive connection is closed.
    #[arg(long, env = "KAKEHASHI_IDLE_TIMEOUT_MS", default_value_t = 60_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub idle_timeout_ms: u64,
    /// Open client connections at most; more wait in the listen backlog.
    #[arg(long, env = "KAKEHASHI_MAX_CONNECTIONS", default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connections: u64,
    /// SMS gateway URL for live merchants (JSON POST); unset: live merchants cannot send SMS.
    #[arg(long, env = "KAKEHASHI_SMS_HTTP_URL")]
    pub sms_http_url: Option<String>,
    /// Bearer token that lets a scraper read /metrics from anywhere; unset: loopback only.
    #[arg(long, env = "KAKEHASHI_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,
    /// Authorization header value sent to the SMS gateway, e.g. "Bearer xyz".
    #[arg(long, env = "KAKEHASHI_SMS_HTTP_AUTH", hide_env_values = true)]
    pub sms_http_auth: Option<String>,
    /// SMS gateway JSON body template with {to} and {text} placeholders.
    #[arg(
        long,
        env = "KAKEHASHI_SMS_HTTP_BODY",
        default_value = crate::config::DEFAULT_SMS_HTTP_BODY
    )]
    pub sms_http_body: String,
    /// SMS messages a merchant may send per minute.
    #[arg(long, env = "KAKEHASHI_SMS_RATE_PER_MINUTE", default_value_t = 20)]
    pub sms_rate_per_minute: i64,
    /// KOMOJU API host (https; http/loopback only with KAKEHASHI_ALLOW_LOOPBACK_CALLBACKS).
    #[arg(long, env = "KAKEHASHI_KOMOJU_API_BASE", default_value = crate::connectors::komoju::DEFAULT_API_BASE)]
    pub komoju_api_base: String,
    #[command(flatten)]
    pub stripe: StripeArgs,
    #[command(flatten)]
    pub mail: MailArgs,
}

/// SMTP settings for shopper e-mail (docs/messages.md), each also an environment variable.
#[derive(clap::Args, Debug, Clone)]
pub struct MailArgs {
    /// SMTP server host for shopper e-mail; unset: no e-mail is sent.
    #[arg(long, env = "KAKEHASHI_SMTP_HOST")]
    pub smtp_host: Option<String>,
    /// SMTP port (default 587 for starttls, 465 for tls, 25 for none).
    #[arg(long, env = "KAKEHASHI_SMTP_PORT")]
    pub smtp_port: Option<u16>,
    /// starttls | tls | none (none only for a catcher on loopback).
    #[arg(long, env = "KAKEHASHI_SMTP_TLS", default_value = "starttls")]
    pub smtp_tls: String,
    /// SMTP AUTH user name.
    #[arg(long, env = "KAKEHASHI_SMTP_USER")]
    pub smtp_user: Option<String>,
    /// SMTP AUTH password.
    #[arg(long, env = "KAKEHASHI_SMTP_PASSWORD", hide_env_values = true)]
    pub smtp_password: Option<String>,
    /// From address of shopper e-mail, e.g. pay@mail.example.jp.
    #[arg(long, env = "KAKEHASHI_MAIL_FROM")]
    pub mail_from: Option<String>,
    /// Seconds one SMTP conversation may take.
    #[arg(long, env = "KAKEHASHI_SMTP_TIMEOUT", default_value_t = 30)]
    pub smtp_timeout: u64,
    /// DKIM selector (with --dkim-key-file): sign shopper e-mail when the relay does not.
    #[arg(long, env = "KAKEHASHI_DKIM_SELECTOR")]
    pub dkim_selector: Option<String>,
    /// DKIM private key file: RSA PKCS#1 PEM, or an Ed25519 key as base64 of its 32 bytes.
    #[arg(long, env = "KAKEHASHI_DKIM_KEY_FILE")]
    pub dkim_key_file: Option<PathBuf>,
    /// DKIM signing domain (default: the From address's domain).
    #[arg(long, env = "KAKEHASHI_DKIM_DOMAIN")]
    pub dkim_domain: Option<String>,
}

impl MailArgs {
    pub fn settings(&self) -> anyhow::Result<crate::config::MailSettings> {
        let tls = crate::config::SmtpTls::parse(&self.smtp_tls)
            .ok_or_else(|| anyhow::anyhow!("KAKEHASHI_SMTP_TLS must be starttls, tls or none"))?;
        Ok(crate::config::MailSettings {
            smtp_host: self.smtp_host.clone().filter(|h| !h.trim().is_empty()),
            smtp_port: self.smtp_port,
            smtp_tls: tls,
            smtp_user: self.smtp_user.clone(),
            smtp_password: self.smtp_password.clone().map(crate::config::Redacted),
            from: self.mail_from.clone(),
            timeout_s: self.smtp_timeout.max(1),
            dkim_selector: self.dkim_selector.clone().filter(|v| !v.trim().is_empty()),
            dkim_key_file: self.dkim_key_file.clone(),
            dkim_domain: self.dkim_domain.clone().filter(|v| !v.trim().is_empty()),
        })
    }
}

impl ServeArgs {
    /// The settings as `serve` without flags would have them: environment variables, else
    /// defaults. A malformed variable exits with clap's message, as a malformed flag would.
    pub fn from_env() -> ServeArgs {
        use clap::FromArgMatches;
        let cmd = ServeArgs::augment_args(clap::Command::new("kakehashi serve"));
        cmd.try_get_matches_from(["kakehashi serve"])
            .and_then(|m| ServeArgs::from_arg_matches(&m))
            .unwrap_or_else(|e| e.exit())
    }

    /// The server settings, with the database and master keys from the shared options.
    pub fn config(&self, global: &Global) -> anyhow::Result<Config> {
        let master_key = crate::secrets::read_key_source(
            global.master_key.clone(),
            global.master_key_file.as_deref(),
        )?;
        Ok(Config {
            addr: self.addr,
            database_url: global.database_url.clone(),
            public_url: self.public_url.clone(),
            themes_dir: self.themes_dir.clone(),
            static_dir: self.static_dir.clone(),
            hsts: self.hsts,
            allow_loopback_callbacks: self.allow_loopback_callbacks,
            session_ttl_s: self.session_ttl,
            session_max_s: self.session_max_s,
            card_max_failures: self.card_max_failures,
            trusted_proxies: crate::client_addr::parse_list(&self.trusted_proxies)
                .map_err(|e| anyhow::anyhow!("KAKEHASHI_TRUSTED_PROXIES: {e}"))?,
            notify_retry_scale: self.notify_retry_scale,
            card_auth_lapse_days: self.card_auth_lapse_days,
            notify_lease_ms: self.notify_lease_ms,
            console_idle_s: self.console_idle,
            console_login_per_minute: self.console_login_rate,
            notify_endpoint_concurrency: usize::try_from(self.notify_endpoint_concurrency)
                .unwrap_or(4),
            header_timeout_ms: self.header_timeout_ms,
            idle_timeout_ms: self.idle_timeout_ms,
            max_connections: usize::try_from(self.max_connections).unwrap_or(usize::MAX),
            bench_limit: self.bench_limit,
            workers: true,
            sweep_interval_ms: self.sweep_interval_ms.max(100),
            sms_http_url: self.sms_http_url.clone(),
            sms_http_auth: self.sms_http_auth.clone().map(crate::config::Redacted),
            metrics_token: self.metrics_token.clone().map(crate::config::Redacted),
            drain_delay_ms: self.drain_delay_ms,
            sms_http_body: self.sms_http_body.clone(),
            sms_rate_per_minute: self.sms_rate_per_minute,
            master_key: master_key.map(crate::config::Redacted),
            master_key_previous: global
                .master_key_previous
                .iter()
                .map(|k| crate::config::Redacted(k.clone()))
                .collect(),
            komoju_api_base: self.komoju_api_base.clone(),
            stripe: self.stripe.settings(),
            mail: self.mail.settings()?,
        })
    }
}

/// The settings as flags of `serve`, each also an environment variable.
#[derive(clap::Args, Debug, Clone)]
pub struct StripeArgs {
    /// Stripe API base URL (tests point it at localstripe).
    #[arg(long, env = "KAKEHASHI_STRIPE_API_BASE", default_value = crate::config::DEFAULT_STRIPE_API_BASE)]
    pub stripe_api_base: String,
    /// Stripe.js URL loaded by the card page (tests point it at localstripe's stand-in).
    #[arg(long, env = "KAKEHASHI_STRIPE_JS_URL", default_value = crate::config::DEFAULT_STRIPE_JS_URL)]
    pub stripe_js_url: String,
}

impl StripeArgs {
    pub fn settings(&self) -> crate::config::StripeSettings {
        crate::config::StripeSettings {
            api_base: self.stripe_api_base.clone(),
            js_url: self.stripe_js_url.clone(),
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the server (the default): migrate, ensure the demo merchant, print a checkout link.
    Serve(Box<ServeArgs>),
    /// Manage merchants.
    #[command(subcommand)]
    Merchant(Box<MerchantCmd>),
    /// Card payment actions: capture (売上確定), cancel (取消), refund (返金; wallets too).
    #[command(subcommand)]
    Payment(PaymentCmd),
    /// Merchant notifications: list, redeliver, ping.
    #[command(subcommand)]
    Notify(NotifyCmd),
    /// Sandbox controls for test-mode konbini / Pay-easy payments (速報, 確報, 速報取消, expiry).
    #[command(subcommand)]
    Sandbox(SandboxCmd),
    /// Manage carrier continuous-billing agreements (継続課金).
    #[command(subcommand)]
    Subscription(SubscriptionCmd),
    /// Reusable konbini payment numbers (リピート): create, list, show, retire.
    #[command(subcommand)]
    Repeat(RepeatCmd),
    /// Manage merchant console users.
    #[command(subcommand)]
    User(UserCmd),
    /// Processor accounts (Stripe, KOMOJU) that back a merchant's live methods.
    #[command(subcommand)]
    Processor(ProcessorCmd),
    /// The master key that seals stored credentials: generate, rotate, status.
    #[command(subcommand)]
    Keys(KeysCmd),
    /// Shopper e-mail and SMS messages: send a test e-mail, a merchant's message settings.
    #[command(subcommand)]
    Mail(MailCmd),
    /// Fees, payout terms and settlements (精算): cut-off, list, terms, fee schedules.
    #[command(subcommand)]
    Settlement(SettlementCmd),
    /// Owners and their tenant merchants (テナントオプション): add, list, attach, owner API keys.
    #[command(subcommand)]
    Owner(OwnerCmd),
}

#[derive(Subcommand, Debug)]
pub enum OwnerCmd {
    /// Create an owner (a mall, a university, a head office); prints its id.
    Add {
        #[arg(long)]
        name: String,
        /// The id (1-64 of A-Z a-z 0-9 _ -); default: generated (`own_…`).
        #[arg(long)]
        id: Option<String>,
    },
    /// List owners with their tenants.
    List,
    /// Put a merchant under an owner (it becomes the owner's tenant).
    Attach { merchant: String, owner: String },
    /// Make a merchant independent again (its owner's staff and keys lose it).
    Detach { merchant: String },
    /// Create an owner-level API key (`ok_…`, shown once): it acts for any tenant named in the
    /// `Kakehashi-Merchant` header.
    ApiKey { owner: String },
    /// Retire an owner API key.
    RetireKey { owner: String, key_id: String },
    /// Create an owner staff console user (admin or general of every tenant); prints a
    /// generated password and TOTP secret (shown only once).
    UserAdd {
        owner: String,
        #[arg(long)]
        email: String,
        /// admin | general
        #[arg(long)]
        role: String,
    },
}

/// Runs an `owner` command. Changes are audit-logged (actor `cli`) on the merchant they touch.
pub async fn owner(db: &Db, keys: &Keyring, cmd: OwnerCmd) -> anyhow::Result<()> {
    let now = crate::util::now_ms();
    match cmd {
        OwnerCmd::Add { name, id } => {
            let id = crate::flows::owners::create(db, &name, id.as_deref(), now).await?;
            println!("owner:       {id}");
        }
        OwnerCmd::List => {
            let tenants = crate::db::merchants::list(db).await?;
            for o in crate::db::owners::list(db).await? {
                let mine: Vec<&str> = tenants
                    .iter()
                    .filter(|m| m.owner_id.as_deref() == Some(o.id.as_str()))
                    .map(|m| m.id.as_str())
                    .collect();
                println!("{}  {}  tenants: {}", o.id, o.name, mine.join(","));
            }
        }
        OwnerCmd::Attach { merchant, owner } => {
            let before = crate::flows::owners::attach(db, &merchant, Some(&owner)).await?;
            let detail = format!("ok {} -> {owner}", before.as_deref().unwrap_or("-"));
            cli_audit(db, &merchant, "merchant.owner", &merchant, &detail).await?;
            println!("{merchant} is a tenant of {owner}");
        }
        OwnerCmd::Detach { merchant } => {
            let before = crate::flows::owners::attach(db, &merchant, None).await?;
            let detail = format!("ok {} -> -", before.as_deref().unwrap_or("-"));
            cli_audit(db, &merchant, "merchant.owner", &merchant, &detail).await?;
            println!("{merchant} has no owner");
        }
        OwnerCmd::ApiKey { owner } => {
            let (id, secret) = crate::api::keys::create_owner_key(db, &owner, now).await?;
            println!("key id:      {id}");
            println!("secret:      {secret}");
            println!("(shown only now; send it as `Authorization: Bearer …` with");
            println!(" `Kakehashi-Merchant: <tenant id>` on every request)");
        }
        OwnerCmd::RetireKey { owner, key_id } => {
            crate::api::keys::retire_owner_key(db, &owner, &key_id).await?;
            println!("retired {key_id}");
        }
        OwnerCmd::UserAdd { owner, email, role } => {
            let role = crate::console::Role::parse(&role)
                .ok_or_else(|| anyhow::anyhow!("role must be admin or general"))?;
            let u = crate::console::users::create_owner_staff(db, keys, &owner, &email, role, now)
                .await?;
            print_credentials(&u);
        }
    }
    Ok(())
}

#[derive(Subcommand, Debug)]
pub enum MailCmd {
    /// Send a test e-mail through the configured SMTP server (KAKEHASHI_SMTP_*).
    Test { address: String },
    /// Show or change a merchant's message settings (docs/messages.md).
    Settings {
        merchant_id: String,
        /// From display name (default: the shop name); `-` clears it.
        #[arg(long)]
        sender_name: Option<String>,
        /// Reply-To address for shoppers' replies; `-` clears it.
        #[arg(long)]
        reply_to: Option<String>,
        /// Reminder before a konbini / Pay-easy deadline: 0 (off), 24 or 48 hours.
        #[arg(long)]
        reminder_hours: Option<i64>,
        /// E-mail a receipt when a payment completes: true | false
        #[arg(long)]
        receipts: Option<bool>,
        /// Also send instructions and reminders by SMS to the link's mobile number: true | false
        #[arg(long)]
        sms: Option<bool>,
    },
}

/// `kakehashi mail …`.
pub async fn mail(config: &Config, cmd: MailCmd) -> anyhow::Result<()> {
    match cmd {
        MailCmd::Test { address } => {
            let mailer = crate::mail::Mailer::from_settings(&config.mail)?.ok_or_else(|| {
                anyhow::anyhow!("no SMTP server is configured (KAKEHASHI_SMTP_HOST)")
            })?;
            mailer
                .send(&crate::mail::Email {
                    to: address.clone(),
                    sender_name: "Kakehashi".into(),
                    reply_to: None,
                    subject: "Kakehashi テストメール / test message".into(),
                    text: "Kakehashi からのテストメールです。このメールが届いていれば、\
                           お客様へのメール送信の設定は完了しています。\n\n\
                           This is a test message from Kakehashi: shopper e-mail works.\n"
                        .into(),
                    html: "<p>Kakehashi からのテストメールです。</p>\
                           <p>This is a test message from Kakehashi: shopper e-mail works.</p>"
                        .into(),
                })
                .await
                .map_err(|e| anyhow::anyhow!("not sent via {}: {e}", mailer.server))?;
            println!("sent a test message to {address} via {}", mailer.server);
            Ok(())
        }
        MailCmd::Settings {
            merchant_id,
            sender_name,
            reply_to,
            reminder_hours,
            receipts,
            sms,
        } => {
            let db = Db::connect(&config.database_url).await?;
            if crate::db::merchants::get(&db, &merchant_id)
                .await?
                .is_none()
            {
                anyhow::bail!("no merchant {merchant_id}");
            }
            let mut s = crate::db::messages::settings(&db, &merchant_id).await?;
            let clear = |v: String| (v != "-" && !v.trim().is_empty()).then_some(v);
            if let Some(v) = sender_name {
                s.sender_name = clear(v);
            }
            if let Some(v) = reply_to {
                let v = clear(v);
                if let Some(a) = &v {
                    if !crate::domain::message::valid_email(a) {
                        anyhow::bail!("--reply-to {a:?} is not an e-mail address");
                    }
                }
                s.reply_to = v;
            }
            if let Some(h) = reminder_hours {
                if !crate::domain::message::REMINDER_HOURS.contains(&h) {
                    anyhow::bail!("--reminder-hours must be 0, 24 or 48");
                }
                s.reminder_hours = h;
            }
            if let Some(v) = receipts {
                s.receipts = v;
            }
            if let Some(v) = sms {
                s.sms = v;
            }
            crate::db::messages::set_settings(&db, &merchant_id, &s, crate::util::now_ms()).await?;
            println!(
                "{merchant_id}: sender name {}, reply-to {}, reminder {}, receipts {}, sms {}",
                s.sender_name.as_deref().unwrap_or("(shop name)"),
                s.reply_to.as_deref().unwrap_or("(none)"),
                if s.reminder_hours == 0 {
                    "off".to_owned()
                } else {
                    format!("{} h before the deadline", s.reminder_hours)
                },
                if s.receipts { "on" } else { "off" },
                if s.sms { "on" } else { "off" },
            );
            Ok(())
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum ProcessorCmd {
    /// Add a processor account; its credentials are sealed with the master key and never
    /// shown again (only the secret key's last four characters).
    Add {
        merchant_id: String,
        /// stripe | komoju
        #[arg(long)]
        processor: String,
        /// Comma list of the methods this account serves, e.g. card or konbini,payeasy
        #[arg(long)]
        methods: String,
        /// live (real money) | test (the processor's test keys)
        #[arg(long, default_value = "live")]
        mode: String,
        /// File holding the secret API key (keeps it out of the shell history).
        #[arg(long, conflicts_with = "secret_key")]
        secret_key_file: Option<PathBuf>,
        /// The secret API key (prefer --secret-key-file).
        #[arg(long, env = "KAKEHASHI_PROCESSOR_SECRET_KEY", hide_env_values = true)]
        secret_key: Option<String>,
        /// Publishable key (Stripe: pk_live_… for Stripe.js).
        #[arg(long)]
        publishable_key: Option<String>,
        /// File holding the webhook signing secret.
        #[arg(long, conflicts_with = "webhook_secret")]
        webhook_secret_file: Option<PathBuf>,
        /// The webhook signing secret (prefer --webhook-secret-file).
        #[arg(
            long,
            env = "KAKEHASHI_PROCESSOR_WEBHOOK_SECRET",
            hide_env_values = true
        )]
        webhook_secret: Option<String>,
    },
    /// List a merchant's processor accounts and whether each method is usable now.
    List { merchant_id: String },
    /// Retire an account: no new payments through it; earlier ones can still be refunded.
    Retire {
        merchant_id: String,
        account_id: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum KeysCmd {
    /// Print a new random master key (base64) to put in KAKEHASHI_MASTER_KEY or a key file.
    GenerateMaster,
    /// Re-seal every stored credential under the current master key (KAKEHASHI_MASTER_KEY),
    /// opening old values with KAKEHASHI_MASTER_KEY_PREVIOUS. Run after switching keys.
    RotateMaster,
    /// Show which master key ids seal the stored credentials.
    Status,
}

fn read_secret(
    value: Option<String>,
    file: Option<PathBuf>,
    what: &str,
) -> anyhow::Result<Option<String>> {
    match (value, file) {
        (Some(v), _) => Ok(Some(v)),
        (None, Some(f)) => Ok(Some(
            std::fs::read_to_string(&f)
                .map_err(|e| anyhow::anyhow!("cannot read {what} file {}: {e}", f.display()))?
                .trim()
                .to_owned(),
        )),
        (None, None) => Ok(None),
    }
}

/// An audit record for a change made from the command line (the console's audit log, with
/// `cli` as the actor).
async fn cli_audit(
    db: &Db,
    merchant_id: &str,
    action: &str,
    target: &str,
    detail: &str,
) -> anyhow::Result<()> {
    crate::console::audit::write(
        db,
        &crate::console::audit::Entry {
            user_id: None,
            email: "cli",
            merchant_id: Some(merchant_id),
            action,
            target,
            detail,
            ip: "",
        },
        // The command line has no app context (and no clock to inject): the wall clock.
        crate::util::now_ms(),
    )
    .await?;
    Ok(())
}

/// Runs a `processor` command.
pub async fn processor(db: &Db, registry: &Arc<Registry>, cmd: ProcessorCmd) -> anyhow::Result<()> {
    match cmd {
        ProcessorCmd::Add {
            merchant_id,
            processor,
            methods,
            mode,
            secret_key_file,
            secret_key,
            publishable_key,
            webhook_secret_file,
            webhook_secret,
        } => {
            let processor = Processor::parse(&processor)
                .ok_or_else(|| anyhow::anyhow!("processor must be stripe or komoju"))?;
            let mode =
                Mode::parse(&mode).ok_or_else(|| anyhow::anyhow!("mode must be live or test"))?;
            let secret_key = read_secret(secret_key, secret_key_file, "secret key")?
                .ok_or_else(|| anyhow::anyhow!("give --secret-key-file (or --secret-key)"))?;
            let webhook_secret =
                read_secret(webhook_secret, webhook_secret_file, "webhook secret")?;
            let a = processor_flow::add(
                db,
                registry,
                &merchant_id,
                AccountInput {
                    processor,
                    mode,
                    methods: parse_methods(&methods)?,
                    secret_key,
                    publishable_key,
                    webhook_secret,
                },
                crate::util::now_ms(),
            )
            .await?;
            let detail = format!(
                "processor={} mode={} methods={} key={}",
                a.processor.code(),
                a.mode.as_str(),
                Method::join(&a.methods),
                a.fingerprint
            );
            cli_audit(db, &merchant_id, "processor.add", &a.id, &detail).await?;
            println!(
                "account_id: {}
processor:  {}
mode:       {}
methods:    {}
secret key: {} (sealed with master key {})",
                a.id,
                a.processor.code(),
                a.mode.as_str(),
                Method::join(&a.methods),
                a.fingerprint,
                registry.keys().current_id().unwrap_or("-"),
            );
            if a.processor == Processor::Stripe {
                println!(
                    "webhook endpoint (add it in the Stripe Dashboard): \
                     <KAKEHASHI_PUBLIC_URL>/webhooks/stripe/{}",
                    a.id
                );
            }
            if a.processor == Processor::Komoju && a.methods.contains(&Method::Card) {
                // The setting that puts card data through this server: say so where it is made.
                println!(
                    "note: card through KOMOJU is server to server: card numbers pass through this \
                     server, which puts the operator in PCI DSS scope as a service provider (SAQ D); \
                     see docs/komoju.md §4f"
                );
            }
            for m in &a.methods {
                if let Some(why) = registry.unusable(&a, *m) {
                    println!(
                        "note: {} is not usable yet: {}",
                        m.code(),
                        unusable_text(&a.processor, &why)
                    );
                }
            }
        }
        ProcessorCmd::List { merchant_id } => {
            for v in processor_flow::list(db, registry, &merchant_id).await? {
                let a = &v.account;
                let methods: Vec<String> = v
                    .methods
                    .iter()
                    .map(|(m, why)| match why {
                        None => m.code().to_owned(),
                        Some(w) => format!("{} ({})", m.code(), unusable_text(&a.processor, w)),
                    })
                    .collect();
                println!(
                    "{}	{}	{}	{}	key={}	methods={}",
                    a.id,
                    a.processor.code(),
                    a.mode.as_str(),
                    a.status.code(),
                    a.fingerprint,
                    methods.join(",")
                );
            }
        }
        ProcessorCmd::Retire {
            merchant_id,
            account_id,
        } => {
            processor_flow::retire(
                db,
                registry,
                &merchant_id,
                &account_id,
                crate::util::now_ms(),
            )
            .await?;
            cli_audit(db, &merchant_id, "processor.retire", &account_id, "").await?;
            println!("retired {account_id}");
        }
    }
    Ok(())
}

fn unusable_text(p: &Processor, why: &Unusable) -> String {
    match why {
        Unusable::NoDriver => format!("this server has no {} connector for it yet", p.name()),
        Unusable::Sealed(e) => e.clone(),
    }
}

/// `keys generate-master` needs no database.
pub fn keys_offline(cmd: KeysCmd) -> anyhow::Result<()> {
    anyhow::ensure!(matches!(cmd, KeysCmd::GenerateMaster), "needs the database");
    println!("{}", crate::secrets::Keyring::generate());
    Ok(())
}

/// Runs a `keys` command.
pub async fn keys(db: &Db, keyring: &crate::secrets::Keyring, cmd: KeysCmd) -> anyhow::Result<()> {
    match cmd {
        KeysCmd::GenerateMaster => return keys_offline(cmd),
        KeysCmd::RotateMaster => {
            let n = crate::flows::secrets::reseal_all(db, keyring).await?;
            println!(
                "re-sealed {n} values under master key {}; older keys can now be removed from KAKEHASHI_MASTER_KEY_PREVIOUS",
                keyring.current_id().unwrap_or("-")
            );
        }
        KeysCmd::Status => {
            for (kid, n) in crate::flows::secrets::status(db).await? {
                let state = if Some(kid.as_str()) == keyring.current_id() {
                    "current"
                } else {
                    "old: run `keys rotate-master`"
                };
                println!("{kid}	{n} values	{state}");
            }
        }
    }
    Ok(())
}

#[derive(Subcommand, Debug)]
pub enum PaymentCmd {
    /// Capture an authorized card payment (default: the full amount).
    Capture {
        payment_id: String,
        #[arg(long)]
        amount: Option<i64>,
    },
    /// Cancel a card payment (before or after capture).
    Cancel { payment_id: String },
    /// Refund part or all of a captured card payment.
    Refund {
        payment_id: String,
        #[arg(long)]
        amount: i64,
    },
    /// Show a payment and its event log.
    Show { payment_id: String },
}

#[derive(Subcommand, Debug)]
pub enum NotifyCmd {
    /// List a merchant's recent notification events with their delivery state.
    List { merchant_id: String },
    /// Show every delivery attempt of one event.
    Attempts { event_id: String },
    /// Redeliver one event, or every failed event of the merchant with --failed.
    Redeliver {
        merchant_id: String,
        event_id: Option<String>,
        #[arg(long)]
        failed: bool,
    },
    /// Queue a `ping` test event.
    Ping { merchant_id: String },
}

#[derive(Subcommand, Debug)]
pub enum SettlementCmd {
    /// Build the settlements of every payout period that ended before a date (default: today,
    /// Japan time). Running it again changes nothing.
    Cutoff {
        /// The cut-off date, YYYY-MM-DD (Japan time): periods ending before it are settled.
        #[arg(long)]
        date: Option<String>,
    },
    /// List a merchant's settlements, newest first.
    List { merchant_id: String },
    /// Set a merchant's payout terms: cycle, days to payout, settlement fee, tax status.
    Terms {
        merchant_id: String,
        /// month_end (月1回), half_month (月2回), every_10_days (月3回), every_5_days (月6回).
        #[arg(long)]
        cycle: String,
        /// Days from a period's last day to its payout (moved off weekends).
        #[arg(long, default_value_t = crate::domain::payout::DEFAULT_PAYOUT_DELAY_DAYS)]
        payout_delay_days: i64,
        /// 精算入金手数料 per payout in yen, tax excluded (e.g. 1500).
        #[arg(long, default_value_t = 0)]
        settlement_fee: i64,
        /// The merchant's goods are subject to consumption tax (stamp duty then compares the
        /// tax-excluded price at Lawson, Ministop and Seicomart).
        #[arg(long)]
        goods_taxable: bool,
    },
    /// Set a merchant's fees for one method, tax excluded: a fixed fee per collected payment
    /// and/or a percentage of its amount.
    Fee {
        merchant_id: String,
        method: String,
        /// Yen per collected payment (e.g. 120 for Smart Pit プラン120).
        #[arg(long, default_value_t = 0)]
        fixed: i64,
        /// Percent of the collected amount, up to two decimals (e.g. 3.25).
        #[arg(long, default_value = "0")]
        rate: String,
    },
}

pub async fn settlement(db: &Db, cmd: SettlementCmd) -> anyhow::Result<()> {
    use crate::db::settlements;
    use crate::domain::payout;
    use crate::flows::settlement_terms as terms_flow;
    let now = crate::util::now_ms();
    match cmd {
        SettlementCmd::Cutoff { date } => {
            let day = match date {
                Some(d) => payout::parse_ymd(&d)
                    .ok_or_else(|| anyhow::anyhow!("date must be YYYY-MM-DD, got {d}"))?,
                None => payout::jst_date(now),
            };
            let made = crate::flows::settlements::cutoff(db, day, now).await?;
            for s in &made {
                println!(
                    "{}\t{}\t{}..{}\tpayout={}\tnet={}",
                    s.id, s.merchant_id, s.period_start, s.period_end, s.payout_date, s.net
                );
            }
            println!("{} settlement(s) created", made.len());
        }
        SettlementCmd::List { merchant_id } => {
            for s in settlements::list(
                db,
                &crate::domain::scope::Scope::Merchant(merchant_id.clone()),
                None,
                100,
            )
            .await?
            {
                println!(
                    "{}\t{}..{}\tpayout={}\tpayments={}\tgross={}\tnet={}",
                    s.id,
                    s.period_start,
                    s.period_end,
                    s.payout_date,
                    s.payment_count,
                    s.gross,
                    s.net
                );
            }
        }
        SettlementCmd::Terms {
            merchant_id,
            cycle,
            payout_delay_days,
            settlement_fee,
            goods_taxable,
        } => {
            // The console's 手数料・支払条件 page goes through the same flow.
            let input = terms_flow::TermsInput {
                cycle: &cycle,
                payout_delay_days: &payout_delay_days.to_string(),
                settlement_fee: &settlement_fee.to_string(),
                goods_taxable,
            };
            let (before, terms) = terms_flow::set_terms(db, &merchant_id, &input, now).await?;
            let detail = terms_flow::terms_change(before.as_ref(), &terms);
            cli_audit(
                db,
                &merchant_id,
                "payout_terms.update",
                &merchant_id,
                &detail,
            )
            .await?;
            println!(
                "{}: {} payout {} days after each period, settlement fee {} yen, goods {}",
                terms.merchant_id,
                terms.cycle.code(),
                terms.payout_delay_days,
                terms.settlement_fee,
                if terms.goods_taxable {
                    "taxable"
                } else {
                    "tax-exempt"
                }
            );
        }
        SettlementCmd::Fee {
            merchant_id,
            method,
            fixed,
            rate,
        } => {
            let input = terms_flow::FeeInput {
                method: &method,
                fixed: &fixed.to_string(),
                rate: &rate,
            };
            let (m, before, after) = terms_flow::set_fee(db, &merchant_id, &input, now).await?;
            let detail = terms_flow::fee_change(m, before.as_ref(), &after);
            cli_audit(
                db,
                &merchant_id,
                "fee_schedule.update",
                &merchant_id,
                &detail,
            )
            .await?;
            println!(
                "{merchant_id} {}: {} yen + {}% per collected payment",
                m.code(),
                after.fixed_fee,
                terms_flow::percent(after.rate_bp)
            );
        }
    }
    Ok(())
}

#[derive(Subcommand, Debug)]
pub enum SubscriptionCmd {
    /// Cancel a subscription: no further monthly charges; notifies `subscription.cancelled`.
    Cancel { id: String },
}

pub async fn subscription(
    db: &Db,
    registry: &std::sync::Arc<crate::connectors::registry::Registry>,
    cmd: SubscriptionCmd,
) -> anyhow::Result<()> {
    match cmd {
        SubscriptionCmd::Cancel { id } => {
            crate::flows::carrier::cancel_subscription(db, registry, &id, crate::util::now_ms())
                .await?;
            println!("cancelled {id}");
        }
    }
    Ok(())
}

#[derive(Subcommand, Debug)]
pub enum RepeatCmd {
    /// Register a reusable number (test mode: the sandbox; live merchants are refused).
    Create {
        merchant_id: String,
        /// Your customer reference (会員番号); payments get order ids `{reference}#{n}`.
        #[arg(long)]
        reference: String,
        /// What the bill is for (printed on the card).
        #[arg(long)]
        name: String,
        #[arg(long)]
        customer_name: Option<String>,
        /// Fixed yen per payment; leave out for an amount decided at the store (top-ups).
        #[arg(long)]
        amount: Option<i64>,
        /// Days the number stays payable (1–1096, default 365).
        #[arg(long)]
        valid_days: Option<i64>,
    },
    /// A merchant's numbers, newest first.
    List { merchant_id: String },
    /// One number and its store payments.
    Show { repeat_id: String },
    /// Retire a number: no more store payments on it.
    Retire { repeat_id: String },
}

fn repeat_line(r: &crate::flows::repeat::RepeatRow, now: i64) -> String {
    format!(
        "{}\t{}\t{}\t{}\t{}\t{}\tvalid until {}\t{} payments",
        r.id,
        r.number,
        r.reference,
        r.name,
        r.amount
            .map_or_else(|| "per payment".to_owned(), |a| format!("{a} yen")),
        r.state(now).code(),
        crate::util::format_jst(r.valid_until),
        r.payments_count
    )
}

pub async fn repeat(ctx: &crate::context::Ctx, cmd: RepeatCmd) -> anyhow::Result<()> {
    use crate::flows::repeat as flow;
    let now = ctx.now_ms();
    let cli_err = |e: crate::flows::error::FlowError| match e {
        crate::flows::error::FlowError::Refused { code, message, .. } => {
            anyhow::anyhow!("{code}: {message}")
        }
        e => anyhow::Error::from(e),
    };
    match cmd {
        RepeatCmd::Create {
            merchant_id,
            reference,
            name,
            customer_name,
            amount,
            valid_days,
        } => {
            let m = crate::db::merchants::get(&ctx.db, &merchant_id)
                .await?
                .ok_or_else(|| anyhow::anyhow!("no merchant {merchant_id}"))?;
            let new = flow::NewNumber {
                reference,
                name,
                customer_name,
                amount: crate::domain::repeat::AmountRule::from_column(amount),
                valid_days,
            };
            let r = flow::create(ctx, &m, new).await.map_err(cli_err)?;
            println!("{}", repeat_line(&r, now));
        }
        RepeatCmd::List { merchant_id } => {
            for r in crate::db::repeat_numbers::list(
                &ctx.db,
                &crate::domain::scope::Scope::Merchant(merchant_id.clone()),
                1000,
            )
            .await?
            {
                println!("{}", repeat_line(&r, now));
            }
        }
        RepeatCmd::Show { repeat_id } => {
            let r = crate::db::repeat_numbers::get_any(&ctx.db, &repeat_id)
                .await?
                .ok_or_else(|| anyhow::anyhow!("no repeat number {repeat_id}"))?;
            println!("{}", repeat_line(&r, now));
            for p in flow::payments_of(&ctx.db, &r).await.map_err(cli_err)? {
                println!(
                    "  {}\t{}\t{}\t{} yen\t{}",
                    p.id,
                    p.order_id,
                    p.status.code(),
                    p.amount,
                    crate::util::format_jst(p.created_at)
                );
            }
        }
        RepeatCmd::Retire { repeat_id } => {
            let r = crate::db::repeat_numbers::get_any(&ctx.db, &repeat_id)
                .await?
                .ok_or_else(|| anyhow::anyhow!("no repeat number {repeat_id}"))?;
            let r = flow::retire(ctx, &r.merchant_id, &r.id)
                .await
                .map_err(cli_err)?;
            println!("{}", repeat_line(&r, now));
        }
    }
    Ok(())
}

#[derive(Subcommand, Debug)]
pub enum UserCmd {
    /// Create a console user; prints a generated password and TOTP secret (shown only once).
    Add {
        /// The merchant (not for operators, who see every merchant).
        #[arg(long)]
        merchant: Option<String>,
        #[arg(long)]
        email: String,
        /// admin | general | operator
        #[arg(long)]
        role: String,
    },
    /// Issue a one-time enrolment link (72 h) with which the user sets a password and TOTP
    /// together; prints the link (shown only once). Same flow as the console's ユーザー page.
    Invite {
        /// The merchant (not for operators, who see every merchant).
        #[arg(long)]
        merchant: Option<String>,
        #[arg(long)]
        email: String,
        /// admin | general | operator
        #[arg(long)]
        role: String,
    },
}

/// Runs a `user` command.
pub async fn user(db: &Db, keys: &Keyring, public_url: &str, cmd: UserCmd) -> anyhow::Result<()> {
    match cmd {
        UserCmd::Invite {
            merchant,
            email,
            role,
        } => {
            let role = crate::console::Role::parse(&role)
                .ok_or_else(|| anyhow::anyhow!("role must be admin, general or operator"))?;
            let now = crate::util::now_ms();
            let i = crate::console::invites::invite(
                db,
                keys,
                public_url,
                merchant.as_deref(),
                &email,
                role,
                "cli",
                now,
            )
            .await?;
            crate::console::audit::write(
                db,
                &crate::console::audit::Entry {
                    user_id: None,
                    email: "cli",
                    merchant_id: merchant.as_deref(),
                    action: "user.invite",
                    target: &i.id,
                    detail: &format!("ok email={} role={}", i.email, role.code()),
                    ip: "",
                },
                now,
            )
            .await?;
            println!("email:       {}", i.email);
            println!("enrol link:  {}", i.url);
            println!("expires:     {}", crate::util::format_jst(i.expires_at));
            println!("(shown only now: the user opens it to set a password and TOTP; single use)");
        }
        UserCmd::Add {
            merchant,
            email,
            role,
        } => {
            let role = crate::console::Role::parse(&role)
                .ok_or_else(|| anyhow::anyhow!("role must be admin, general or operator"))?;
            // No app context on the command line: the wall clock stamps the new user.
            let now = crate::util::now_ms();
            let u = crate::console::users::create(db, keys, merchant.as_deref(), &email, role, now)
                .await?;
            print_credentials(&u);
        }
    }
    Ok(())
}

/// Prints a new console user's credentials (shown only once).
pub fn print_credentials(u: &crate::console::users::Created) {
    println!("email:       {}", u.email);
    println!("password:    {}", u.password);
    println!("totp secret: {}", u.totp_secret);
    println!("otpauth URL: {}", u.otpauth_url);
    println!("(shown only now: add the otpauth URL or the secret to an authenticator app; sign-in never shows them. `user invite` lets the user set both instead)");
}

#[derive(Subcommand, Debug)]
pub enum MerchantCmd {
    /// Create a merchant; prints its id, signing key and secret, and webhook secret (shown only once).
    Add {
        /// Shop name shown to shoppers.
        #[arg(long)]
        name: String,
        /// Merchant id (default: a generated m_…).
        #[arg(long)]
        id: Option<String>,
        #[command(flatten)]
        settings: Settings,
    },
    /// List merchants (no secrets).
    List,
    /// Create a new signing key; the previous one stays valid until retired.
    RotateKey { merchant_id: String },
    /// Retire a signing key.
    RetireKey { merchant_id: String, key_id: String },
    /// Create a new notification (webhook) secret; the previous one keeps signing too until the
    /// next rotation, so receivers can switch without missing events.
    RotateWebhookSecret { merchant_id: String },
    /// Create an API key for /api/v1; prints its id and secret (shown only once).
    ApiKey { merchant_id: String },
    /// Retire an API key: requests with it are refused from now on.
    RetireApiKey { merchant_id: String, key_id: String },
    /// Change settings of a merchant.
    Set {
        merchant_id: String,
        #[arg(long)]
        name: Option<String>,
        /// active | disabled
        #[arg(long)]
        status: Option<String>,
        /// Offer carrier continuous billing (継続課金): true | false
        #[arg(long)]
        carrier_continuous: Option<bool>,
        /// Ask for the security code (CVC) again when a saved card is used (Stripe): true |
        /// false (default true)
        #[arg(long)]
        saved_card_cvc: Option<bool>,
        #[command(flatten)]
        settings: Settings,
    },
}

#[derive(Args, Debug, Default)]
pub struct Settings {
    /// test | live
    #[arg(long)]
    pub mode: Option<String>,
    /// Comma list of card,konbini,payeasy,banknet,docomo,au,softbank,wallet,bank_transfer (a new
    /// merchant gets all but wallet and bank_transfer, which are enabled explicitly)
    #[arg(long)]
    pub methods: Option<String>,
    /// Comma list of seven,lawson,famima,ministop,daily,seicomart
    #[arg(long)]
    pub konbini_chains: Option<String>,
    /// Allowed return-URL origin (repeatable), e.g. https://shop.example
    #[arg(long = "return-origin")]
    pub return_origins: Vec<String>,
    /// Where result notifications are sent, e.g. https://shop.example/kakehashi/notify
    #[arg(long)]
    pub callback_url: Option<String>,
    /// standard (signed JSON, Standard Webhooks) | compat (form post with SHA-256 hash field)
    #[arg(long)]
    pub notify_format: Option<String>,
    /// Theme folder name under the server's themes directory.
    #[arg(long)]
    pub theme: Option<String>,
    /// Konbini / Pay-easy payment deadline in days, 0..=60 (default 7; FamilyMart needs 1).
    #[arg(long)]
    pub konbini_days: Option<i64>,
    /// auto (即時売上) | manual (仮売上, capture later)
    #[arg(long)]
    pub capture_mode: Option<String>,
    /// Comma list of card payment options: lump,inst3,...,bonus,revo; add `holder` to ask for the cardholder name
    #[arg(long)]
    pub card_options: Option<String>,
    /// Test mode demos: mark konbini / Pay-easy payments paid after N seconds; `off` to disable.
    #[arg(long)]
    pub sandbox_autopay_seconds: Option<String>,
    /// SMS text template with {shop}, {amount}, {item} and {url} ({url} required)
    #[arg(long)]
    pub sms_template: Option<String>,
}

/// FamilyMart cannot issue a same-day number: with a 0-day deadline it is left off the
/// shopper's list of stores (the page says why). Said here so the merchant is not surprised.
fn print_famima_note() {
    println!(
        "note: with konbini-days 0 FamilyMart (famima) is not offered: it needs at least 1 day"
    );
}

pub use crate::flows::merchant_admin::ALL_CHAINS;

fn parse_methods(s: &str) -> anyhow::Result<Vec<Method>> {
    Method::parse_list(s).ok_or_else(|| anyhow::anyhow!("unknown method in {s:?}"))
}

impl From<Settings> for merchant_flow::Settings {
    fn from(s: Settings) -> Self {
        merchant_flow::Settings {
            mode: s.mode,
            methods: s.methods,
            konbini_chains: s.konbini_chains,
            return_origins: s.return_origins,
            callback_url: s.callback_url,
            notify_format: s.notify_format,
            theme: s.theme,
            konbini_days: s.konbini_days,
            capture_mode: s.capture_mode,
            card_options: s.card_options,
            sandbox_autopay_seconds: s.sandbox_autopay_seconds,
            sms_template: s.sms_template,
        }
    }
}

pub async fn merchant(
    db: &Db,
    registry: &Arc<Registry>,
    config: &Config,
    cmd: MerchantCmd,
) -> anyhow::Result<()> {
    match cmd {
        MerchantCmd::Add {
            name,
            id,
            settings: s,
        } => {
            let c = merchant_flow::create(
                db,
                registry.keys(),
                config,
                name,
                id,
                s.into(),
                crate::util::now_ms(),
            )
            .await?;
            println!("merchant_id:    {}", c.id);
            println!("key_id:         {}", c.key_id);
            println!("secret:         {}", c.secret);
            println!("webhook_secret: {}", c.webhook_secret);
            println!(
                "(both secrets are shown only now: `secret` signs your order links, \
                 `webhook_secret` verifies our notifications; keep them in your server-side settings)"
            );
            if c.famima_note {
                print_famima_note();
            }
        }
        MerchantCmd::List => {
            for m in merchants::list(db).await? {
                let keys = merchants::active_key_ids(db, &m.id).await?.join(",");
                println!(
                    "{}\t{}\t{}\t{}\tmethods={}\tkeys={}\torigins={}",
                    m.id,
                    m.name,
                    m.mode,
                    m.status,
                    Method::join(&m.methods()),
                    keys,
                    m.return_origins
                );
            }
        }
        MerchantCmd::RotateKey { merchant_id } => {
            let key =
                merchants::rotate_key(db, registry.keys(), &merchant_id, crate::util::now_ms())
                    .await?;
            println!("key_id: {}\nsecret: {}", key.key_id, key.secret);
            println!("(shown only now; the previous key stays valid until `merchant retire-key`)");
        }
        MerchantCmd::RotateWebhookSecret { merchant_id } => {
            let secret =
                merchants::rotate_webhook_secret(db, registry.keys(), &merchant_id).await?;
            println!("secret: {secret}");
            println!(
                "(shown only now; notifications are signed with this and the previous secret)"
            );
        }
        MerchantCmd::RetireKey {
            merchant_id,
            key_id,
        } => {
            merchants::retire_key(db, &merchant_id, &key_id).await?;
            println!("retired {key_id}");
        }
        MerchantCmd::ApiKey { merchant_id } => {
            // No app context on the command line: the wall clock stamps the key.
            let now = crate::util::now_ms();
            let (key_id, secret) = crate::api::keys::create(db, &merchant_id, now).await?;
            println!("key_id: {key_id}\nsecret: {secret}");
            println!("(shown only now: send it as `Authorization: Bearer <secret>`)");
        }
        MerchantCmd::RetireApiKey {
            merchant_id,
            key_id,
        } => {
            crate::api::keys::retire(db, &merchant_id, &key_id).await?;
            println!("retired {key_id}");
        }
        MerchantCmd::Set {
            merchant_id,
            name,
            status,
            carrier_continuous,
            saved_card_cvc,
            settings: s,
        } => {
            let changes = merchant_flow::Changes {
                name,
                status,
                carrier_continuous,
                saved_card_cvc,
                settings: s.into(),
            };
            let u = merchant_flow::update(db, registry, config, &merchant_id, changes).await?;
            if let Some((from, to, offered)) = u.mode {
                // Mode changes are audited wherever they come from; the CLI is the operator.
                cli_audit(
                    db,
                    &merchant_id,
                    "merchant.mode",
                    &merchant_id,
                    &format!(
                        "{} -> {}; methods={}",
                        from.as_str(),
                        to.as_str(),
                        Method::join(&offered)
                    ),
                )
                .await?;
                println!(
                    "{merchant_id} is in {} mode; methods offered: {}",
                    to.as_str(),
                    Method::join(&offered)
                );
            }
            println!("updated {merchant_id}");
            if u.famima_note {
                print_famima_note();
            }
        }
    }
    Ok(())
}

/// The demo merchant `m_demo` (test mode, demo theme, every method), created on first start.
/// Returns the secret when it was just created: it is printed once.
pub async fn ensure_demo(
    db: &Db,
    keys: &Keyring,
    public_url: &str,
) -> anyhow::Result<Option<String>> {
    if merchants::get(db, "m_demo").await?.is_some() {
        return Ok(None);
    }
    let m = NewMerchant {
        id: Some("m_demo".into()),
        name: "さくらデモショップ".into(),
        mode: Mode::Test,
        methods: Method::ALL.to_vec(),
        konbini_chains: ALL_CHAINS.split(',').map(str::to_owned).collect(),
        return_origins: vec![crate::domain::order::normalize_origin(public_url)
            .unwrap_or_else(|| public_url.to_owned())],
        callback_url: None,
        notify_format: "standard".into(),
        theme: "demo".into(),
        konbini_days: 7,
        capture_mode: "auto".into(),
        card_options: "lump,inst3,inst6,inst10,inst12,bonus,revo".into(),
    };
    match merchants::create(db, keys, &m, crate::util::now_ms()).await {
        Ok((_, key)) => Ok(Some(key.secret)),
        // Several instances starting at once on one database: another one made it first.
        Err(_) if merchants::get(db, "m_demo").await?.is_some() => Ok(None),
        Err(e) => Err(e),
    }
}

/// A freshly signed demo checkout link for `m_demo`.
pub async fn demo_link(db: &Db, keys: &Keyring, public_url: &str) -> anyhow::Result<String> {
    let (key_id, secret) = merchants::newest_key(db, keys, "m_demo")
        .await?
        .ok_or_else(|| anyhow::anyhow!("demo merchant has no active key"))?;
    let now = crate::util::now_ms() / 1000;
    let order_id = format!("demo-{now}");
    let expires = (now + 24 * 3600).to_string();
    let return_url = format!("{public_url}/demo/return");
    let q = crate::signing::signed_query(
        &secret,
        &[
            ("merchant_id", "m_demo"),
            ("key_id", &key_id),
            ("order_id", &order_id),
            ("amount", "1500"),
            ("item_name", "抹茶ラテ セット"),
            ("return_url", &return_url),
            ("cancel_url", &return_url),
            ("expires_at", &expires),
        ],
    );
    Ok(format!("{public_url}/checkout?{q}"))
}

/// Runs a card payment action through the same domain functions the console and API use.
pub async fn payment(state: &crate::state::AppState, cmd: PaymentCmd) -> anyhow::Result<()> {
    use crate::flows::card;
    let show = |p: &crate::db::payments::PaymentRow| {
        println!(
            "{}\t{}\t{}\tamount={}\tcaptured={}\trefunded={}",
            p.id, p.method, p.status, p.amount, p.captured_amount, p.refunded_amount
        )
    };
    let r = match cmd {
        PaymentCmd::Capture { payment_id, amount } => {
            card::capture(state, &payment_id, amount, "cli").await
        }
        PaymentCmd::Cancel { payment_id } => card::cancel(state, &payment_id, "cli").await,
        PaymentCmd::Refund { payment_id, amount } => {
            let wallet = crate::db::payments::get(&state.db, &payment_id)
                .await?
                .is_some_and(|p| p.method == crate::flows::wallet::METHOD);
            if wallet {
                crate::flows::wallet::refund(state, &payment_id, amount, "cli").await
            } else {
                card::refund(state, &payment_id, amount, "cli").await
            }
        }
        PaymentCmd::Show { payment_id } => {
            let p = crate::db::payments::get(&state.db, &payment_id)
                .await?
                .ok_or_else(|| anyhow::anyhow!("no payment {payment_id}"))?;
            show(&p);
            for e in crate::db::payments::events(&state.db, &payment_id).await? {
                println!(
                    "  {}\t{}\t{} -> {}\t{}",
                    crate::util::format_jst(e.created_at),
                    e.kind,
                    e.from_status.unwrap_or_default(),
                    e.to_status,
                    e.actor
                );
            }
            return Ok(());
        }
    };
    match r {
        Ok(p) => {
            show(&p);
            Ok(())
        }
        Err(crate::flows::error::FlowError::Refused { code, message, .. }) => {
            anyhow::bail!("{code}: {message}")
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn notify(db: &Db, cmd: NotifyCmd) -> anyhow::Result<()> {
    use crate::db::outbox;
    match cmd {
        NotifyCmd::List { merchant_id } => {
            for e in outbox::list_events(db, &merchant_id, 100).await? {
                println!(
                    "{}\t{}\t{}\tattempts={}\t{}",
                    e.id,
                    e.kind,
                    e.status,
                    e.attempts,
                    e.payment_id.unwrap_or_default()
                );
            }
        }
        NotifyCmd::Attempts { event_id } => {
            for a in outbox::attempts(db, &event_id).await? {
                println!(
                    "{}\t{}\t{}ms\t{}\t{}",
                    crate::util::format_jst(a.attempted_at),
                    a.status_code
                        .map(|c| c.to_string())
                        .unwrap_or_else(|| "-".into()),
                    a.latency_ms,
                    a.outcome,
                    a.response_snippet
                );
            }
        }
        NotifyCmd::Redeliver {
            merchant_id,
            event_id,
            failed,
        } => {
            anyhow::ensure!(event_id.is_some() || failed, "give an event id or --failed");
            let n = outbox::redeliver(db, &merchant_id, event_id.as_deref(), crate::util::now_ms())
                .await?;
            println!("queued {n} event(s) for redelivery (a running server delivers them)");
        }
        NotifyCmd::Ping { merchant_id } => {
            let id = outbox::ping(db, &merchant_id, crate::util::now_ms()).await?;
            println!("queued ping {id}");
        }
    }
    Ok(())
}

#[derive(Subcommand, Debug)]
pub enum SandboxCmd {
    /// 速報: the shopper paid at the store / ATM.
    Pay {
        payment_id: String,
        /// When the shopper paid (unix seconds; default now). After the deadline gives late_paid.
        #[arg(long)]
        paid_at: Option<i64>,
    },
    /// 確報: funds confirmed.
    Confirm { payment_id: String },
    /// 速報取消: the store reversed the payment.
    Reverse { payment_id: String },
    /// Expire the number now, as if its deadline had passed.
    Expire { payment_id: String },
    /// 速報 on a reusable number: the customer paid it at a store now (a new payment).
    PayRepeat {
        repeat_id: String,
        /// Yen, for a number whose amount is decided at the store (1–300000).
        #[arg(long)]
        amount: Option<i64>,
        /// The store's chain code (default: the merchant's first enabled chain).
        #[arg(long)]
        chain: Option<String>,
    },
}

/// Runs a sandbox control against the database; the server's notification worker delivers the
/// resulting notification. Refused for live merchants.
pub async fn sandbox(db: &Db, cmd: SandboxCmd) -> anyhow::Result<()> {
    use crate::flows::konbini::{self as flow, SandboxAction};
    let (id, action) = match cmd {
        SandboxCmd::PayRepeat {
            repeat_id,
            amount,
            chain,
        } => {
            let chain = match chain {
                None => None,
                Some(c) => Some(
                    crate::domain::konbini::Chain::parse(&c)
                        .ok_or_else(|| anyhow::anyhow!("unknown chain {c:?}"))?,
                ),
            };
            let p = crate::flows::repeat::sandbox_pay(
                db,
                &repeat_id,
                None,
                amount,
                chain,
                "sandbox_cli",
                crate::util::now_ms(),
            )
            .await?;
            println!(
                "{}",
                serde_json::to_string_pretty(
                    &serde_json::json!({ "payment": flow::payment_json(&p) })
                )?
            );
            return Ok(());
        }
        SandboxCmd::Pay {
            payment_id,
            paid_at,
        } => (
            payment_id,
            SandboxAction::Paid {
                at_ms: paid_at.map(|s| s.saturating_mul(1000)),
            },
        ),
        SandboxCmd::Confirm { payment_id } => (payment_id, SandboxAction::Confirm),
        SandboxCmd::Reverse { payment_id } => (payment_id, SandboxAction::Reverse),
        SandboxCmd::Expire { payment_id } => (payment_id, SandboxAction::Expire),
    };
    let p =
        flow::sandbox_apply(db, &id, None, action, "sandbox_cli", crate::util::now_ms()).await?;
    println!(
        "{}",
        serde_json::to_string_pretty(&serde_json::json!({ "payment": flow::payment_json(&p) }))?
    );
    Ok(())
}
