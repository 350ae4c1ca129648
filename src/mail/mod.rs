//! Shopper e-mail over SMTP (lettre): the transport built from the server settings and the
//! MIME message (text and HTML alternatives, RFC 2047 encoded headers). What a message says is
//! `messages::compose`; when it is sent is the message worker's (`flows::messages`).

use std::net::IpAddr;
use std::time::Duration;

use lettre::message::dkim::{DkimConfig, DkimSigningAlgorithm, DkimSigningKey};
use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::config::{MailSettings, SmtpTls};
use crate::domain::message::Refusal;

/// One e-mail to send.
#[derive(Debug, Clone)]
pub struct Email {
    pub to: String,
    /// The From display name (the shop's).
    pub sender_name: String,
    pub reply_to: Option<String>,
    pub subject: String,
    /// Complete on its own: mail readers that show no HTML lose nothing.
    pub text: String,
    pub html: String,
}

/// Why a message was not sent.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// The server (or the network) refused for now, or for good.
    #[error("{detail}")]
    Refused { refusal: Refusal, detail: String },
    /// The message itself is unusable (an address that does not parse): never retried.
    #[error("{0}")]
    Invalid(String),
}

impl MailError {
    pub fn refusal(&self) -> Refusal {
        match self {
            MailError::Refused { refusal, .. } => *refusal,
            MailError::Invalid(_) => Refusal::Permanent,
        }
    }
}

/// The SMTP transport and From address, built once at startup.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Address,
    /// Signs each message when the operator configured a DKIM key.
    dkim: Option<DkimConfig>,
    /// `host:port`, for logs and the `mail test` command.
    pub server: String,
}

impl Mailer {
    /// `None` when no SMTP host is set (e-mail off). Fails on settings that can never work: no
    /// From address, or a plain connection to anything but loopback (passwords and shoppers'
    /// addresses never cross a network in clear text).
    pub fn from_settings(s: &MailSettings) -> anyhow::Result<Option<Mailer>> {
        let Some(host) = s.smtp_host.as_deref() else {
            return Ok(None);
        };
        let from: Address = s
            .from
            .as_deref()
            .ok_or_else(|| {
                anyhow::anyhow!("KAKEHASHI_MAIL_FROM is required with KAKEHASHI_SMTP_HOST")
            })?
            .parse()
            .map_err(|e| anyhow::anyhow!("KAKEHASHI_MAIL_FROM is not an e-mail address: {e}"))?;
        let port = s.smtp_port.unwrap_or(s.smtp_tls.default_port());
        let builder = match s.smtp_tls {
            SmtpTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)?,
            SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(host)?,
            SmtpTls::None => {
                if !is_loopback(host) {
                    anyhow::bail!(
                        "KAKEHASHI_SMTP_TLS=none is allowed only for a server on loopback \
                         (localhost, 127.0.0.1, ::1), not {host}"
                    );
                }
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            }
        };
        let mut builder = builder
            .port(port)
            .timeout(Some(Duration::from_secs(s.timeout_s.max(1))));
        if let (Some(user), Some(pass)) = (&s.smtp_user, &s.smtp_password) {
            builder = builder.credentials(Credentials::new(user.clone(), pass.0.clone()));
        }
        let dkim = dkim_config(s, &from)?;
        Ok(Some(Mailer {
            transport: builder.build(),
            from,
            dkim,
            server: format!("{host}:{port}"),
        }))
    }

    /// Sends one message; the SMTP reply decides whether a refusal is worth retrying.
    pub async fn send(&self, e: &Email) -> Result<(), MailError> {
        let message = self.build(e)?;
        match self.transport.send(message).await {
            Ok(_) => Ok(()),
            Err(err) => {
                // 5xx is the server's final word; 4xx, timeouts and dropped connections are not.
                let refusal = if err.is_permanent() {
                    Refusal::Permanent
                } else {
                    Refusal::Temporary
                };
                Err(MailError::Refused {
                    refusal,
                    detail: one_line(&err.to_string()),
                })
            }
        }
    }

    /// The MIME message: multipart/alternative with the text first, both parts base64 (UTF-8
    /// Japanese), headers RFC 2047 encoded by lettre.
    pub fn build(&self, e: &Email) -> Result<Message, MailError> {
        let to: Address =
            e.to.parse()
                .map_err(|_| MailError::Invalid("the recipient is not an e-mail address".into()))?;
        let mut b = Message::builder()
            .from(Mailbox::new(Some(e.sender_name.clone()), self.from.clone()))
            .to(Mailbox::new(None, to))
            .subject(e.subject.clone());
        if let Some(r) = e.reply_to.as_deref() {
            let r: Address = r.parse().map_err(|_| {
                MailError::Invalid("the merchant's reply-to is not an address".into())
            })?;
            b = b.reply_to(Mailbox::new(None, r));
        }
        let part = |ct: ContentType, body: &str| {
            SinglePart::builder()
                .header(ct)
                .header(ContentTransferEncoding::Base64)
                .body(body.to_owned())
        };
        let mut message = b
            .multipart(
                MultiPart::alternative()
                    .singlepart(part(ContentType::TEXT_PLAIN, &e.text))
                    .singlepart(part(ContentType::TEXT_HTML, &e.html)),
            )
            .map_err(|err| MailError::Invalid(err.to_string()))?;
        if let Some(d) = &self.dkim {
            message.sign(d);
        }
        Ok(message)
    }
}

