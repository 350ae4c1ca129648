//! The sandbox SMS provider for test-mode merchants: nothing leaves the server. Every message is
//! recorded in `sms_messages` (as every message is) and merchants read them back through
//! `GET /api/v1/sms/messages`.

use super::{ProviderReceipt, SmsError, SmsProvider};

pub struct SandboxSms;

#[async_trait::async_trait]
impl SmsProvider for SandboxSms {
    fn name(&self) -> &'static str {
        "sandbox"
    }

    async fn send(&self, _to: &str, _text: &str) -> Result<ProviderReceipt, SmsError> {
        Ok(ProviderReceipt {
            id: Some(crate::util::random_id("sbx", 16)),
        })
    }
}
