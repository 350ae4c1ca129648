//! SMS payment links (SMS決済): the provider interface with a sandbox (test mode) and a generic
//! HTTP gateway (live), phone-number normalisation, the 70-character message template and the
//! per-merchant sending rate limit. Payment requests themselves live in [`requests`].

pub mod http;
pub mod sandbox;

use std::sync::Arc;

use crate::config::Config;
use crate::db::{sms, Tx};
use crate::domain::{Mode, SmsStatus};

/// Longest text of one SMS in UCS-2 (Japanese text is never GSM-7): 70 UTF-16 code units.
pub const MAX_SMS_UNITS: usize = 70;

/// The template merchants get unless they set their own (`merchant set --sms-template`).
pub const DEFAULT_TEMPLATE: &str = "{shop}: {amount}円のお支払いはこちら {url}";

/// What a gateway answered when it accepted a message.
#[derive(Clone, Debug, Default)]
pub struct ProviderReceipt {
    /// The gateway's message id, when it returned one.
    pub id: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SmsError {
    #[error("gateway answered HTTP {0}")]
    Status(u16),
    #[error("gateway unreachable: {0}")]
    Transport(String),
}

/// An SMS gateway. Implementations must not log the message text: it holds a payment URL.
#[async_trait::async_trait]
pub trait SmsProvider: Send + Sync {
    /// Short name recorded with each message (`sandbox`, `http`).
    fn name(&self) -> &'static str;
    /// Sends `text` to `to` (normalised `0?0` + 8 digits (e.g. `09012345678`)).
    async fn send(&self, to: &str, text: &str) -> Result<ProviderReceipt, SmsError>;
}

/// The providers this server has: the sandbox for test-mode merchants and, when configured, the
/// HTTP gateway for live ones.
pub struct SmsProviders {
    pub sandbox: Arc<sandbox::SandboxSms>,
    pub http: Option<Arc<http::HttpSms>>,
}

impl SmsProviders {
    /// Builds the providers from the server settings; a gateway URL that breaks the SSRF rules
    /// stops the server at startup rather than at the first message.
    pub fn from_config(config: &Config) -> anyhow::Result<Self> {
        let http = match &config.sms_http_url {
            Some(url) if !url.trim().is_empty() => Some(Arc::new(http::HttpSms::new(config, url)?)),
            _ => None,
        };
        Ok(SmsProviders {
            sandbox: Arc::new(sandbox::SandboxSms),
            http,
        })
    }

    /// The provider for a merchant's mode; live needs the configured gateway.
    pub fn for_mode(&self, mode: Mode) -> Result<Arc<dyn SmsProvider>, SendError> {
        match mode {
            Mode::Test => Ok(self.sandbox.clone()),
            Mode::Live => self
                .http
                .clone()
                .map(|h| h as Arc<dyn SmsProvider>)
                .ok_or(SendError::NotConfigured),
        }
    }
}

/// Normalises a Japanese mobile number (070/080/090, 11 digits) to `0?0` + 8 digits (e.g. `09012345678`). Hyphens,
/// spaces and the `+81` country code are accepted; anything else is refused.
pub fn normalize_phone(input: &str) -> Option<String> {
    let compact: String = input
        .trim()
        .chars()
        .filter(|c| !matches!(c, '-' | ' '))
        .collect();
    let national = match compact.strip_prefix("+81") {
        // +81 replaces the trunk prefix 0: "+81 90-..." is 090-...; "+81 090" is a typo.
        Some(rest) if !rest.starts_with('0') => format!("0{rest}"),
        Some(_) => return None,
        None => compact,
    };
    let ok = national.len() == 11
        && national.bytes().all(|b| b.is_ascii_digit())
        && ["070", "080", "090"]
            .iter()
            .any(|p| national.starts_with(p));
    ok.then_some(national)
}

/// Length of an SMS text as the network counts it in UCS-2.
pub fn sms_units(text: &str) -> usize {
    text.encode_utf16().count()
}

/// Why a template cannot be used.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("the template must contain {{url}} exactly once")]
    NeedsUrl,
    #[error("unknown placeholder {0} (use {{shop}}, {{amount}}, {{item}}, {{url}})")]
    UnknownPlaceholder(String),
    #[error("the message is {0} characters even with the shop name shortened; at most 70 fit in one SMS")]
    TooLong(usize),
}

