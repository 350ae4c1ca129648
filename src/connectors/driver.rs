//! The processor-driver interface: what a processor (Stripe, KOMOJU, a test double) implements
//! to plug its connectors into the registry, and the opened credentials it receives.

use std::sync::Arc;

use zeroize::Zeroizing;

use crate::connectors::bank::BankConnector;
use crate::connectors::card::CardConnector;
use crate::connectors::carrier::CarrierConnector;
use crate::connectors::client_card::ClientCardConnector;
use crate::connectors::konbini::NumberConnector;
use crate::connectors::wallet::WalletConnector;
use crate::connectors::webhook::{WebhookError, WebhookEvent};
use crate::domain::processor::{Family, Processor};
use crate::domain::Mode;

/// The opened credentials of one processor account, handed to its driver only.
pub struct Credentials {
    pub account_id: String,
    pub mode: Mode,
    pub secret_key: Zeroizing<String>,
    pub publishable_key: Option<String>,
    pub webhook_secret: Option<Zeroizing<String>>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("account_id", &self.account_id)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

/// The sealed JSON of an account's `credentials` column.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct StoredCredentials {
    pub secret_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publishable_key: Option<String>,
}

/// A processor's connectors, built from an account's credentials. A driver implements the
/// families its processor serves; the others stay `None`.
pub trait ProcessorDriver: Send + Sync {
    fn processor(&self) -> Processor;
    /// The families this driver builds connectors for.
    fn families(&self) -> &[Family];
    fn card(&self, _c: &Credentials) -> Option<Arc<dyn CardConnector>> {
        None
    }
    fn number(&self, _c: &Credentials) -> Option<Arc<dyn NumberConnector>> {
        None
    }
    fn bank(&self, _c: &Credentials) -> Option<Arc<dyn BankConnector>> {
        None
    }
    fn carrier(&self, _c: &Credentials) -> Option<Arc<dyn CarrierConnector>> {
        None
    }
    fn wallet(&self, _c: &Credentials) -> Option<Arc<dyn WalletConnector>> {
        None
    }
    /// For a processor whose card form runs in the shopper's browser (Stripe.js): the
    /// browser-side part of its card connector. `None`: cards are entered on our page.
    fn client_card(&self, _c: &Credentials) -> Option<Arc<dyn ClientCardConnector>> {
        None
    }
    /// Verifies and reads an inbound webhook delivered for an account of this processor
    /// (`None`: the driver takes no webhooks).
    fn webhook(
        &self,
        _c: &Credentials,
        _headers: &axum::http::HeaderMap,
        _body: &[u8],
    ) -> Option<Result<WebhookEvent, WebhookError>> {
        None
    }
}
