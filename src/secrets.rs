//! Secrets sealed at rest: AES-256-GCM under a master key with a key id, so credentials that
//! must be read back (processor API keys, webhook secrets) never sit in the database in clear.
//!
//! A sealed value is `sealed:v1:<key id>:<base64url(nonce ‖ ciphertext ‖ tag)>`. The key id is
//! the first 8 hex digits of SHA-256 of the key, so rotation can tell which key sealed what.
//! The master key comes from `KAKEHASHI_MASTER_KEY` (32 bytes as 64 hex digits or base64) or the
//! file named by `KAKEHASHI_MASTER_KEY_FILE`; `KAKEHASHI_MASTER_KEY_PREVIOUS` lists older keys
//! (comma-separated) that are still accepted for opening while `keys rotate-master` re-seals.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

const PREFIX: &str = "sealed:v1:";
const NONCE_LEN: usize = 12;
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    #[error(
        "no master key is configured: set KAKEHASHI_MASTER_KEY (or KAKEHASHI_MASTER_KEY_FILE) \
         to 32 random bytes, e.g. from `kakehashi keys generate-master`"
    )]
    NoMasterKey,
    #[error("the master key must be 32 bytes, given as 64 hex digits or base64 ({0})")]
    BadKey(String),
    #[error("value was sealed with master key {0}, which is not configured")]
    UnknownKey(String),
    #[error("sealed value is malformed or was tampered with")]
    Corrupt,
}

/// One 256-bit master key and its id.
struct MasterKey {
    id: String,
    cipher: Aes256Gcm,
}

impl MasterKey {
    fn from_text(text: &str) -> Result<MasterKey, SealError> {
        let text = text.trim();
        let bytes = Zeroizing::new(
            if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
                hex::decode(text).map_err(|e| SealError::BadKey(e.to_string()))?
            } else {
                base64::engine::general_purpose::STANDARD
                    .decode(text)
                    .or_else(|_| B64.decode(text.trim_end_matches('=')))
                    .map_err(|_| SealError::BadKey("neither hex nor base64".into()))?
            },
        );
        if bytes.len() != 32 {
            return Err(SealError::BadKey(format!("{} bytes", bytes.len())));
        }
        let id = hex::encode(&Sha256::digest(&*bytes)[..4]);
        let cipher =
            Aes256Gcm::new_from_slice(&bytes).map_err(|_| SealError::BadKey("length".into()))?;
        Ok(MasterKey { id, cipher })
    }
}

/// The configured master keys: the current one seals; it and the previous ones open.
#[derive(Default)]
pub struct Keyring {
    current: Option<MasterKey>,
    previous: Vec<MasterKey>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("current", &self.current.as_ref().map(|k| &k.id))
            .field(
                "previous",
                &self.previous.iter().map(|k| &k.id).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Keyring {
    /// A keyring from the key texts (`current` may be absent: nothing can be sealed then).
    pub fn new(current: Option<&str>, previous: &[String]) -> Result<Keyring, SealError> {
        Ok(Keyring {
            current: current.map(MasterKey::from_text).transpose()?,
            previous: previous
                .iter()
                .filter(|p| !p.trim().is_empty())
                .map(|p| MasterKey::from_text(p))
                .collect::<Result<_, _>>()?,
        })
    }

    /// A keyring whose only key is derived from `secret` for one `purpose` (HMAC-SHA256), for
    /// short-lived data that instances must share when no master key is configured (the
    /// test-mode fallback of [`crate::flows::card_hold`]). Weaker than a master key: whoever
    /// reads `secret` can open what it seals, see docs/security.md.
    pub fn derived(secret: &[u8], purpose: &str) -> Keyring {
        use hmac::{Hmac, Mac};
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes any key size");
        mac.update(purpose.as_bytes());
        let bytes = Zeroizing::new(mac.finalize().into_bytes().to_vec());
        let id = format!("d{}", &hex::encode(&Sha256::digest(&*bytes)[..4])[1..]);
        let cipher = Aes256Gcm::new_from_slice(&bytes).expect("HMAC-SHA256 gives 32 bytes");
        Keyring {
            current: Some(MasterKey { id, cipher }),
            previous: Vec::new(),
        }
    }

    /// A fresh random master key, base64 encoded (`kakehashi keys generate-master`).
    pub fn generate() -> String {
        let mut k = Zeroizing::new([0u8; 32]);
        rand::thread_rng().fill_bytes(&mut *k);
        base64::engine::general_purpose::STANDARD.encode(*k)
    }

    pub fn has_current(&self) -> bool {
        self.current.is_some()
    }

    /// Id of the key new values are sealed with.
    pub fn current_id(&self) -> Option<&str> {
        self.current.as_ref().map(|k| k.id.as_str())
    }

    /// Seals `plain`. `context` (e.g. `processor_accounts:<id>:credentials`) is bound as
    /// associated data, so a sealed value copied into another row or column fails to open.
    pub fn seal(&self, plain: &str, context: &str) -> Result<String, SealError> {
        let key = self.current.as_ref().ok_or(SealError::NoMasterKey)?;
        let mut nonce = [0u8; NONCE_LEN];
        rand::thread_rng().fill_bytes(&mut nonce);
        let ct = key
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plain.as_bytes(),
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| SealError::Corrupt)?;
        let mut blob = Vec::with_capacity(NONCE_LEN + ct.len());
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&ct);
        Ok(format!("{PREFIX}{}:{}", key.id, B64.encode(blob)))
    }

