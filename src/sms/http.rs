//! A generic HTTP SMS gateway, configured by server settings so a real gateway plugs in without
//! code: a JSON POST to `KAKEHASHI_SMS_HTTP_URL` with the `Authorization` header
//! `KAKEHASHI_SMS_HTTP_AUTH` and the body `KAKEHASHI_SMS_HTTP_BODY`, whose `{to}` and `{text}`
//! placeholders are replaced by JSON-escaped values (without quotes: the template has them).

use std::time::Duration;

use super::{ProviderReceipt, SmsError, SmsProvider};
use crate::config::{Config, Redacted};
use crate::domain::Mode;

pub struct HttpSms {
    url: url::Url,
    auth: Option<Redacted>,
    body: String,
    client: reqwest::Client,
}

impl HttpSms {
    /// Checks the URL with the same SSRF rules as live merchants' callbacks (https on a public
    /// address; loopback only when the server allows loopback callbacks, as in development).
    pub fn new(config: &Config, url: &str) -> anyhow::Result<Self> {
        let policy = crate::ssrf::policy_for(config, Mode::Live);
        let url = crate::ssrf::check_url(url, policy)
            .map_err(|e| anyhow::anyhow!("KAKEHASHI_SMS_HTTP_URL refused: {e}"))?;
        anyhow::ensure!(
            config.sms_http_body.contains("{text}") && config.sms_http_body.contains("{to}"),
            "KAKEHASHI_SMS_HTTP_BODY must contain {{to}} and {{text}}"
        );
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            // A gateway redirect could point anywhere: follow none.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(HttpSms {
            url,
            auth: config.sms_http_auth.clone(),
            body: config.sms_http_body.clone(),
            client,
        })
    }
}

/// `s` as the inside of a JSON string literal.
pub fn json_escape(s: &str) -> String {
    let quoted = serde_json::Value::String(s.to_owned()).to_string();
    quoted[1..quoted.len() - 1].to_owned()
}

/// Fills the body template. Each placeholder is replaced in one pass, so a `{to}` inside the
/// text is never substituted again.
pub fn fill_body(template: &str, to: &str, text: &str) -> String {
    let mut out = String::with_capacity(template.len() + text.len() * 2);
    let mut rest = template;
    loop {
        let next = [("{to}", to), ("{text}", text)]
            .into_iter()
            .filter_map(|(ph, v)| rest.find(ph).map(|i| (i, ph, v)))
            .min_by_key(|(i, _, _)| *i);
        match next {
            Some((i, ph, v)) => {
                out.push_str(&rest[..i]);
                out.push_str(&json_escape(v));
                rest = &rest[i + ph.len()..];
            }
            None => {
                out.push_str(rest);
                return out;
            }
        }
    }
}

/// The gateway's message id from a JSON answer (`id`, `message_id`, `sid` or `messageId`).
fn receipt_id(body: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    ["id", "message_id", "sid", "messageId"]
        .iter()
        .find_map(|k| match &v[*k] {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
}

#[async_trait::async_trait]
impl SmsProvider for HttpSms {
    fn name(&self) -> &'static str {
        "http"
    }

    async fn send(&self, to: &str, text: &str) -> Result<ProviderReceipt, SmsError> {
        let mut req = self
            .client
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(fill_body(&self.body, to, text));
        if let Some(auth) = &self.auth {
            req = req.header(reqwest::header::AUTHORIZATION, &auth.0);
        }
        // Errors are described without the URL's query or the text: both may carry secrets.
        let resp = req.send().await.map_err(|e| {
            SmsError::Transport(if e.is_timeout() {
                "timeout".into()
            } else {
                "connection failed".into()
            })
        })?;
        let status = resp.status();
        if !status.is_success() {
            return Err(SmsError::Status(status.as_u16()));
        }
        let body = resp.text().await.unwrap_or_default();
        Ok(ProviderReceipt {
            id: receipt_id(&body),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_template_escapes_and_substitutes_once() {
        let t = r#"{"to":"{to}","message":"{text}"}"#;
        let b = fill_body(t, "09012345678", "a \"b\" {to}\n円");
        let v: serde_json::Value = serde_json::from_str(&b).unwrap();
        assert_eq!(v["to"], "09012345678");
        assert_eq!(v["message"], "a \"b\" {to}\n円");
    }

    #[test]
    fn receipt_ids() {
        assert_eq!(receipt_id(r#"{"id":"m1"}"#).as_deref(), Some("m1"));
        assert_eq!(receipt_id(r#"{"sid":42}"#).as_deref(), Some("42"));
        assert_eq!(receipt_id("OK"), None);
    }
}