const PLACEHOLDERS: [&str; 4] = ["{shop}", "{amount}", "{item}", "{url}"];

/// Checks a merchant template: `{url}` exactly once, no unknown `{...}` placeholders, no
/// control characters.
pub fn check_template(template: &str) -> Result<(), TemplateError> {
    if template.matches("{url}").count() != 1 {
        return Err(TemplateError::NeedsUrl);
    }
    let mut rest = template;
    while let Some(i) = rest.find('{') {
        let tail = &rest[i..];
        let end = tail.find('}').map(|j| j + 1).unwrap_or(tail.len());
        let ph = &tail[..end];
        if !PLACEHOLDERS.contains(&ph) {
            return Err(TemplateError::UnknownPlaceholder(ph.to_owned()));
        }
        rest = &tail[end..];
    }
    if template.chars().any(char::is_control) {
        return Err(TemplateError::UnknownPlaceholder(
            "control character".into(),
        ));
    }
    Ok(())
}

/// Renders the message. When it would exceed 70 UCS-2 units the shop name is shortened (with
/// "…"), never the URL or the amount; if even that does not fit, the message is refused.
pub fn render_text(
    template: &str,
    shop: &str,
    amount: i64,
    item: &str,
    url: &str,
) -> Result<String, TemplateError> {
    check_template(template)?;
    let fill = |shop: &str| {
        template
            .replace("{amount}", &crate::util::format_yen(amount))
            .replace("{item}", item)
            .replace("{url}", url)
            .replace("{shop}", shop)
    };
    let full = fill(shop);
    if sms_units(&full) <= MAX_SMS_UNITS {
        return Ok(full);
    }
    let uses = template.matches("{shop}").count();
    if uses == 0 {
        return Err(TemplateError::TooLong(sms_units(&full)));
    }
    let without = sms_units(&fill(""));
    let room = MAX_SMS_UNITS.saturating_sub(without) / uses;
    // Keep at least one character of the name before the ellipsis: a lone "…" names no shop.
    if room < 2 {
        return Err(TemplateError::TooLong(sms_units(&fill("…"))));
    }
    let mut short = String::new();
    for c in shop.chars() {
        if sms_units(&short) + c.len_utf16() > room - 1 {
            break;
        }
        short.push(c);
    }
    short.push('…');
    let text = fill(&short);
    debug_assert!(sms_units(&text) <= MAX_SMS_UNITS);
    Ok(text)
}

/// The merchant's template (column `merchants.sms_template`).
pub async fn template_of(
    db: &crate::db::Db,
    merchant_id: &str,
) -> Result<String, crate::db::Error> {
    let t = crate::db::merchants::sms_template(db, merchant_id).await?;
    Ok(t.unwrap_or_else(|| DEFAULT_TEMPLATE.to_owned()))
}

/// Sets a merchant's template after checking it.
pub async fn set_template(
    db: &crate::db::Db,
    merchant_id: &str,
    template: &str,
) -> anyhow::Result<()> {
    check_template(template)?;
    anyhow::ensure!(
        crate::db::merchants::set_sms_template(db, merchant_id, template).await?,
        "no merchant {merchant_id}"
    );
    Ok(())
}

/// Reserves one message in the merchant's per-minute budget at `now` and records it as
/// `queued`, in the caller's transaction (the count is taken under the merchant's lock, see
/// [`sms::lock_and_count_since`]).
#[allow(clippy::too_many_arguments)]
pub async fn reserve_and_queue(
    tx: &mut Tx,
    limit_per_minute: i64,
    merchant_id: &str,
    request_id: Option<&str>,
    phone: &str,
    body: &str,
    provider: &str,
    now: i64,
) -> Result<String, SendError> {
    let (count, oldest) = sms::lock_and_count_since(tx, merchant_id, now - 60_000).await?;
    if count >= limit_per_minute {
        return Err(rate_limited(oldest, now));
    }
    let id = crate::util::random_id("sms", 16);
    let msg = sms::NewMessage {
        id: &id,
        merchant_id,
        request_id,
        phone,
        body,
        provider,
    };
    sms::insert_queued(tx, &msg, now).await?;
    Ok(id)
}