    /// Opens a value sealed by [`Keyring::seal`] with the same `context`.
    pub fn open(&self, sealed: &str, context: &str) -> Result<Zeroizing<String>, SealError> {
        let (kid, blob) = sealed
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split_once(':'))
            .ok_or(SealError::Corrupt)?;
        let key = self
            .current
            .iter()
            .chain(self.previous.iter())
            .find(|k| k.id == kid)
            .ok_or_else(|| SealError::UnknownKey(kid.to_owned()))?;
        let blob = B64.decode(blob).map_err(|_| SealError::Corrupt)?;
        if blob.len() < NONCE_LEN + 16 {
            return Err(SealError::Corrupt);
        }
        let (nonce, ct) = blob.split_at(NONCE_LEN);
        let plain = key
            .cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| SealError::Corrupt)?;
        String::from_utf8(plain)
            .map(Zeroizing::new)
            .map_err(|_| SealError::Corrupt)
    }

    /// Seals `plain` when a master key is configured; without one (a test-mode installation)
    /// keeps it in clear, to be sealed by `keys rotate-master` once a key is set. Only for
    /// secrets that exist in test mode too (signing keys, webhook and TOTP secrets); processor
    /// credentials always require [`Keyring::seal`].
    pub fn seal_or_clear(&self, plain: &str, context: &str) -> Result<String, SealError> {
        if self.current.is_some() {
            self.seal(plain, context)
        } else {
            Ok(plain.to_owned())
        }
    }

    /// Reads a value written by [`Keyring::seal_or_clear`]: opens it when sealed, returns it as
    /// is when stored in clear.
    pub fn reveal(&self, stored: &str, context: &str) -> Result<Zeroizing<String>, SealError> {
        if stored.starts_with(PREFIX) {
            self.open(stored, context)
        } else {
            Ok(Zeroizing::new(stored.to_owned()))
        }
    }

    /// The key id a sealed value names (for `keys status`), or `None` if it is not sealed.
    pub fn key_id_of(sealed: &str) -> Option<&str> {
        sealed.strip_prefix(PREFIX)?.split_once(':').map(|(k, _)| k)
    }
}

/// Reads the master key text from `KAKEHASHI_MASTER_KEY_FILE` when `key` is unset.
pub fn read_key_source(
    key: Option<String>,
    file: Option<&std::path::Path>,
) -> anyhow::Result<Option<String>> {
    match (key, file) {
        (Some(k), _) if !k.trim().is_empty() => Ok(Some(k)),
        (_, Some(path)) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                anyhow::anyhow!("cannot read master key file {}: {e}", path.display())
            })?;
            Ok(Some(text.trim().to_owned()))
        }
        _ => Ok(None),
    }
}

/// Prefix of webhook (notification) signing secrets, as Standard Webhooks writes them.
pub const WEBHOOK_SECRET_PREFIX: &str = "whsec_";

/// A new webhook signing secret: `whsec_` and 32 random bytes in standard base64.
pub fn new_webhook_secret() -> String {
    let mut key = Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng.fill_bytes(&mut *key);
    format!(
        "{WEBHOOK_SECRET_PREFIX}{}",
        base64::engine::general_purpose::STANDARD.encode(*key)
    )
}

