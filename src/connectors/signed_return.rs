//! Signed returns: redirect methods (bank net, carrier billing) get their result back through
//! the shopper's browser, so every returned field is HMAC-signed by whoever produced it and
//! verified before a status changes. Shared by the bank and carrier connectors.

use std::collections::BTreeMap;

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use thiserror::Error;

type HmacSha256 = Hmac<Sha256>;

/// The error code every sandbox connector answers a live payment with.
pub const SANDBOX_REFUSES_LIVE: &str = "sandbox_refuses_live";

/// Query field holding the signature; it is never part of the signed string.
pub const SIG_FIELD: &str = "sig";
/// Query field holding the signing time (unix ms), so old return URLs stop working.
pub const TS_FIELD: &str = "ts";
/// A signed return older than this is refused (bookmarked or leaked URLs).
pub const RETURN_MAX_AGE_MS: i64 = 30 * 60 * 1000;
/// Tolerated clock difference between server instances for `ts` in the future.
pub const RETURN_CLOCK_SKEW_MS: i64 = 60 * 1000;

/// Escape the separators so that the canonical string is injective: without
/// this, a value containing "\nk=v" could pose as an extra field.
fn canon_escape(s: &str, out: &mut String) {
    for ch in s.chars() {
        match ch {
            '%' => out.push_str("%25"),
            '\n' => out.push_str("%0A"),
            '=' => out.push_str("%3D"),
            c => out.push(c),
        }
    }
}

/// Canonical string that is signed: `key=value\n` per field, sorted by key (then
/// value), with `%`, `\n` and `=` percent-escaped inside keys and values.
pub fn canonical_string(fields: &[(&str, &str)]) -> String {
    let mut sorted: Vec<(&str, &str)> = fields.to_vec();
    sorted.sort_unstable();
    let mut out = String::new();
    for (k, v) in sorted {
        canon_escape(k, &mut out);
        out.push('=');
        canon_escape(v, &mut out);
        out.push('\n');
    }
    out
}

fn mac_for(secret: &[u8], fields: &[(&str, &str)]) -> HmacSha256 {
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC accepts any key length");
    mac.update(canonical_string(fields).as_bytes());
    mac
}

/// HMAC-SHA256 (lower-case hex) over [`canonical_string`] of `fields`.
pub fn sign_return(secret: &[u8], fields: &[(&str, &str)]) -> String {
    hex::encode(mac_for(secret, fields).finalize().into_bytes())
}

/// Constant-time check of `sig` (hex) against `fields`; false for malformed hex
/// or a truncated signature.
pub fn verify_return(secret: &[u8], fields: &[(&str, &str)], sig: &str) -> bool {
    match hex::decode(sig) {
        Ok(bytes) => mac_for(secret, fields).verify_slice(&bytes).is_ok(),
        Err(_) => false,
    }
}

/// Percent-encode for a URL query component (RFC 3986 unreserved characters pass).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Signed, URL-encoded query string: the fields, then `sig=`.
pub fn signed_query(secret: &[u8], fields: &[(&str, &str)]) -> String {
    let sig = sign_return(secret, fields);
    let mut parts: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
        .collect();
    parts.push(format!("{SIG_FIELD}={sig}"));
    parts.join("&")
}

/// Append a query string to `url`, keeping any existing query and fragment intact.
pub fn append_query(url: &str, query: &str) -> String {
    let (base, fragment) = match url.split_once('#') {
        Some((b, f)) => (b, Some(f)),
        None => (url, None),
    };
    let sep = if base.contains('?') { '&' } else { '?' };
    match fragment {
        Some(f) => format!("{base}{sep}{query}#{f}"),
        None => format!("{base}{sep}{query}"),
    }
}

/// Why a browser-carried return was refused. `code()` is stable.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ReturnError {
    #[error("signature missing")]
    MissingSignature,
    #[error("field {0} appears more than once")]
    DuplicateField(String),
    #[error("signature does not match")]
    BadSignature,
    #[error("field {0} is missing")]
    MissingField(&'static str),
    #[error("field {0} is invalid")]
    InvalidField(&'static str),
    #[error("return link has expired")]
    Expired,
}

impl ReturnError {
    pub fn code(&self) -> &'static str {
        match self {
            ReturnError::MissingSignature => "return_signature_missing",
            ReturnError::DuplicateField(_) => "return_duplicate_field",
            ReturnError::BadSignature => "return_bad_signature",
            ReturnError::MissingField(_) => "return_missing_field",
            ReturnError::InvalidField(_) => "return_invalid_field",
            ReturnError::Expired => "return_expired",
        }
    }
}

/// Verify decoded query parameters (as the web framework hands them over) that
/// were produced by [`signed_query`]: no duplicate keys (a second copy could
/// otherwise be read instead of the signed one), a valid `sig`, and a `ts` no
/// older than `max_age_ms`. Every parameter except `sig` must be covered by the
/// signature (an unsigned extra such as a forged `sub` must not be readable), so
/// return URLs carry no query string of their own. Returns the signed fields without `sig`.
pub fn verify_signed_params(
    secret: &[u8],
    params: &[(String, String)],
    now_ms: i64,
    max_age_ms: i64,
) -> Result<BTreeMap<String, String>, ReturnError> {
    let mut fields = BTreeMap::new();
    let mut sig = None;
    for (k, v) in params {
        if k == SIG_FIELD {
            if sig.replace(v.as_str()).is_some() {
                return Err(ReturnError::DuplicateField(k.clone()));
            }
        } else if fields.insert(k.clone(), v.clone()).is_some() {
            return Err(ReturnError::DuplicateField(k.clone()));
        }
    }
    let sig = sig.ok_or(ReturnError::MissingSignature)?;
    let pairs: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    if !verify_return(secret, &pairs, sig) {
        return Err(ReturnError::BadSignature);
    }
    // Only look at the content once the signature is known to be ours.
    let ts: i64 = fields
        .get(TS_FIELD)
        .ok_or(ReturnError::MissingField(TS_FIELD))?
        .parse()
        .map_err(|_| ReturnError::InvalidField(TS_FIELD))?;
    if ts > now_ms.saturating_add(RETURN_CLOCK_SKEW_MS) {
        return Err(ReturnError::InvalidField(TS_FIELD));
    }
    if now_ms.saturating_sub(ts) > max_age_ms {
        return Err(ReturnError::Expired);
    }
    Ok(fields)
}

/// Read a required field from verified params.
pub fn required<'a>(
    fields: &'a BTreeMap<String, String>,
    key: &'static str,
) -> Result<&'a str, ReturnError> {
    fields
        .get(key)
        .map(String::as_str)
        .ok_or(ReturnError::MissingField(key))
}

/// Random 128-bit id as hex: unguessable session ids for sandbox redirect URLs.
pub fn random_session_id() -> String {
    let mut b = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut b);
    hex::encode(b)
}

/// Deterministic reference derived from a session, so a stateless sandbox can
/// hand out stable transaction ids (`{prefix}{24 hex}`).
pub fn derived_ref(secret: &[u8], prefix: &str, session_id: &str) -> String {
    let full = sign_return(secret, &[("ref", prefix), ("session", session_id)]);
    format!("{prefix}{}", &full[..24])
}

// ---------------------------------------------------------------------------
// Connector trait
// ---------------------------------------------------------------------------