/// The refusal when the budget is spent: retry once the oldest message of the last minute
/// leaves the window.
pub fn rate_limited(oldest: Option<i64>, now: i64) -> SendError {
    let wait_ms = oldest.map(|o| o + 60_000 - now).unwrap_or(60_000);
    SendError::RateLimited {
        retry_after_s: ((wait_ms + 999) / 1000).max(1),
    }
}

/// Why a message was not queued. The payment-request flow turns it into its own error (the
/// API answers 429 with `Retry-After` for the rate limit).
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("rate limited; retry after {retry_after_s} s")]
    RateLimited { retry_after_s: i64 },
    /// A live merchant, and no SMS gateway configured on this server.
    #[error("no SMS gateway is configured for live merchants")]
    NotConfigured,
    #[error(transparent)]
    Db(#[from] crate::db::Error),
}

/// Sends a queued message through the provider and records the outcome at `now` (`sent` with
/// the gateway's id, or `failed` with the reason). Returns the message as stored.
pub async fn deliver(
    db: &crate::db::Db,
    provider: &dyn SmsProvider,
    message_id: &str,
    phone: &str,
    text: &str,
    now: i64,
) -> Result<SmsRow, crate::db::Error> {
    let result = provider.send(phone, text).await;
    let (status, receipt, error) = match result {
        Ok(r) => (SmsStatus::Sent, r.id, None),
        Err(e) => {
            tracing::warn!(message = message_id, provider = provider.name(), error = %e, "SMS send failed");
            (SmsStatus::Failed, None, Some(e.to_string()))
        }
    };
    sms::set_outcome(
        db,
        message_id,
        status,
        receipt.as_deref(),
        error.as_deref(),
        now,
    )
    .await?;
    sms::get(db, message_id)
        .await?
        .ok_or(crate::db::Error::RowNotFound)
}

pub use crate::db::sms::{
    get as get_message, list as list_messages, of_request as messages_of_request, SmsRow,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_numbers() {
        for (input, want) in [
            ("09012345678", Some("09012345678")),
            ("090-1234-5678", Some("09012345678")),
            ("080 1234 5678", Some("08012345678")),
            ("+81 90-1234-5678", Some("09012345678")),
            ("+817012345678", Some("07012345678")),
            ("+81 090 1234 5678", None),
            ("0312345678", None),
            ("06012345678", None),
            ("0901234567", None),
            ("090123456789", None),
            ("090-1234-567a", None),
            ("０９０１２３４５６７８", None),
            ("", None),
        ] {
            assert_eq!(normalize_phone(input).as_deref(), want, "{input}");
        }
    }

    #[test]
    fn templates() {
        assert_eq!(check_template(DEFAULT_TEMPLATE), Ok(()));
        assert_eq!(check_template("pay {shop}"), Err(TemplateError::NeedsUrl));
        assert!(matches!(
            check_template("{url} {name}"),
            Err(TemplateError::UnknownPlaceholder(_))
        ));
    }

    #[test]
    fn shop_name_is_shortened_never_the_url() {
        let url = "https://pay.example.jp/s/abcdefghjk";
        let t = render_text(DEFAULT_TEMPLATE, "さくら", 1500, "x", url).unwrap();
        assert_eq!(t, format!("さくら: 1,500円のお支払いはこちら {url}"));
        let long = "とても長い名前のオンラインショップ本店さくら通り支店";
        let t = render_text(DEFAULT_TEMPLATE, long, 1500, "x", url).unwrap();
        assert_eq!(sms_units(&t), 70, "{t}");
        assert!(t.ends_with(url) && t.contains('…'));
        let long_url = format!("https://pay.example.jp/{}", "a".repeat(60));
        assert!(matches!(
            render_text(DEFAULT_TEMPLATE, "さくら", 1500, "x", &long_url),
            Err(TemplateError::TooLong(_))
        ));
    }
}
