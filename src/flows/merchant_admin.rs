//! Merchant administration shared by `kakehashi merchant add|set` and the operator console:
//! every setting is validated before anything is written (callback URLs under the SSRF rules of
//! the mode the merchant ends in, konbini chains, card options, the SMS template), and mode
//! changes go through the live-mode rules of [`crate::flows::processors::set_mode`].

use std::sync::Arc;

use crate::config::Config;
use crate::connectors::registry::Registry;
use crate::db::merchants::{self, NewMerchant};
use crate::db::Db;
use crate::domain::konbini::Chain;
use crate::domain::{Method, Mode};
use crate::secrets::Keyring;

/// Every konbini chain, the default of a new merchant.
pub const ALL_CHAINS: &str = "seven,lawson,famima,ministop,daily,seicomart";

/// Settings a merchant can be created or changed with; `None` (or an empty list of origins)
/// leaves a setting as it is (or at its default for a new merchant).
#[derive(Debug, Default, Clone)]
pub struct Settings {
    /// test | live
    pub mode: Option<String>,
    /// Comma list of method codes.
    pub methods: Option<String>,
    /// Comma list of chain codes.
    pub konbini_chains: Option<String>,
    pub return_origins: Vec<String>,
    /// Empty string clears the callback URL.
    pub callback_url: Option<String>,
    /// standard | compat
    pub notify_format: Option<String>,
    pub theme: Option<String>,
    pub konbini_days: Option<i64>,
    /// auto | manual
    pub capture_mode: Option<String>,
    /// Comma list of card options (lump, inst3, …, bonus, revo) and `holder`.
    pub card_options: Option<String>,
    /// Seconds, or `off`.
    pub sandbox_autopay_seconds: Option<String>,
    pub sms_template: Option<String>,
}

/// A merchant just created; the secrets are shown once and stored only sealed.
#[derive(Debug)]
pub struct Created {
    pub id: String,
    pub key_id: String,
    pub secret: String,
    pub webhook_secret: String,
    /// FamilyMart is enabled with a 0-day deadline, so it is not offered (say so).
    pub famima_note: bool,
}

/// What a change did besides the columns: the mode switch, if any.
#[derive(Debug, Default)]
pub struct Updated {
    /// (mode before, mode after, methods offered now).
    pub mode: Option<(Mode, Mode, Vec<Method>)>,
    pub famima_note: bool,
}

/// Changes to an existing merchant.
#[derive(Debug, Default, Clone)]
pub struct Changes {
    pub name: Option<String>,
    /// active | disabled
    pub status: Option<String>,
    /// Offer carrier continuous billing (継続課金).
    pub carrier_continuous: Option<bool>,
    /// Ask for the security code (CVC) again when a saved card is used.
    pub saved_card_cvc: Option<bool>,
    pub settings: Settings,
}

/// FamilyMart cannot issue a same-day number: with a 0-day deadline it is left off the
/// shopper's list of stores.
pub fn famima_note(chains: &str, days: i64) -> bool {
    days == 0 && chains.split(',').any(|c| c.trim() == "famima")
}

fn parse_methods(s: &str) -> anyhow::Result<Vec<Method>> {
    Method::parse_list(s).ok_or_else(|| anyhow::anyhow!("unknown method in {s:?}"))
}

fn parse_chains(s: &str) -> anyhow::Result<String> {
    let list: Vec<&str> = s
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    for c in &list {
        anyhow::ensure!(Chain::parse(c).is_some(), "unknown konbini chain {c:?}");
    }
    Ok(list.join(","))
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

fn check_card_options(v: &str) -> anyhow::Result<()> {
    let codes: Vec<&str> = v
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty() && *s != "holder")
        .collect();
    crate::domain::card::MerchantOptions::parse(&codes.join(","))
        .map_err(|_| anyhow::anyhow!("card-options: unknown or empty option list {v:?}"))?;
    Ok(())
}

/// A callback URL checked at registration with the same SSRF rules as delivery
/// ([`crate::ssrf::check_url`] under the merchant's mode); returned normalised.
pub fn checked_callback(config: &Config, mode: Mode, url: &str) -> anyhow::Result<String> {
    let policy = crate::ssrf::policy_for(config, mode);
    crate::ssrf::check_url(url, policy)
        .map(|u| u.to_string())
        .map_err(|e| anyhow::anyhow!("callback-url refused ({}): {e}", e.code()))
}