/// The last four characters of a credential: what staff see instead of the value.
pub fn fingerprint(secret: &str) -> String {
    let chars: Vec<char> = secret.chars().collect();
    let tail: String = chars[chars.len().saturating_sub(4)..].iter().collect();
    format!("…{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(cur: &str, prev: &[&str]) -> Keyring {
        Keyring::new(
            Some(cur),
            &prev.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        )
        .unwrap()
    }

    #[test]
    fn round_trip_and_context_binding() {
        let k = Keyring::generate();
        let r = ring(&k, &[]);
        let s = r.seal("sk_live_abc", "acct:1:credentials").unwrap();
        assert!(s.starts_with("sealed:v1:"));
        assert!(!s.contains("sk_live_abc"));
        assert_eq!(&*r.open(&s, "acct:1:credentials").unwrap(), "sk_live_abc");
        assert_eq!(r.open(&s, "acct:2:credentials"), Err(SealError::Corrupt));
        // Same plaintext, fresh nonce: different ciphertexts.
        assert_ne!(s, r.seal("sk_live_abc", "acct:1:credentials").unwrap());
    }

    #[test]
    fn tampering_is_detected() {
        let r = ring(&Keyring::generate(), &[]);
        let s = r.seal("secret", "c").unwrap();
        let mut bytes = s.into_bytes();
        let last = bytes.len() - 3;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            r.open(&String::from_utf8(bytes).unwrap(), "c"),
            Err(SealError::Corrupt)
        );
        assert_eq!(r.open("plain text", "c"), Err(SealError::Corrupt));
    }

    #[test]
    fn rotation_opens_with_previous_key() {
        let old = Keyring::generate();
        let new = Keyring::generate();
        let sealed_old = ring(&old, &[]).seal("v", "c").unwrap();
        let both = ring(&new, &[&old]);
        assert_eq!(&*both.open(&sealed_old, "c").unwrap(), "v");
        let only_new = ring(&new, &[]);
        assert!(matches!(
            only_new.open(&sealed_old, "c"),
            Err(SealError::UnknownKey(_))
        ));
        let resealed = both.seal("v", "c").unwrap();
        assert_eq!(Keyring::key_id_of(&resealed), both.current_id());
    }

    #[test]
    fn clear_without_a_key_sealed_with_one() {
        let none = Keyring::new(None, &[]).unwrap();
        let clear = none.seal_or_clear("whsec_x", "c").unwrap();
        assert_eq!(clear, "whsec_x");
        assert_eq!(&*none.reveal(&clear, "c").unwrap(), "whsec_x");
        let k = ring(&Keyring::generate(), &[]);
        let sealed = k.seal_or_clear("whsec_x", "c").unwrap();
        assert!(sealed.starts_with(PREFIX));
        assert_eq!(&*k.reveal(&sealed, "c").unwrap(), "whsec_x");
        assert_eq!(&*k.reveal("legacy_clear", "c").unwrap(), "legacy_clear");
        assert!(none.reveal(&sealed, "c").is_err());
    }

    #[test]
    fn derived_keys_depend_on_secret_and_purpose() {
        let a = Keyring::derived(b"server secret", "p1");
        let sealed = a.seal("4000000000002008", "c").unwrap();
        assert!(!sealed.contains("4000000000002008"));
        let same = Keyring::derived(b"server secret", "p1");
        assert_eq!(&*same.open(&sealed, "c").unwrap(), "4000000000002008");
        assert_ne!(
            same.current_id(),
            Keyring::derived(b"server secret", "p2").current_id()
        );
        for other in [
            Keyring::derived(b"server secret", "p2"),
            Keyring::derived(b"another secret", "p1"),
        ] {
            assert!(other.open(&sealed, "c").is_err());
        }
    }

    #[test]
    fn key_formats() {
        let hex_key = "00".repeat(32);
        assert!(Keyring::new(Some(&hex_key), &[]).is_ok());
        assert!(matches!(
            Keyring::new(Some("abcd"), &[]),
            Err(SealError::BadKey(_))
        ));
        let none = Keyring::new(None, &[]).unwrap();
        assert_eq!(none.seal("x", "c"), Err(SealError::NoMasterKey));
        assert_eq!(fingerprint("sk_test_12345678"), "…5678");
        assert_eq!(fingerprint("ab"), "…ab");
    }
}
