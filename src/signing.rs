//! Order-link signing: the canonical string and HMAC-SHA256 with a constant-time check.
//!
//! Canonical string: every field except `signature` and `_charset_`, empty values dropped, sorted
//! by name (byte order), written `name=value` with the exact UTF-8 value, joined by LF. Values
//! may not contain control characters, so the LF separator is unambiguous. See
//! `docs/link-protocol.md`.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Fields that travel with a link but are never signed.
pub const UNSIGNED_FIELDS: [&str; 2] = ["signature", "_charset_"];

/// Builds the canonical string from the link's fields.
pub fn canonical<'a>(fields: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut kept: Vec<(&str, &str)> = fields
        .into_iter()
        .filter(|(k, v)| !v.is_empty() && !UNSIGNED_FIELDS.contains(k))
        .collect();
    kept.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut out = String::with_capacity(kept.iter().map(|(k, v)| k.len() + v.len() + 2).sum());
    for (i, (k, v)) in kept.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    out
}

/// Lowercase hex HMAC-SHA256 of `message` keyed by the secret's UTF-8 bytes.
pub fn sign(secret: &str, message: &str) -> String {
    hex::encode(
        mac(secret.as_bytes(), message.as_bytes())
            .finalize()
            .into_bytes(),
    )
}

/// Checks a hex signature in constant time (hmac's `verify_slice`). Uppercase hex is accepted.
pub fn verify(secret: &str, message: &str, signature_hex: &str) -> bool {
    let Ok(given) = hex::decode(signature_hex) else {
        return false;
    };
    mac(secret.as_bytes(), message.as_bytes())
        .verify_slice(&given)
        .is_ok()
}

/// Raw HMAC-SHA256 over `message` with a binary key; used for server-side tokens.
pub fn hmac_bytes(key: &[u8], message: &[u8]) -> [u8; 32] {
    mac(key, message).finalize().into_bytes().into()
}

fn mac(key: &[u8], message: &[u8]) -> HmacSha256 {
    let mut m = keyed(key);
    m.update(message);
    m
}

/// Keys whose HMAC state (the hashed inner and outer pads) each thread keeps: the server secret
/// and the few merchant keys a worker thread meets. Keying costs two SHA-256 compressions of the
/// four or so a short token needs, on every link, session and CSRF check (bench/README.md).
const KEYED_CACHE: usize = 16;

thread_local! {
    static KEYED: std::cell::RefCell<Vec<(Vec<u8>, HmacSha256)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// A MAC keyed with `key`, cloned from this thread's cache when it holds the key. The key
/// comparison is not constant time: keys come from our configuration and database, never from
/// the request.
fn keyed(key: &[u8]) -> HmacSha256 {
    KEYED.with_borrow_mut(|cache| {
        if let Some((_, m)) = cache.iter().find(|(k, _)| k == key) {
            return m.clone();
        }
        let m = HmacSha256::new_from_slice(key).expect("HMAC accepts any key length");
        if cache.len() == KEYED_CACHE {
            cache.remove(0);
        }
        cache.push((key.to_vec(), m.clone()));
        m
    })
}

/// Builds a signed query string (`a=1&b=2&signature=...`) from link fields: what a merchant's
/// cart does. The server uses it for the demo link and the API; tests use it too.
pub fn signed_query(secret: &str, fields: &[(&str, &str)]) -> String {
    let sig = sign(secret, &canonical(fields.iter().copied()));
    let mut ser = form_urlencoded::Serializer::new(String::new());
    for (k, v) in fields {
        if !v.is_empty() {
            ser.append_pair(k, v);
        }
    }
    ser.append_pair("signature", &sig);
    ser.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_keys_give_the_same_mac_as_fresh_ones() {
        // More keys than the cache holds, twice over, so entries are evicted and re-made.
        for round in 0..2 {
            for i in 0..(KEYED_CACHE + 3) {
                let key = format!("key-{i}");
                let fresh = {
                    let mut m = HmacSha256::new_from_slice(key.as_bytes()).unwrap();
                    m.update(b"message");
                    m.finalize().into_bytes()
                };
                assert_eq!(
                    hmac_bytes(key.as_bytes(), b"message").as_slice(),
                    fresh.as_slice(),
                    "round {round}, key {i}"
                );
            }
        }
    }

    #[test]
    fn canonical_sorts_drops_empty_and_unsigned() {
        let c = canonical([
            ("order_id", "A1"),
            ("amount", "1000"),
            ("signature", "zz"),
            ("shopper_name", ""),
            ("_charset_", "Shift_JIS"),
        ]);
        assert_eq!(c, "amount=1000\norder_id=A1");
    }

    #[test]
    fn sign_and_verify() {
        let s = sign("secret", "amount=1");
        assert_eq!(s.len(), 64);
        assert!(verify("secret", "amount=1", &s));
        assert!(verify("secret", "amount=1", &s.to_uppercase()));
        assert!(!verify("secret", "amount=2", &s));
        assert!(!verify("other", "amount=1", &s));
        assert!(!verify("secret", "amount=1", "not-hex"));
        assert!(!verify("secret", "amount=1", &s[..62]));
    }

    #[test]
    fn rfc4231_case_2() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            sign("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