/// The DKIM signer from the settings: selector and key file together, the key readable.
fn dkim_config(s: &MailSettings, from: &Address) -> anyhow::Result<Option<DkimConfig>> {
    let (selector, file) = match (&s.dkim_selector, &s.dkim_key_file) {
        (None, None) => return Ok(None),
        (Some(sel), Some(file)) => (sel.clone(), file),
        _ => anyhow::bail!("KAKEHASHI_DKIM_SELECTOR and KAKEHASHI_DKIM_KEY_FILE go together"),
    };
    let text = std::fs::read_to_string(file)
        .map_err(|e| anyhow::anyhow!("cannot read the DKIM key {}: {e}", file.display()))?;
    let text = text.trim();
    let algorithm = if text.starts_with("-----BEGIN") {
        DkimSigningAlgorithm::Rsa
    } else {
        DkimSigningAlgorithm::Ed25519
    };
    let key = DkimSigningKey::new(text, algorithm).map_err(|e| {
        anyhow::anyhow!(
            "the DKIM key {} is not an RSA PKCS#1 PEM or a base64 Ed25519 key: {e}",
            file.display()
        )
    })?;
    let domain = s
        .dkim_domain
        .clone()
        .unwrap_or_else(|| from.domain().to_owned());
    Ok(Some(DkimConfig::default_config(selector, domain, key)))
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// An error as one short line for the message log (no CR/LF, at most 300 characters).
fn one_line(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(300)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(host: &str, tls: SmtpTls) -> MailSettings {
        MailSettings {
            smtp_host: Some(host.into()),
            smtp_tls: tls,
            from: Some("pay@example.jp".into()),
            timeout_s: 5,
            ..Default::default()
        }
    }

    // The transport's pool needs a runtime even to be dropped.
    #[tokio::test]
    async fn plain_smtp_only_on_loopback() {
        assert!(Mailer::from_settings(&settings("127.0.0.1", SmtpTls::None)).is_ok());
        assert!(Mailer::from_settings(&settings("mail.example.jp", SmtpTls::None)).is_err());
        assert!(Mailer::from_settings(&settings("mail.example.jp", SmtpTls::Starttls)).is_ok());
    }

    #[tokio::test]
    async fn japanese_subject_is_encoded() {
        let m = Mailer::from_settings(&settings("localhost", SmtpTls::None))
            .unwrap()
            .unwrap();
        let msg = m
            .build(&Email {
                to: "hanako@example.jp".into(),
                sender_name: "テスト商店".into(),
                reply_to: Some("shop@example.jp".into()),
                subject: "お支払い方法のご案内".into(),
                text: "本文".into(),
                html: "<p>本文</p>".into(),
            })
            .unwrap();
        let raw = String::from_utf8(msg.formatted()).unwrap();
        let subject = raw.lines().find(|l| l.starts_with("Subject:")).unwrap();
        assert!(subject.contains("=?utf-8?"), "{subject}");
        assert!(raw.is_ascii(), "headers and bodies are 7-bit");
        assert!(raw.contains("multipart/alternative"));
        assert!(!raw.contains("DKIM-Signature"), "unsigned without a key");
    }

    #[tokio::test]
    async fn dkim_signs_when_configured() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("dkim.key");
        // An Ed25519 key: base64 of 32 bytes.
        std::fs::write(&key, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n").unwrap();
        let mut s = settings("localhost", SmtpTls::None);
        s.dkim_selector = Some("pay2026".into());
        s.dkim_key_file = Some(key.clone());
        let m = Mailer::from_settings(&s).unwrap().unwrap();
        let msg = m
            .build(&Email {
                to: "hanako@example.jp".into(),
                sender_name: "テスト商店".into(),
                reply_to: None,
                subject: "件名".into(),
                text: "本文".into(),
                html: "<p>本文</p>".into(),
            })
            .unwrap();
        let raw = String::from_utf8(msg.formatted()).unwrap();
        let sig = raw.split("DKIM-Signature:").nth(1).expect("signed");
        assert!(sig.contains("a=ed25519-sha256"), "{sig}");
        assert!(
            sig.contains("d=example.jp") && sig.contains("s=pay2026"),
            "{sig}"
        );
        s.dkim_key_file = None;
        assert!(Mailer::from_settings(&s).is_err(), "selector without key");
        std::fs::write(&key, "not a key").unwrap();
        s.dkim_key_file = Some(key);
        assert!(Mailer::from_settings(&s).is_err(), "unreadable key");
    }
}
