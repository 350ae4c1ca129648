//! The signed order link: its fields parsed into typed values, and the checks that need no DB.

use std::collections::HashMap;

use crate::domain::method::{Method, MAX_LINK_AMOUNT};
use crate::domain::reason::Reason;

/// Every field the link protocol knows. Anything else is refused as `unknown_field`.
pub const FIELDS: [&str; 18] = [
    "merchant_id",
    "key_id",
    "order_id",
    "amount",
    "item_name",
    "shopper_name",
    "shopper_kana",
    "shopper_email",
    "shopper_phone",
    "methods",
    "return_url",
    "cancel_url",
    "expires_at",
    "konbini_days",
    "lang",
    "customer_id",
    "signature",
    "_charset_",
];
const REQUIRED: [&str; 8] = [
    "merchant_id",
    "key_id",
    "order_id",
    "amount",
    "item_name",
    "return_url",
    "expires_at",
    "signature",
];
/// Longest a link may live: a signed link is a bearer credential for the order.
pub const MAX_LINK_LIFETIME_S: i64 = 30 * 24 * 3600;

/// The raw fields of a link, checked for shape (known names, no duplicates, required present,
/// no control characters) but not yet authenticated.
#[derive(Debug)]
pub struct RawLink {
    pub fields: Vec<(String, String)>,
    map: HashMap<String, usize>,
}

