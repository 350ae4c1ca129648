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
            workers: true,
            sweep_interval_ms: self.sweep_interval_ms.max(100),
            sms_http_url: self.sms_http_url.clone(),
            sms_http_auth: self.sms_http_auth.clone().map(crate::config::Redacted),
            metrics_token: self.metrics_token.clone().map(crate::config::Redacted),
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
}

/// Runs a `user` command.
pub async fn user(db: &Db, keys: &Keyring, cmd: UserCmd) -> anyhow::Result<()> {
    match cmd {
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
    println!("(shown only now: add the secret to an authenticator app, or scan the QR code shown at first login)");
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
        #[command(flatten)]
        settings: Settings,
    },
}

#[derive(Args, Debug, Default)]
pub struct Settings {
    /// test | live
    #[arg(long)]
    pub mode: Option<String>,
    /// Comma list of card,konbini,payeasy,banknet,docomo,au,softbank,wallet (a new merchant
    /// gets all but wallet, which is enabled explicitly)
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
fn warn_famima_days(chains: &str, days: i64) {
    if days == 0 && chains.split(',').any(|c| c.trim() == "famima") {
        println!(
            "note: with konbini-days 0 FamilyMart (famima) is not offered: it needs at least 1 day"
        );
    }
}

pub const ALL_CHAINS: &str = "seven,lawson,famima,ministop,daily,seicomart";

fn parse_methods(s: &str) -> anyhow::Result<Vec<Method>> {
    Method::parse_list(s).ok_or_else(|| anyhow::anyhow!("unknown method in {s:?}"))
}

fn parse_origins(list: &[String]) -> anyhow::Result<Vec<String>> {
    list.iter()
        .map(|o| {
            crate::domain::order::normalize_origin(o)
                .ok_or_else(|| anyhow::anyhow!("not an http(s) origin: {o:?}"))
        })
        .collect()
}

fn check_choice(name: &str, value: &str, allowed: &[&str]) -> anyhow::Result<()> {
    anyhow::ensure!(
        allowed.contains(&value),
        "{name} must be one of {}",
        allowed.join(", ")
    );
    Ok(())
}

/// A callback URL checked at registration with the same SSRF rules as delivery
/// ([`crate::ssrf::check_url`] under the merchant's mode); returned normalised.
fn checked_callback(config: &Config, mode: Mode, url: &str) -> anyhow::Result<String> {
    let policy = crate::ssrf::policy_for(config, mode);
    crate::ssrf::check_url(url, policy)
        .map(|u| u.to_string())
        .map_err(|e| anyhow::anyhow!("callback-url refused ({}): {e}", e.code()))
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
            let mode = Mode::parse(s.mode.as_deref().unwrap_or("test"))
                .ok_or_else(|| anyhow::anyhow!("mode must be test or live"))?;
            anyhow::ensure!(
                mode == Mode::Test,
                "a new merchant starts in test mode: add a live processor account \
                 (`processor add`), then `merchant set <id> --mode live`"
            );
            let capture_mode = s.capture_mode.unwrap_or_else(|| "auto".into());
            check_choice("capture-mode", &capture_mode, &["auto", "manual"])?;
            let m = NewMerchant {
                id,
                name,
                mode,
                methods: parse_methods(
                    s.methods
                        .as_deref()
                        .unwrap_or("card,konbini,payeasy,banknet,docomo,au,softbank"),
                )?,
                konbini_chains: s
                    .konbini_chains
                    .unwrap_or_else(|| ALL_CHAINS.into())
                    .split(',')
                    .map(str::to_owned)
                    .collect(),
                return_origins: parse_origins(&s.return_origins)?,
                callback_url: s
                    .callback_url
                    .as_deref()
                    .map(|u| checked_callback(config, mode, u))
                    .transpose()?,
                notify_format: s.notify_format.unwrap_or_else(|| "standard".into()),
                theme: s
                    .theme
                    .unwrap_or_else(|| crate::themes::DEFAULT_THEME.into()),
                konbini_days: s.konbini_days.unwrap_or(7),
                capture_mode,
                card_options: s.card_options.unwrap_or_else(|| "lump".into()),
            };
            let autopay = s
                .sandbox_autopay_seconds
                .as_deref()
                .map(parse_autopay)
                .transpose()?;
            if let Some(t) = &s.sms_template {
                crate::sms::check_template(t)?;
            }
            anyhow::ensure!(
                (0..=60).contains(&m.konbini_days),
                "konbini-days must be 0..=60"
            );
            let (id, key) =
                merchants::create(db, registry.keys(), &m, crate::util::now_ms()).await?;
            if let Some(v) = autopay {
                crate::flows::konbini::set_autopay_seconds(db, &id, v).await?;
            }
            if let Some(t) = &s.sms_template {
                crate::sms::set_template(db, &id, t).await?;
            }
            let created = merchants::get(db, &id)
                .await?
                .ok_or_else(|| anyhow::anyhow!("merchant {id} vanished"))?;
            let webhook_secret = created
                .webhook_secrets(registry.keys())?
                .into_iter()
                .next()
                .unwrap_or_default();
            println!("merchant_id:    {id}");
            println!("key_id:         {}", key.key_id);
            println!("secret:         {}", key.secret);
            println!("webhook_secret: {webhook_secret}");
            println!(
                "(both secrets are shown only now: `secret` signs your order links, \
                 `webhook_secret` verifies our notifications; keep them in your server-side settings)"
            );
            warn_famima_days(&m.konbini_chains.join(","), m.konbini_days);
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
            settings: s,
        } => {
            let famima_check = s.konbini_chains.is_some() || s.konbini_days.is_some();
            // The callback URL (new, or kept across a mode change) must pass the delivery
            // rules of the mode the merchant ends in; checked before anything is changed.
            let callback = match (&s.callback_url, s.mode.as_deref().map(Mode::parse)) {
                (None, None) => None,
                (url, new_mode) => {
                    let m = merchants::get(db, &merchant_id)
                        .await?
                        .ok_or_else(|| anyhow::anyhow!("no merchant {merchant_id}"))?;
                    let mode = match new_mode {
                        Some(Some(mode)) => mode,
                        Some(None) => anyhow::bail!("mode must be test or live"),
                        None => m.mode(),
                    };
                    match url.as_deref().map(str::trim) {
                        Some("") => Some(String::new()),
                        Some(u) => Some(checked_callback(config, mode, u)?),
                        None => {
                            if let Some(u) = m.callback_url.as_deref().filter(|u| !u.is_empty()) {
                                checked_callback(config, mode, u).map_err(|e| {
                                    anyhow::anyhow!("{e}; set a new --callback-url with the mode")
                                })?;
                            }
                            None
                        }
                    }
                }
            };
            if let Some(on) = carrier_continuous {
                crate::flows::carrier::set_continuous(db, &merchant_id, on).await?;
            }
            let mut changes: Vec<(&'static str, String)> = Vec::new();
            if let Some(v) = name {
                changes.push(("name", v));
            }
            if let Some(v) = status {
                check_choice("status", &v, &["active", "disabled"])?;
                changes.push(("status", v));
            }
            let mode = s
                .mode
                .as_deref()
                .map(|v| Mode::parse(v).ok_or_else(|| anyhow::anyhow!("mode must be test or live")))
                .transpose()?;
            if let Some(v) = s.methods {
                changes.push(("methods", Method::join(&parse_methods(&v)?)));
            }
            if let Some(v) = s.konbini_chains {
                changes.push(("konbini_chains", v));
            }
            if !s.return_origins.is_empty() {
                changes.push((
                    "return_origins",
                    parse_origins(&s.return_origins)?.join(" "),
                ));
            }
            if let Some(v) = callback {
                changes.push(("callback_url", v));
            }
            if let Some(v) = s.notify_format {
                check_choice("notify-format", &v, &["standard", "compat"])?;
                changes.push(("notify_format", v));
            }
            if let Some(v) = s.theme {
                changes.push(("theme", v));
            }
            if let Some(v) = s.konbini_days {
                anyhow::ensure!((0..=60).contains(&v), "konbini-days must be 0..=60");
                changes.push(("konbini_days", v.to_string()));
            }
            if let Some(v) = s.capture_mode {
                check_choice("capture-mode", &v, &["auto", "manual"])?;
                changes.push(("capture_mode", v));
            }
            if let Some(v) = s.card_options {
                changes.push(("card_options", v));
            }
            let autopay = s
                .sandbox_autopay_seconds
                .as_deref()
                .map(parse_autopay)
                .transpose()?;
            if let Some(t) = &s.sms_template {
                crate::sms::check_template(t)?;
            }
            anyhow::ensure!(
                !changes.is_empty()
                    || mode.is_some()
                    || autopay.is_some()
                    || carrier_continuous.is_some()
                    || s.sms_template.is_some(),
                "nothing to change"
            );
            if let Some(t) = &s.sms_template {
                crate::sms::set_template(db, &merchant_id, t).await?;
            }
            for (col, v) in changes {
                merchants::set_field(db, &merchant_id, col, &v).await?;
            }
            if let Some(mode) = mode {
                let from = merchants::get(db, &merchant_id)
                    .await?
                    .map(|m| m.mode().as_str())
                    .unwrap_or("-");
                let offered =
                    crate::flows::processors::set_mode(db, registry, &merchant_id, mode).await?;
                // Mode changes are audited wherever they come from; the CLI is the operator.
                cli_audit(
                    db,
                    &merchant_id,
                    "merchant.mode",
                    &merchant_id,
                    &format!(
                        "{from} -> {}; methods={}",
                        mode.as_str(),
                        Method::join(&offered)
                    ),
                )
                .await?;
                println!(
                    "{merchant_id} is in {} mode; methods offered: {}",
                    mode.as_str(),
                    Method::join(&offered)
                );
            }
            if let Some(v) = autopay {
                crate::flows::konbini::set_autopay_seconds(db, &merchant_id, v).await?;
            }
            println!("updated {merchant_id}");
            if famima_check {
                if let Some(m) = merchants::get(db, &merchant_id).await? {
                    warn_famima_days(&m.konbini_chains, m.konbini_days);
                }
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
    let (_, key) = merchants::create(db, keys, &m, crate::util::now_ms()).await?;
    Ok(Some(key.secret))
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

/// `--sandbox-autopay-seconds`: `off` (None) or whole seconds.
fn parse_autopay(s: &str) -> anyhow::Result<Option<i64>> {
    if s == "off" {
        return Ok(None);
    }
    let n: i64 = s
        .parse()
        .ok()
        .filter(|n| (0..=30 * 24 * 3600).contains(n))
        .ok_or_else(|| anyhow::anyhow!("sandbox-autopay-seconds must be off or 0..=2592000"))?;
    Ok(Some(n))
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
}

/// Runs a sandbox control against the database; the server's notification worker delivers the
/// resulting notification. Refused for live merchants.
pub async fn sandbox(db: &Db, cmd: SandboxCmd) -> anyhow::Result<()> {
    use crate::flows::konbini::{self as flow, SandboxAction};
    let (id, action) = match cmd {
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
