//! Webhook signing: Standard Webhooks (`webhook-id/-timestamp/-signature`) plus a
//! form-encoded "compatibility mode" hash for carts built for Japanese payment gateways.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// Prefix used by Standard Webhooks libraries; they strip it before base64-decoding.
pub const SECRET_PREFIX: &str = crate::secrets::WEBHOOK_SECRET_PREFIX;
/// Standard Webhooks requires 24..=64 bytes of key material.
pub const SECRET_MIN_BYTES: usize = 24;
pub const SECRET_MAX_BYTES: usize = 64;

/// Header names (lowercase, as in the Standard Webhooks spec).
pub const HEADER_ID: &str = "webhook-id";
pub const HEADER_TIMESTAMP: &str = "webhook-timestamp";
pub const HEADER_SIGNATURE: &str = "webhook-signature";

/// Name of the hash field appended to compatibility-mode form bodies.
pub const COMPAT_HASH_FIELD: &str = "hash";

/// Documented field order for compatibility-mode bodies (docs/notifications.md).
/// `compat_form` hashes values in the order it is given; callers should pass the
/// fields in exactly this order so merchants can reproduce the hash.
pub const COMPAT_FIELD_ORDER: &[&str] = &[
    "event_id",
    "event_type",
    "merchant_id",
    "order_id",
    "payment_id",
    "method",
    "amount",
    "status",
    "created_at",
];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignError {
    #[error("secret is not valid base64")]
    InvalidBase64,
    #[error("secret must decode to {SECRET_MIN_BYTES}..={SECRET_MAX_BYTES} bytes, got {0}")]
    BadLength(usize),
}

pub use crate::secrets::new_webhook_secret as new_secret;

/// Check a secret before storing it, so `sign` never meets an undecodable one.
pub fn validate_secret(secret: &str) -> Result<(), SignError> {
    decode_secret(secret).map(|_| ())
}

/// Decode `whsec_<base64>` into key bytes. The prefix is optional, mirroring the
/// reference libraries, so secrets imported without it still work.
fn decode_secret(secret: &str) -> Result<Vec<u8>, SignError> {
    let b64 = secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret);
    let key = B64.decode(b64).map_err(|_| SignError::InvalidBase64)?;
    if !(SECRET_MIN_BYTES..=SECRET_MAX_BYTES).contains(&key.len()) {
        return Err(SignError::BadLength(key.len()));
    }
    Ok(key)
}

