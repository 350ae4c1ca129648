//! Shopper checkout sessions that need no cookie: a short-lived token in the URL, bound to one
//! checkout and MACed with the server secret, plus a CSRF token derived from it.
//!
//! Feature-phone browsers often drop cookies (au over HTTPS, i-mode 1.0 has none), so the same
//! cookie-less mechanism serves every device. Nothing is stored: re-opening a link is read-only.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use crate::device::ViewOverride;
use crate::signing::hmac_bytes;

/// A verified session: which checkout, since when, until when, and the shopper's layout choice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    pub checkout_id: String,
    /// When the first token of this session was issued (unix seconds). Renewals (the layout
    /// switch) carry it over, so the absolute lifetime is counted from here.
    pub started_at: i64,
    pub expires_at: i64,
    pub view: ViewOverride,
}

fn mac(key: &[u8], purpose: &str, body: &str) -> String {
    let m = hmac_bytes(key, format!("{purpose}|{body}").as_bytes());
    URL_SAFE_NO_PAD.encode(&m[..18])
}

impl Session {
    /// `{checkout_id}.{started_at}.{expires_at}.{view}.{mac}`; checkout ids never contain dots.
    pub fn token(&self, key: &[u8]) -> String {
        let body = format!(
            "{}.{}.{}.{}",
            self.checkout_id,
            self.started_at,
            self.expires_at,
            self.view.code()
        );
        let m = mac(key, "session", &body);
        format!("{body}.{m}")
    }

    /// Parses and authenticates a token; `None` if forged, malformed, expired, or older than
    /// `max_age_s` since the session started (whatever renewals happened in between).
    pub fn verify(token: &str, key: &[u8], now_s: i64, max_age_s: i64) -> Option<Session> {
        let (body, given) = token.rsplit_once('.')?;
        let expected = mac(key, "session", body);
        let ok: bool = given.len() == expected.len()
            && hmac_bytes(key, given.as_bytes()) == hmac_bytes(key, expected.as_bytes());
        if !ok {
            return None;
        }
        let mut parts = body.split('.');
        let checkout_id = parts.next()?.to_owned();
        let started_at: i64 = parts.next()?.parse().ok()?;
        let expires_at: i64 = parts.next()?.parse().ok()?;
        let view = ViewOverride::parse(parts.next()?)?;
        if parts.next().is_some()
            || expires_at <= now_s
            || started_at.saturating_add(max_age_s) <= now_s
        {
            return None;
        }
        Some(Session {
            checkout_id,
            started_at,
            expires_at,
            view,
        })
    }

    /// The CSRF token every form of this session carries. It only proves the form came from a
    /// page we served for this session, which works without cookies.
    pub fn csrf(token: &str, key: &[u8]) -> String {
        mac(key, "csrf", token)
    }

    pub fn csrf_ok(token: &str, key: &[u8], given: &str) -> bool {
        let expected = Self::csrf(token, key);
        // Compare MACs of both values so timing reveals nothing about the expected token.
        hmac_bytes(key, given.as_bytes()) == hmac_bytes(key, expected.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_tamper() {
        let key = b"k";
        let s = Session {
            checkout_id: "co_abc".into(),
            started_at: 500,
            expires_at: 2000,
            view: ViewOverride::Smartphone,
        };
        let t = s.token(key);
        assert_eq!(Session::verify(&t, key, 1000, 7200), Some(s.clone()));
        assert_eq!(Session::verify(&t, key, 2000, 7200), None, "expired");
        assert_eq!(
            Session::verify(&t, key, 1000, 500),
            None,
            "past the absolute lifetime"
        );
        assert_eq!(Session::verify(&t, b"other", 1000, 7200), None);
        let forged = t.replace("co_abc", "co_abd");
        assert_eq!(Session::verify(&forged, key, 1000, 7200), None);
        let older = t.replacen(".500.", ".900.", 1);
        assert_eq!(
            Session::verify(&older, key, 1000, 7200),
            None,
            "start is MACed"
        );
        let csrf = Session::csrf(&t, key);
        assert!(Session::csrf_ok(&t, key, &csrf));
        assert!(!Session::csrf_ok(&t, key, "x"));
    }
}