/// A link rejection: the reason code and the field it concerns, if any.
pub type LinkError = (Reason, Option<&'static str>);

impl RawLink {
    pub fn parse(fields: Vec<(String, String)>) -> Result<RawLink, LinkError> {
        let mut map = HashMap::with_capacity(fields.len());
        for (i, (k, v)) in fields.iter().enumerate() {
            let Some(known) = FIELDS.iter().find(|f| **f == k.as_str()) else {
                return Err((Reason::UnknownField, None));
            };
            if map.insert(k.clone(), i).is_some() || v.chars().any(char::is_control) {
                return Err((Reason::InvalidField, Some(*known)));
            }
        }
        let link = RawLink { fields, map };
        for f in REQUIRED {
            if link.get(f).is_empty() {
                return Err((Reason::MissingField, Some(f)));
            }
        }
        Ok(link)
    }

    /// The field's value, or "" when absent.
    pub fn get(&self, name: &str) -> &str {
        self.map
            .get(name)
            .map(|&i| self.fields[i].1.as_str())
            .unwrap_or("")
    }

    fn opt(&self, name: &str) -> Option<String> {
        Some(self.get(name))
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    }

    /// The canonical string the signature covers.
    pub fn canonical(&self) -> String {
        crate::signing::canonical(self.fields.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }
}

/// A verified order, with every value parsed.
#[derive(Clone, Debug)]
pub struct OrderLink {
    pub merchant_id: String,
    pub key_id: String,
    pub order_id: String,
    pub amount: i64,
    pub item_name: String,
    pub shopper_name: Option<String>,
    pub shopper_kana: Option<String>,
    pub shopper_email: Option<String>,
    pub shopper_phone: Option<String>,
    /// `None` when the link leaves the choice to the merchant's settings.
    pub methods: Option<Vec<Method>>,
    pub return_url: String,
    pub cancel_url: Option<String>,
    pub expires_at: i64,
    pub konbini_days: Option<i64>,
    pub lang: String,
    /// The merchant's own id of the shopper (会員ID), signed with the link: the key under which
    /// cards are saved with the shopper's consent and offered again.
    pub customer_id: Option<String>,
}

impl OrderLink {
    /// Parses the values of an authenticated link; `now_s` is unix seconds.
    pub fn from_raw(raw: &RawLink, now_s: i64) -> Result<OrderLink, LinkError> {
        let order_id = raw.get("order_id");
        if order_id.len() > 50
            || !order_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err((Reason::InvalidField, Some("order_id")));
        }
        let amount =
            parse_amount(raw.get("amount")).ok_or((Reason::InvalidAmount, Some("amount")))?;
        let item_name = raw.get("item_name");
        if item_name.chars().count() > 100 {
            return Err((Reason::InvalidField, Some("item_name")));
        }
        let expires_at: i64 = parse_digits(raw.get("expires_at"))
            .ok_or((Reason::InvalidField, Some("expires_at")))?;
        if expires_at <= now_s {
            return Err((Reason::LinkExpired, None));
        }
        if expires_at > now_s + MAX_LINK_LIFETIME_S {
            return Err((Reason::ExpiryTooFar, None));
        }
        let methods = match raw.opt("methods") {
            None => None,
            Some(s) => Some(Method::parse_list(&s).ok_or((Reason::InvalidField, Some("methods")))?),
        };
        let konbini_days = match raw.opt("konbini_days") {
            None => None,
            Some(s) => Some(
                parse_digits(&s)
                    .filter(|d| *d <= 60)
                    .ok_or((Reason::InvalidField, Some("konbini_days")))?,
            ),
        };
        let lang = match raw.get("lang") {
            "" | "ja" => "ja",
            "en" => "en",
            _ => return Err((Reason::InvalidField, Some("lang"))),
        };
        let limited = |name: &'static str, max: usize| -> Result<Option<String>, LinkError> {
            match raw.opt(name) {
                Some(v) if v.chars().count() > max => Err((Reason::InvalidField, Some(name))),
                v => Ok(v),
            }
        };
        let shopper_phone = limited("shopper_phone", 13)?;
        if let Some(p) = &shopper_phone {
            let digits = p.chars().filter(char::is_ascii_digit).count();
            if !p.chars().all(|c| c.is_ascii_digit() || c == '-') || !(10..=11).contains(&digits) {
                return Err((Reason::InvalidField, Some("shopper_phone")));
            }
        }
        let shopper_email = limited("shopper_email", 254)?;
        if let Some(e) = &shopper_email {
            if !e.contains('@') || e.contains(char::is_whitespace) {
                return Err((Reason::InvalidField, Some("shopper_email")));
            }
        }
        let customer_id = raw.opt("customer_id");
        if let Some(c) = &customer_id {
            if c.len() > 64
                || !c
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            {
                return Err((Reason::InvalidField, Some("customer_id")));
            }
        }
        Ok(OrderLink {
            merchant_id: raw.get("merchant_id").to_owned(),
            key_id: raw.get("key_id").to_owned(),
            order_id: order_id.to_owned(),
            amount,
            item_name: item_name.to_owned(),
            shopper_name: limited("shopper_name", 50)?,
            shopper_kana: limited("shopper_kana", 50)?,
            shopper_email,
            shopper_phone,
            methods,
            return_url: raw.get("return_url").to_owned(),
            cancel_url: raw.opt("cancel_url"),
            expires_at,
            konbini_days,
            lang: lang.to_owned(),
            customer_id,
        })
    }

    /// Hash of what makes an order "the same order": re-signing it with a new expiry or key
    /// resumes the checkout, while any change to these values is an `order_conflict`.
    pub fn content_hash(&self) -> String {
        use sha2::{Digest, Sha256};
        let methods = self
            .methods
            .as_deref()
            .map(Method::join)
            .unwrap_or_default();
        let days = self.konbini_days.map(|d| d.to_string()).unwrap_or_default();
        let parts = [
            self.amount.to_string().as_str(),
            &self.item_name,
            &methods,
            &self.return_url,
            self.cancel_url.as_deref().unwrap_or(""),
            &days,
        ]
        .join("\n");
        hex::encode(Sha256::digest(parts.as_bytes()))
    }
}

/// Integer yen: digits only, no sign, no leading zero, 1..=MAX_LINK_AMOUNT.
pub fn parse_amount(s: &str) -> Option<i64> {
    if s.starts_with('0') {
        return None;
    }
    parse_digits(s).filter(|a| (1..=MAX_LINK_AMOUNT).contains(a))
}