/// `--sandbox-autopay-seconds`: `off` (None) or whole seconds up to 30 days.
pub fn parse_autopay(s: &str) -> anyhow::Result<Option<i64>> {
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

/// Creates a merchant in test mode with its first signing key and webhook secret.
pub async fn create(
    db: &Db,
    keys: &Keyring,
    config: &Config,
    name: String,
    id: Option<String>,
    s: Settings,
    now: i64,
) -> anyhow::Result<Created> {
    let name = name.trim().to_owned();
    anyhow::ensure!(!name.is_empty(), "name must not be empty");
    if let Some(id) = &id {
        anyhow::ensure!(
            !id.is_empty()
                && id.len() <= 64
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'),
            "merchant id: 1-64 of A-Z a-z 0-9 _ -"
        );
        anyhow::ensure!(
            merchants::get(db, id).await?.is_none(),
            "a merchant {id} already exists"
        );
    }
    let mode = Mode::parse(s.mode.as_deref().unwrap_or("test"))
        .ok_or_else(|| anyhow::anyhow!("mode must be test or live"))?;
    anyhow::ensure!(
        mode == Mode::Test,
        "a new merchant starts in test mode: add a live processor account \
         (`processor add`), then `merchant set <id> --mode live`"
    );
    let capture_mode = s.capture_mode.unwrap_or_else(|| "auto".into());
    check_choice("capture-mode", &capture_mode, &["auto", "manual"])?;
    let notify_format = s.notify_format.unwrap_or_else(|| "standard".into());
    check_choice("notify-format", &notify_format, &["standard", "compat"])?;
    let card_options = s.card_options.unwrap_or_else(|| "lump".into());
    check_card_options(&card_options)?;
    let chains = parse_chains(s.konbini_chains.as_deref().unwrap_or(ALL_CHAINS))?;
    let m = NewMerchant {
        id,
        name,
        mode,
        methods: parse_methods(
            s.methods
                .as_deref()
                .unwrap_or("card,konbini,payeasy,banknet,docomo,au,softbank"),
        )?,
        konbini_chains: chains.split(',').map(str::to_owned).collect(),
        return_origins: parse_origins(&s.return_origins)?,
        callback_url: s
            .callback_url
            .as_deref()
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(|u| checked_callback(config, mode, u))
            .transpose()?,
        notify_format,
        theme: s
            .theme
            .unwrap_or_else(|| crate::themes::DEFAULT_THEME.into()),
        konbini_days: s.konbini_days.unwrap_or(7),
        capture_mode,
        card_options,
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
    let (id, key) = merchants::create(db, keys, &m, now).await?;
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
        .webhook_secrets(keys)?
        .into_iter()
        .next()
        .unwrap_or_default();
    Ok(Created {
        id,
        key_id: key.key_id,
        secret: key.secret,
        webhook_secret,
        famima_note: famima_note(&m.konbini_chains.join(","), m.konbini_days),
    })
}

/// Changes a merchant: everything is checked first, then written. The callback URL (new, or
/// kept across a mode change) must pass the delivery rules of the mode the merchant ends in.
pub async fn update(
    db: &Db,
    registry: &Arc<Registry>,
    config: &Config,
    merchant_id: &str,
    ch: Changes,
) -> anyhow::Result<Updated> {
    let s = ch.settings;
    let m = merchants::get(db, merchant_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no merchant {merchant_id}"))?;
    let famima_check = s.konbini_chains.is_some() || s.konbini_days.is_some();
    let mode = s
        .mode
        .as_deref()
        .map(|v| Mode::parse(v).ok_or_else(|| anyhow::anyhow!("mode must be test or live")))
        .transpose()?;
    let end_mode = mode.unwrap_or(m.mode());
    let callback = match s.callback_url.as_deref().map(str::trim) {
        Some("") => Some(String::new()),
        Some(u) => Some(checked_callback(config, end_mode, u)?),
        None => {
            if mode.is_some() {
                if let Some(u) = m.callback_url.as_deref().filter(|u| !u.is_empty()) {
                    checked_callback(config, end_mode, u).map_err(|e| {
                        anyhow::anyhow!("{e}; set a new --callback-url with the mode")
                    })?;
                }
            }
            None
        }
    };
    let mut changes: Vec<(&'static str, String)> = Vec::new();
    if let Some(v) = ch.name {
        let v = v.trim().to_owned();
        anyhow::ensure!(!v.is_empty(), "name must not be empty");
        changes.push(("name", v));
    }
    if let Some(v) = ch.status {
        check_choice("status", &v, &["active", "disabled"])?;
        changes.push(("status", v));
    }
    if let Some(v) = s.methods {
        changes.push(("methods", Method::join(&parse_methods(&v)?)));
    }
    if let Some(v) = s.konbini_chains {
        changes.push(("konbini_chains", parse_chains(&v)?));
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
        check_card_options(&v)?;
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
            || ch.carrier_continuous.is_some()
            || ch.saved_card_cvc.is_some()
            || s.sms_template.is_some(),
        "nothing to change"
    );
    if let Some(on) = ch.carrier_continuous {
        crate::flows::carrier::set_continuous(db, merchant_id, on).await?;
    }
    if let Some(on) = ch.saved_card_cvc {
        merchants::set_saved_card_cvc(db, merchant_id, on).await?;
    }
    if let Some(t) = &s.sms_template {
        crate::sms::set_template(db, merchant_id, t).await?;
    }
    for (col, v) in changes {
        merchants::set_field(db, merchant_id, col, &v).await?;
    }
    let mut out = Updated::default();
    if let Some(to) = mode {
        let offered = crate::flows::processors::set_mode(db, registry, merchant_id, to).await?;
        out.mode = Some((m.mode(), to, offered));
    }
    if let Some(v) = autopay {
        crate::flows::konbini::set_autopay_seconds(db, merchant_id, v).await?;
    }
    if famima_check {
        if let Some(m) = merchants::get(db, merchant_id).await? {
            out.famima_note = famima_note(&m.konbini_chains, m.konbini_days);
        }
    }
    Ok(out)
}
