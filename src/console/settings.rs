//! Merchant settings edited in the console, validated before anything is written, and the
//! rotation of signing keys and webhook secrets (new secrets are shown once).

use crate::config::Config;
use crate::db::merchants::{self, MerchantRow};
use crate::db::Db;
use crate::domain::konbini::Chain;
use crate::domain::wallet::{Brands, Wallet};
use crate::domain::{CaptureMode, Method};
use crate::form::get;
use crate::ssrf::{self, policy_for};
use crate::themes::Themes;

/// Validated settings, ready to store.
#[derive(Debug, PartialEq, Eq)]
pub struct Update {
    pub callback_url: Option<String>,
    pub return_origins: Vec<String>,
    pub methods: Vec<Method>,
    pub konbini_chains: Vec<String>,
    pub wallet_brands: Brands,
    pub konbini_days: i64,
    pub capture_mode: CaptureMode,
    /// Saved cards need their security code re-entered.
    pub saved_card_cvc: bool,
    pub theme: String,
}

fn all<'a>(fields: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    fields
        .iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .collect()
}

/// Parses the settings form; `Err` is a message for the user, and nothing is stored.
pub fn parse(
    fields: &[(String, String)],
    m: &MerchantRow,
    config: &Config,
    themes: &Themes,
    uploaded: &[String],
) -> Result<Update, String> {
    let cb = get(fields, "callback_url").trim();
    let callback_url = if cb.is_empty() {
        None
    } else {
        let u = ssrf::check_url(cb, policy_for(config, m.mode()))
            .map_err(|e| format!("結果通知URLを登録できません（{}）。", e.code()))?;
        Some(u.to_string())
    };
    let mut return_origins = Vec::new();
    for o in get(fields, "return_origins").split_whitespace() {
        let n = crate::domain::order::normalize_origin(o)
            .ok_or_else(|| format!("戻り先オリジンが正しくありません: {o}"))?;
        if !return_origins.contains(&n) {
            return_origins.push(n);
        }
    }
    let methods = Method::parse_list(&all(fields, "methods").join(","))
        .ok_or("決済手段が正しくありません。")?;
    if methods.is_empty() {
        return Err("決済手段を1つ以上選択してください。".into());
    }
    let mut konbini_chains = Vec::new();
    for c in all(fields, "chains") {
        Chain::parse(c).ok_or_else(|| format!("コンビニチェーンが正しくありません: {c}"))?;
        konbini_chains.push(c.to_owned());
    }
    if methods.contains(&Method::Konbini) && konbini_chains.is_empty() {
        return Err("コンビニ決済にはチェーンを1つ以上選択してください。".into());
    }
    let mut chosen = Vec::new();
    for w in all(fields, "wallets") {
        chosen.push(
            Wallet::parse(w)
                .ok_or_else(|| format!("スマホ決済のブランドが正しくありません: {w}"))?,
        );
    }
    let wallet_brands = match Brands::choose(&chosen) {
        Some(b) => b,
        None if methods.contains(&Method::Wallet) => {
            return Err("スマホ決済にはブランドを1つ以上選択してください。".into())
        }
        // Nothing chosen and wallets off: keep the stored choice for when they are turned on.
        None => m.wallet_brands.clone(),
    };
    let konbini_days: i64 = get(fields, "konbini_days")
        .trim()
        .parse()
        .ok()
        .filter(|d| (0..=60).contains(d))
        .ok_or("コンビニ支払期限は0〜60日で入力してください。")?;
    let capture_mode =
        CaptureMode::parse(get(fields, "capture_mode")).ok_or("売上方式が正しくありません。")?;
    // Only an explicit `off` stops asking: a form without the field keeps the safer default.
    let saved_card_cvc = match get(fields, "saved_card_cvc") {
        "off" => false,
        "on" | "" => true,
        _ => return Err("保存済みカードのセキュリティコードの設定が正しくありません。".into()),
    };
    let theme = get(fields, "theme");
    if !themes.contains(theme) && !uploaded.iter().any(|u| u == theme) {
        return Err("テーマが正しくありません。".into());
    }
    Ok(Update {
        callback_url,
        return_origins,
        methods,
        konbini_chains,
        wallet_brands,
        konbini_days,
        capture_mode,
        saved_card_cvc,
        theme: theme.to_owned(),
    })
}

/// Stores validated settings in one statement.
pub async fn store(db: &Db, merchant_id: &str, u: &Update) -> Result<(), crate::db::Error> {
    let settings = merchants::ConsoleSettings {
        callback_url: u.callback_url.as_deref(),
        return_origins: &u.return_origins,
        methods: &u.methods,
        konbini_chains: &u.konbini_chains,
        wallet_brands: &u.wallet_brands,
        konbini_days: u.konbini_days,
        capture_mode: u.capture_mode,
        saved_card_cvc: u.saved_card_cvc,
        theme: &u.theme,
    };
    merchants::set_console_settings(db, merchant_id, &settings).await
}

/// Prepends a new webhook secret and keeps at most two (the previous one stays valid so the
/// merchant can switch receivers without missing notifications). Returns the new secret.
pub async fn rotate_webhook_secret(
    db: &Db,
    keys: &crate::secrets::Keyring,
    m: &MerchantRow,
) -> anyhow::Result<String> {
    let (new, joined) = merchants::next_webhook_secrets(keys, m)?;
    // Conditional on the old value so two concurrent rotations cannot drop a live secret.
    if !merchants::replace_webhook_secrets(db, &m.id, &m.webhook_secrets, &joined).await? {
        return Err(crate::db::Error::RowNotFound.into());
    }
    Ok(new)
}