/// HMAC-SHA256 over `"{id}.{timestamp}.{body}"` — the Standard Webhooks signed content.
fn mac_for(key: &[u8], msg_id: &str, timestamp_s: i64, body: &[u8]) -> HmacSha256 {
    // new_from_slice only fails for fixed-size-key MACs; HMAC accepts any length.
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp_s.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// Like [`sign`] but fails on the first undecodable secret.
pub fn try_sign(
    secrets: &[&str],
    msg_id: &str,
    timestamp_s: i64,
    body: &[u8],
) -> Result<String, SignError> {
    let mut parts = Vec::with_capacity(secrets.len());
    for s in secrets {
        let key = decode_secret(s)?;
        let tag = mac_for(&key, msg_id, timestamp_s, body)
            .finalize()
            .into_bytes();
        parts.push(format!("v1,{}", B64.encode(tag)));
    }
    Ok(parts.join(" "))
}

/// `webhook-signature` header value: one `v1,<base64>` per secret, space-separated.
/// During rotation pass `[new, old]` so receivers holding either secret verify.
/// Secrets that fail to decode are skipped (store secrets via [`validate_secret`]);
/// we prefer a missing signature, which receivers reject, over a panic in the sender.
pub fn sign(secrets: &[&str], msg_id: &str, timestamp_s: i64, body: &[u8]) -> String {
    secrets
        .iter()
        .filter_map(|s| try_sign(&[s], msg_id, timestamp_s, body).ok())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Reference verifier (what receivers should do): timestamp within `tolerance_s`
/// of `now_s` (replay defence) and any `v1` signature matching, compared in
/// constant time via `Mac::verify_slice`.
pub fn verify(
    secret: &str,
    msg_id: &str,
    timestamp_s: i64,
    body: &[u8],
    header: &str,
    now_s: i64,
    tolerance_s: i64,
) -> bool {
    if now_s.abs_diff(timestamp_s) > tolerance_s.unsigned_abs() {
        return false;
    }
    let Ok(key) = decode_secret(secret) else {
        return false;
    };
    let mac = mac_for(&key, msg_id, timestamp_s, body);
    header
        .split(' ')
        .filter_map(|part| part.split_once(','))
        .filter(|(version, _)| *version == "v1")
        .filter_map(|(_, sig)| B64.decode(sig).ok())
        // Evaluate every candidate (no short-circuit) so timing does not reveal
        // which of several signatures matched.
        .fold(false, |ok, sig| mac.clone().verify_slice(&sig).is_ok() | ok)
}

/// Lowercase hex SHA-256 of the field values concatenated in the given order,
/// followed by the secret: `sha256(value1 + value2 + … + secret)`.
pub fn compat_hash(fields: &[(&str, String)], secret: &str) -> String {
    let mut h = Sha256::new();
    for (name, value) in fields {
        if *name != COMPAT_HASH_FIELD {
            h.update(value.as_bytes());
        }
    }
    h.update(secret.as_bytes());
    hex::encode(h.finalize())
}

/// Compatibility-mode body: the fields (UTF-8, `application/x-www-form-urlencoded`)
/// plus a trailing `hash` field. The documented hash order is the order of `fields`.
/// A caller-supplied `hash` field is dropped because the name is reserved.
pub fn compat_form(fields: &[(&str, String)], secret: &str) -> String {
    let hash = compat_hash(fields, secret);
    let mut ser = form_urlencoded::Serializer::new(String::new());
    for (name, value) in fields {
        if *name != COMPAT_HASH_FIELD {
            ser.append_pair(name, value);
        }
    }
    ser.append_pair(COMPAT_HASH_FIELD, &hash);
    ser.finish()
}

/// A compat-mode receiver acknowledges with a plain-text body that, trimmed, is
/// exactly `result=0` or `OK` (case-sensitive, as documented). Anything else —
/// including a bare 200 with an HTML page — is not an ack, so we retry.
pub fn compat_ack_ok(body: &str) -> bool {
    matches!(body.trim(), "result=0" | "OK")
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TS: i64 = 1614265330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;

    #[test]
    fn known_standard_webhooks_vector() {
        // The example published with the Standard Webhooks spec.
        assert_eq!(
            sign(&[SECRET], ID, TS, BODY),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn new_secret_roundtrips() {
        let s = new_secret();
        assert!(s.starts_with(SECRET_PREFIX));
        assert_eq!(decode_secret(&s).unwrap().len(), 32);
        assert_ne!(new_secret(), s);
    }

    #[test]
    fn decode_secret_rejects_bad_input() {
        assert_eq!(decode_secret("whsec_!!!"), Err(SignError::InvalidBase64));
        let short = format!("whsec_{}", B64.encode([1u8; 16]));
        assert_eq!(decode_secret(&short), Err(SignError::BadLength(16)));
        let long = format!("whsec_{}", B64.encode([1u8; 65]));
        assert_eq!(decode_secret(&long), Err(SignError::BadLength(65)));
        // Prefix optional, like the reference libraries.
        assert!(decode_secret(SECRET.trim_start_matches(SECRET_PREFIX)).is_ok());
    }

    #[test]
    fn sign_skips_bad_secret_and_try_sign_reports_it() {
        assert_eq!(
            sign(&["whsec_!!", SECRET], ID, TS, BODY),
            sign(&[SECRET], ID, TS, BODY)
        );
        assert!(try_sign(&["whsec_!!"], ID, TS, BODY).is_err());
    }

    #[test]
    fn verify_accepts_rotation_and_rejects_tampering() {
        let other = new_secret();
        let header = sign(&[&other, SECRET], ID, TS, BODY);
        assert_eq!(header.split(' ').count(), 2);
        assert!(verify(SECRET, ID, TS, BODY, &header, TS + 10, 300));
        assert!(verify(&other, ID, TS, BODY, &header, TS - 10, 300));
        assert!(!verify(SECRET, ID, TS, b"{}", &header, TS, 300));
        assert!(!verify(SECRET, "msg_other", TS, BODY, &header, TS, 300));
        assert!(!verify(SECRET, ID, TS + 1, BODY, &header, TS, 300));
        // Replay window.
        assert!(!verify(SECRET, ID, TS, BODY, &header, TS + 301, 300));
        assert!(!verify(SECRET, ID, TS, BODY, &header, TS - 301, 300));
        // Unknown versions and garbage are ignored.
        let sig = header.split(' ').nth(1).unwrap().replace("v1,", "v2,");
        assert!(!verify(SECRET, ID, TS, BODY, &sig, TS, 300));
        assert!(!verify(SECRET, ID, TS, BODY, "v1,@@@ nonsense", TS, 300));
        assert!(!verify(SECRET, ID, TS, BODY, "", TS, 300));
    }

    #[test]
    fn compat_form_appends_hash_of_values_then_secret() {
        let fields = vec![
            ("order_id", "A-1".to_string()),
            ("amount", "1200".to_string()),
            ("status", "支払済".to_string()),
        ];
        let body = compat_form(&fields, "key");
        let expected = hex::encode(Sha256::digest("A-11200支払済key".as_bytes()));
        let pairs: Vec<(String, String)> = form_urlencoded::parse(body.as_bytes())
            .into_owned()
            .collect();
        assert_eq!(pairs.len(), 4);
        assert_eq!(pairs[2], ("status".into(), "支払済".into()));
        assert_eq!(pairs[3], ("hash".into(), expected));
        assert!(body.starts_with("order_id=A-1&amount=1200&status=%E6%94%AF"));
    }

    #[test]
    fn compat_form_ignores_caller_hash_field() {
        let a = compat_form(&[("a", "1".into())], "k");
        let b = compat_form(&[("a", "1".into()), ("hash", "x".into())], "k");
        assert_eq!(a, b);
    }

    #[test]
    fn compat_ack() {
        for ok in ["result=0", "OK", " OK\r\n", "result=0\n"] {
            assert!(compat_ack_ok(ok), "{ok:?}");
        }
        for bad in ["ok", "result=1", "", "OK OK", "<html>OK</html>", "Result=0"] {
            assert!(!compat_ack_ok(bad), "{bad:?}");
        }
    }

    /// Published vectors (generated independently, see docs/notifications.md):
    /// our implementation must reproduce them byte for byte.
    #[test]
    fn published_test_vectors() {
        let doc: serde_json::Value = serde_json::from_str(include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/docs/webhook-test-vectors.json"
        )))
        .unwrap();
        let standard = doc["standard"].as_array().unwrap();
        assert!(standard.len() >= 3);
        for v in standard {
            let secrets: Vec<&str> = v["secrets"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap())
                .collect();
            let (id, ts) = (
                v["msg_id"].as_str().unwrap(),
                v["timestamp"].as_i64().unwrap(),
            );
            let body = v["body"].as_str().unwrap().as_bytes();
            let want = v["webhook-signature"].as_str().unwrap();
            assert_eq!(sign(&secrets, id, ts, body), want, "{}", v["name"]);
            for s in &secrets {
                assert!(verify(s, id, ts, body, want, ts, 300), "{}", v["name"]);
            }
        }
        let compat = doc["compat"].as_array().unwrap();
        assert!(!compat.is_empty());
        for v in compat {
            let fields: Vec<(&str, String)> = v["fields"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| (f[0].as_str().unwrap(), f[1].as_str().unwrap().to_string()))
                .collect();
            let names: Vec<&str> = fields.iter().map(|f| f.0).collect();
            assert_eq!(
                names, COMPAT_FIELD_ORDER,
                "vectors follow the documented order"
            );
            let secret = v["secret"].as_str().unwrap();
            assert_eq!(compat_hash(&fields, secret), v["hash"].as_str().unwrap());
            assert_eq!(compat_form(&fields, secret), v["body"].as_str().unwrap());
        }
    }

    /// Cross-check against the reference `standardwebhooks` crate.
    #[test]
    fn reference_library_verifies_our_signatures() {
        use axum::http::{HeaderMap, HeaderValue};
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let body =
            r#"{"type":"konbini.paid","data":{"status_label_ja":"消込済（速報）"}}"#.as_bytes();
        let new = new_secret();
        let headers_for = |sig: String| {
            let mut h = HeaderMap::new();
            h.insert(HEADER_ID, HeaderValue::from_static("evt_ref_1"));
            h.insert(
                HEADER_TIMESTAMP,
                HeaderValue::from_str(&now.to_string()).unwrap(),
            );
            h.insert(HEADER_SIGNATURE, HeaderValue::from_str(&sig).unwrap());
            h
        };
        // Single secret.
        let h = headers_for(sign(&[SECRET], "evt_ref_1", now, body));
        standardwebhooks::Webhook::new(SECRET)
            .unwrap()
            .verify(body, &h)
            .unwrap();
        // Rotation: both the new and the old secret verify the same header.
        let h = headers_for(sign(&[&new, SECRET], "evt_ref_1", now, body));
        standardwebhooks::Webhook::new(SECRET)
            .unwrap()
            .verify(body, &h)
            .unwrap();
        standardwebhooks::Webhook::new(&new)
            .unwrap()
            .verify(body, &h)
            .unwrap();
        // And a secret we did not sign with does not.
        let stranger = new_secret();
        assert!(standardwebhooks::Webhook::new(&stranger)
            .unwrap()
            .verify(body, &h)
            .is_err());
        // Its signer and ours agree.
        let theirs = standardwebhooks::Webhook::new(SECRET)
            .unwrap()
            .sign("evt_ref_1", now, body)
            .unwrap();
        assert_eq!(theirs, sign(&[SECRET], "evt_ref_1", now, body));
    }
}