fn parse_digits(s: &str) -> Option<i64> {
    if s.is_empty() || s.len() > 12 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Checks that `url` is an absolute http(s) URL whose origin is registered for the merchant.
/// Refuses scheme-relative (`//evil`), `javascript:`, backslash and userinfo tricks.
pub fn url_allowed(url: &str, origins: &[String]) -> bool {
    if url.contains('\\') || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    let lower = url.to_ascii_lowercase();
    if !(lower.starts_with("https://") || lower.starts_with("http://")) {
        return false;
    }
    let Ok(parsed) = url::Url::parse(url) else {
        return false;
    };
    if !parsed.username().is_empty() || parsed.password().is_some() || parsed.host().is_none() {
        return false;
    }
    let origin = parsed.origin().ascii_serialization();
    // Registered origins are stored normalized (console, API, CLI), so equal text settles it
    // without parsing each one again on every open; the parse stays for any that is not.
    origins
        .iter()
        .any(|o| *o == origin || normalize_origin(o).as_deref() == Some(origin.as_str()))
}

/// Normalises a registered origin (`https://Shop.example:443/` -> `https://shop.example`).
pub fn normalize_origin(origin: &str) -> Option<String> {
    let parsed = url::Url::parse(origin).ok()?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
        return None;
    }
    Some(parsed.origin().ascii_serialization())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts() {
        assert_eq!(parse_amount("1"), Some(1));
        assert_eq!(parse_amount("9999999"), Some(9_999_999));
        for bad in [
            "",
            "0",
            "01",
            "-5",
            "+5",
            "1.0",
            "1e3",
            "10000000",
            "１０００",
            " 1",
        ] {
            assert_eq!(parse_amount(bad), None, "{bad}");
        }
    }

    #[test]
    fn customer_ids() {
        let link = |c: &str| {
            let mut f: Vec<(String, String)> = [
                ("merchant_id", "m_1"),
                ("key_id", "k_1"),
                ("order_id", "o-1"),
                ("amount", "100"),
                ("item_name", "x"),
                ("return_url", "https://shop.example/"),
                ("expires_at", "2000"),
                ("signature", "00"),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
            f.push(("customer_id".into(), c.into()));
            OrderLink::from_raw(&RawLink::parse(f).unwrap(), 1000)
        };
        assert_eq!(
            link("member-42_A").unwrap().customer_id.as_deref(),
            Some("member-42_A")
        );
        assert_eq!(link("").unwrap().customer_id, None);
        for bad in ["a@b.example", "a b", "会員1", &"x".repeat(65)] {
            assert_eq!(
                link(bad).unwrap_err(),
                (Reason::InvalidField, Some("customer_id")),
                "{bad}"
            );
        }
    }

    #[test]
    fn return_urls() {
        let origins = vec![
            "https://shop.example".to_string(),
            "http://127.0.0.1:9000".into(),
        ];
        assert!(url_allowed("https://shop.example/done?x=1", &origins));
        assert!(url_allowed("https://SHOP.example:443/done", &origins));
        assert!(url_allowed("http://127.0.0.1:9000/r", &origins));
        // A registered origin stored as typed (not normalized) still matches.
        let typed = vec!["https://Shop.example:443/".to_string()];
        assert!(url_allowed("https://shop.example/done", &typed));
        assert!(!url_allowed("https://shop.example:8443/done", &typed));
        for bad in [
            "//evil.example/x",
            "javascript:alert(1)",
            "https://evil.example/",
            "https:\\\\evil.example",
            "https://shop.example\\@evil.example",
            "https://shop.example@evil.example/",
            "http://shop.example/",
            "https://shop.example.evil.example/",
            "/relative",
            "https://shop.example:8443/",
            "data:text/html,x",
            " https://shop.example/",
        ] {
            assert!(!url_allowed(bad, &origins), "{bad}");
        }
    }

    #[test]
    fn raw_link_shape() {
        let f = |pairs: &[(&str, &str)]| {
            RawLink::parse(
                pairs
                    .iter()
                    .map(|(a, b)| (a.to_string(), b.to_string()))
                    .collect(),
            )
        };
        let ok = [
            ("merchant_id", "m"),
            ("key_id", "k"),
            ("order_id", "o"),
            ("amount", "1"),
            ("item_name", "x"),
            ("return_url", "https://a"),
            ("expires_at", "1"),
            ("signature", "s"),
        ];
        assert!(f(&ok).is_ok());
        assert_eq!(
            f(&ok[1..]).unwrap_err(),
            (Reason::MissingField, Some("merchant_id"))
        );
        let mut extra = ok.to_vec();
        extra.push(("bogus", "1"));
        assert_eq!(f(&extra).unwrap_err().0, Reason::UnknownField);
        let mut dup = ok.to_vec();
        dup.push(("amount", "2"));
        assert_eq!(f(&dup).unwrap_err(), (Reason::InvalidField, Some("amount")));
        let mut ctl = ok.to_vec();
        ctl[4] = ("item_name", "a\nb");
        assert_eq!(
            f(&ctl).unwrap_err(),
            (Reason::InvalidField, Some("item_name"))
        );
    }
}
